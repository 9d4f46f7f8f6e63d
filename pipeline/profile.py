"""What a run's outputs hold, summed in one streaming pass: the numbers behind the run report.

"Before" is every document the run read (curated + rejected: a rejected record carries every column
up to the stage that dropped it, so a signal is counted for the documents that reached the stage
computing it); "after" is the curated set. For `ouroboros tag` output, "after" is the tagged
records no stage would drop. Only small columns are read (never `text`, except its length when a
stratum has to be recomputed); counters of unbounded keys (domains, strata) keep their largest
entries within a fixed budget, and say so when they had to forget some.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from ouroboros.pipeline.outputs import iter_batches, mode
from ouroboros.transforms.base import reason_key
from ouroboros.transforms.sampling.quotas import STAGE as SAMPLE_STAGE
from ouroboros.transforms.sampling.strata import stratum_key

# The stages in the order the pipeline runs them (pipeline/graph.py); stages a future graph adds
# are shown after these, in the order of their names.
STAGE_ORDER = ("read", "extract", "normalize", "language_id", "quality", "quality_model",
               "exact_dedup", "synthetic", "near_dedup", SAMPLE_STAGE)

# The quality signals the report plots, with bin edges that fit their range.
MAIN_SIGNALS: tuple[tuple[str, np.ndarray, bool], ...] = (
    ("n_words", np.logspace(0, 5, 26), True),
    ("mean_word_length", np.linspace(0, 15, 31), False),
    ("alpha_words_ratio", np.linspace(0, 1, 21), False),
    ("stop_words_count", np.arange(0, 22) - 0.5, False),
    ("dup_line_char_frac", np.linspace(0, 1, 21), False),
    ("top_2gram_char_frac", np.linspace(0, 1, 21), False),
    ("line_punct_ratio", np.linspace(0, 1, 21), False),
    ("short_line_ratio", np.linspace(0, 1, 21), False),
)
SCORE_EDGES = np.linspace(0, 1, 21)
COUNTER_BUDGET = 100_000

_BASE_COLUMNS = ["id", "url", "language", "domain", "synthetic_score", "provenance_class",
                 "dup_cluster_id", "dup_cluster_size", "dup_representative", "stratum",
                 "reject_stage", "reject_reason"]


class BoundedCounter:
    """A Counter that keeps at most `budget` keys: when full it forgets the smaller half (the top
    entries of a long-tailed distribution survive; `approximate` says counts may be low)."""

    def __init__(self, budget: int = COUNTER_BUDGET):
        self.counts: Counter[str] = Counter()
        self.budget = budget
        self.approximate = False

    def update(self, values: list[Any]) -> None:
        self.counts.update(v for v in values if v is not None)
        if len(self.counts) > self.budget:
            self.counts = Counter(dict(self.counts.most_common(self.budget // 2)))
            self.approximate = True

    def most_common(self, n: int) -> list[tuple[str, int]]:
        return self.counts.most_common(n)

    def __len__(self) -> int:
        return len(self.counts)


@dataclass
class Histogram:
    edges: np.ndarray
    log: bool = False
    before: np.ndarray = field(init=False)
    after: np.ndarray = field(init=False)
    missing: int = 0

    def __post_init__(self) -> None:
        self.before = np.zeros(len(self.edges) - 1, dtype=np.int64)
        self.after = np.zeros(len(self.edges) - 1, dtype=np.int64)

    def add(self, values: pa.Array, kept: np.ndarray) -> None:
        """Values outside the edges go to the first or last bin, so every value is counted."""
        arr = values.to_numpy(zero_copy_only=False).astype(float)
        ok = ~np.isnan(arr)
        self.missing += int((~ok).sum())
        lo, hi = self.edges[0], self.edges[-1]
        clipped = np.clip(arr[ok], lo, np.nextafter(hi, lo))
        self.before += np.histogram(clipped, self.edges)[0]
        self.after += np.histogram(clipped[kept[ok]], self.edges)[0]

    def as_dict(self) -> dict[str, Any]:
        return {"edges": self.edges.tolist(), "log": self.log, "before": self.before.tolist(),
                "after": self.after.tolist(), "missing": self.missing}


class _Len:
    """Stands in for a text of known length: the `length` stratum key needs only `len(text)`."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n


def _stratum_columns(keys: list[str]) -> list[str]:
    cols = {"language": ["language"], "domain": ["domain", "url"], "provenance": ["provenance_class"],
            "quality": ["quality_model_score", "quality_pass"], "topic": ["topic"], "length": []}
    return sorted({c for k in keys for c in cols.get(k, [])})


def _to_list(batch: pa.RecordBatch, name: str) -> list[Any]:
    if name in batch.schema.names:
        return batch.column(name).to_pylist()
    return [None] * batch.num_rows


def stage_order(stats: dict[str, Any]) -> list[str]:
    seen = set(stats.get("rejected_by_stage", {})) | set(stats.get("errors_by_stage", {}))
    return [s for s in STAGE_ORDER if s in seen] + sorted(seen - set(STAGE_ORDER))


def funnel(stats: dict[str, Any]) -> list[dict[str, Any]]:
    """Per stage in pipeline order: records in, dropped (by reason), errors, out."""
    remaining = stats.get("input_records", 0)
    rows = []
    for stage in stage_order(stats):
        reasons = stats.get("rejected_by_stage", {}).get(stage, {})
        errors = stats.get("errors_by_stage", {}).get(stage, {})
        dropped, errs = sum(reasons.values()), sum(errors.values())
        rows.append({"stage": stage, "in": remaining, "dropped": dropped, "reasons": reasons,
                     "errors": errs, "error_types": errors, "out": remaining - dropped - errs})
        remaining -= dropped + errs
    return rows


def profile(out: str, stats: dict[str, Any]) -> dict[str, Any]:
    """One pass over curated/rejected (or tagged) collecting every distribution the report shows."""
    tagged = mode(out) == "tag"
    keys = list((stats.get("config") or {}).get("sampling", {}).get("keys") or ["language"])
    sampling_on = bool((stats.get("config") or {}).get("sampling", {}).get("enabled"))
    need_length = "length" in keys
    signal_cols = [f"quality_signals.{name}" for name, _, _ in MAIN_SIGNALS]
    columns = _BASE_COLUMNS + _stratum_columns(keys) + signal_cols + (["text"] if need_length else [])

    languages = {"before": Counter(), "after": Counter()}
    domains = {"before": BoundedCounter(), "after": BoundedCounter()}
    strata = {"before": BoundedCounter(), "after": BoundedCounter()}
    classes = {"before": Counter(), "after": Counter()}
    score = Histogram(SCORE_EDGES)
    signals = {name: Histogram(edges, log) for name, edges, log in MAIN_SIGNALS}
    clusters: dict[str, int] = {}
    representatives: dict[str, dict[str, Any]] = {}
    exact_targets: Counter[str] = Counter()
    would_drop: dict[str, Counter[str]] = {}  # tag mode: the drops `run` would have made
    near_dropped = exact_dropped = docs = kept_docs = 0
    no_language = 0

    parts = ["tagged"] if tagged else ["curated", "rejected"]
    for part in parts:
        for batch in iter_batches(out, part, columns):
            n = batch.num_rows
            stage = _to_list(batch, "reject_stage")
            if part == "curated":
                kept = np.ones(n, dtype=bool)
            elif part == "tagged":
                kept = np.array([s is None for s in stage], dtype=bool)
            else:
                kept = np.zeros(n, dtype=bool)
            docs += n
            kept_docs += int(kept.sum())
            if part == "tagged":
                for st, why in zip(stage, _to_list(batch, "reject_reason")):
                    if st:
                        would_drop.setdefault(st, Counter())[reason_key(why or "")] += 1
            lang = _to_list(batch, "language")
            no_language += sum(v is None for v in lang)
            dom = _to_list(batch, "domain")
            cls = _to_list(batch, "provenance_class")
            for values, counters in ((lang, languages), (cls, classes)):
                counters["before"].update(v for v in values if v is not None)
                counters["after"].update(v for v, k in zip(values, kept) if k and v is not None)
            domains["before"].update(dom)
            domains["after"].update([v for v, k in zip(dom, kept) if k])
            if "synthetic_score" in batch.schema.names:
                score.add(batch.column("synthetic_score"), kept)
            if "quality_signals" in batch.schema.names:
                qs = batch.column("quality_signals")
                for name, hist in signals.items():
                    if name in qs.type.names:
                        hist.add(pc.struct_field(qs, name), kept)

            # near duplicates: every record of a cluster carries its id and size
            cid, size = _to_list(batch, "dup_cluster_id"), _to_list(batch, "dup_cluster_size")
            rep, url, ids = _to_list(batch, "dup_representative"), _to_list(batch, "url"), _to_list(batch, "id")
            reason = _to_list(batch, "reject_reason")
            for i in range(n):
                if size[i] and size[i] > 1 and cid[i]:
                    clusters[cid[i]] = size[i]
                    if rep[i]:
                        representatives[cid[i]] = {"id": ids[i], "url": url[i], "size": size[i]}
                r = reason[i] or ""
                if r.startswith("near_duplicate_of:"):
                    near_dropped += 1
                elif r.startswith("exact_duplicate_of:"):
                    exact_dropped += 1
                    exact_targets[r.split(":", 1)[1]] += 1

            # strata of the sampler's input (the survivors of every earlier stage) and its output
            into_sampler = kept | np.array([s == SAMPLE_STAGE for s in stage], dtype=bool)
            if into_sampler.any():
                st = _strata(batch, keys, into_sampler)
                strata["before"].update([s for s, k in zip(st, into_sampler) if k])
                strata["after"].update([s for s, k in zip(st, kept) if k])

    sizes = Counter(clusters.values())
    top = sorted(representatives.values(), key=lambda r: (-r["size"], r["id"]))[:10]
    return {
        "mode": "tag" if tagged else "run",
        "documents": docs,
        "kept": kept_docs,
        "no_language": no_language,
        "languages": {k: dict(v.most_common()) for k, v in languages.items()},
        "domains": {k: dict(v.most_common(25)) for k, v in domains.items()},
        "distinct_domains": {k: len(v) for k, v in domains.items()},
        "domains_approximate": any(v.approximate for v in domains.values()),
        "provenance_classes": {k: dict(v.most_common()) for k, v in classes.items()},
        "synthetic_score": score.as_dict(),
        "signals": {name: h.as_dict() for name, h in signals.items()},
        "near_dup": {
            "clusters": len(clusters),
            "documents_in_clusters": sum(clusters.values()),
            "dropped": near_dropped,
            "cluster_sizes": dict(sorted(sizes.items())),
            "largest": top,
        },
        "exact_dup": {"dropped": exact_dropped, "kept_with_copies": len(exact_targets)},
        "would_drop": {st: dict(c) for st, c in would_drop.items()},
        "strata": {
            "keys": keys,
            "sampling_enabled": sampling_on,
            "before": dict(strata["before"].most_common(40)),
            "after": {k: strata["after"].counts.get(k, 0)
                      for k, _ in strata["before"].most_common(40)},
            "distinct_before": len(strata["before"]),
            "distinct_after": len(strata["after"]),
            "approximate": any(v.approximate for v in strata.values()),
        },
    }


def _strata(batch: pa.RecordBatch, keys: list[str], mask: np.ndarray) -> list[str | None]:
    """The `stratum` column where the sampler set it, else the same key recomputed from the columns."""
    given = _to_list(batch, "stratum")
    if all(g is not None for g, m in zip(given, mask) if m):
        return given
    cols = {c: _to_list(batch, c) for c in _stratum_columns(keys)}
    lengths = (pc.utf8_length(batch.column("text")).to_pylist()
               if "length" in keys and "text" in batch.schema.names else None)
    out: list[str | None] = []
    for i, g in enumerate(given):
        if g is not None or not mask[i]:
            out.append(g)
            continue
        doc = {c: v[i] for c, v in cols.items()}
        if lengths is not None:
            doc["text"] = _Len(lengths[i] or 0)
        out.append(stratum_key(doc, keys))
    return out

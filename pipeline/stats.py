"""Run statistics: counts per output, stage, reason and shard, computed in the pipeline, as `stats.json`.

The accounting identity is checked here, for the run and for each shard: input records (documents
read + read errors) equal curated + rejected + errors. Counting happens in a Beam combine, so it is
exact on every runner. The same pass feeds the progress line of local runs (`pipeline/progress.py`).
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from ouroboros.transforms.base import reason_key

SHARD = "shard"


def _keys(kind: str):
    """(key, how many input records the element stands for): an error record summarising a
    shard's capped errors stands for `error_count` of them."""
    if kind == "rejected":
        return lambda d: ((kind, d.get("reject_stage") or "",
                           reason_key(d.get("reject_reason") or "")), 1)
    if kind == "errors":
        return lambda e: ((kind, e.get("error_stage") or "", e.get("error_type") or ""),
                          int(e.get("error_count") or 1))
    if kind == "skipped":
        return lambda t: ((kind, t, ""), 1)
    return lambda _: ((kind, "", ""), 1)


def _shard_keys(kind: str, record: Any) -> list[tuple[tuple[str, str, str], int]]:
    """((SHARD, source_uri, count name), how many) for a record: which shard it came from and
    where it ended."""
    if kind == "skipped" or not isinstance(record, dict):
        return []
    uri = record.get("source_uri") or ""
    if kind == "input":
        return [((SHARD, uri, "documents_read"), 1)]
    if kind == "errors":
        n = int(record.get("error_count") or 1)
        if record.get("error_stage") == "read":
            return [((SHARD, uri, "errors"), n), ((SHARD, uri, "read_errors"), n)]
        return [((SHARD, uri, kind), n)]
    return [((SHARD, uri, kind), 1)]


class _CountKeys(beam.DoFn):
    """Keys each record for the counts and ticks the progress channel (local runs only)."""

    def __init__(self, kind: str, progress: Any = None):
        self._kind = kind
        self._key = _keys(kind)
        self._progress = progress
        self._tick = {"input": "started", "skipped": None}.get(kind, "done")

    def process(self, record):
        yield self._key(record)
        yield from _shard_keys(self._kind, record)
        if self._progress is not None and self._tick:
            self._progress.add(**{self._tick: 1})

    def finish_bundle(self):
        if self._progress is not None:
            self._progress.flush()


def per_shard(counts: dict[str, dict[str, int]], shards: list[str], output_key: str
              ) -> list[dict[str, Any]]:
    """One row per shard (every shard of the run, also those that yielded nothing), with its
    accounting: input records (documents + read errors) = curated + rejected + errors."""
    rows = []
    for uri in sorted(set(shards) | set(counts)):
        c = counts.get(uri, {})
        row = {"source_uri": uri,
               "input_records": c.get("documents_read", 0) + c.get("read_errors", 0),
               "documents_read": c.get("documents_read", 0), "read_errors": c.get("read_errors", 0),
               output_key: c.get(output_key, 0), "rejected": c.get("rejected", 0),
               "errors": c.get("errors", 0)}
        row["accounting_holds"] = row["input_records"] == row[output_key] + row["rejected"] + row["errors"]
        rows.append(row)
    return rows


def summarize(counts: list[tuple[tuple[str, str, str], int]], run: Any,
              shards: list[str], extras: dict[str, Any] | None = None) -> dict[str, Any]:
    totals: dict[str, int] = defaultdict(int)
    by_stage: dict[str, dict[str, dict[str, int]]] = {"rejected": {}, "errors": {}}
    skipped: dict[str, int] = {}
    shard_counts: dict[str, dict[str, int]] = defaultdict(dict)
    for (kind, stage, reason), n in counts:
        if kind == SHARD:
            shard_counts[stage][reason] = n
            continue
        totals[kind] += n
        if kind in by_stage:
            by_stage[kind].setdefault(stage, {})[reason] = n
        elif kind == "skipped":
            skipped[stage] = n
    read_errors = sum(by_stage["errors"].get("read", {}).values())
    input_records = totals["input"] + read_errors
    output_key = "tagged" if "tagged" in totals else "curated"
    accounted = totals[output_key] + totals["rejected"] + totals["errors"]
    stats = {
        "run_id": run.run_id,
        "pipeline_version": run.pipeline_version,
        "config_sha256": run.config_sha256,
        "started_at": run.started_at.isoformat(),
        "shards": len(shards),
        "input_records": input_records,
        output_key: totals[output_key],
        "rejected": totals["rejected"],
        "errors": totals["errors"],
        "accounting": {
            "identity": f"input_records = {output_key} + rejected + errors",
            "holds": input_records == accounted,
            "documents_read": totals["input"],
            "read_errors": read_errors,
        },
        "rejected_by_stage": {s: dict(sorted(r.items())) for s, r in sorted(by_stage["rejected"].items())},
        "errors_by_stage": {s: dict(sorted(r.items())) for s, r in sorted(by_stage["errors"].items())},
        "skipped_non_documents": dict(sorted(skipped.items())),
        "per_shard": per_shard(shard_counts, shards, output_key),
    }
    stats.update(extras or {})
    return stats


def write_json(path: str, data: dict[str, Any]) -> None:
    with FileSystems.create(path) as f:
        f.write(json.dumps(data, indent=2, sort_keys=False, default=str).encode("utf-8"))


class WriteStats(beam.PTransform):
    """Counts a dict of named PCollections and writes `OUTPUT/stats.json`. A name is the kind of
    records counted (`input`, `curated`, `rejected`, ...), optionally followed by `#` and a suffix
    when several PCollections hold records of one kind."""

    def __init__(self, output: str, run: Any, shards: list[str],
                 extras: dict[str, beam.PCollection] | None = None, progress: Any = None):
        super().__init__()
        self._output = output
        self._run = run
        self._shards = shards
        self._extras = extras or {}
        self._progress = progress

    def expand(self, named):
        # Each PCollection is counted in the step that produces it (a lifted combine): only the
        # counts meet, never one key per record (Beam's in-process runner would hold them all).
        partial = []
        for name, pcoll in named.items():
            kind = name.split("#", 1)[0]  # "rejected#2": a second PCollection of rejected records
            label = name.replace("#", "")
            partial.append(pcoll
                           | f"Key{label}" >> beam.ParDo(_CountKeys(kind, self._progress))
                           | f"Count{label}" >> beam.CombinePerKey(sum))
        counts = (partial
                  | "FlattenCounts" >> beam.Flatten()
                  | "SumCounts" >> beam.CombinePerKey(sum)
                  | "AllCounts" >> beam.combiners.ToList())
        extra_views = {name: beam.pvalue.AsSingleton(pc) for name, pc in self._extras.items()}
        run, shards, output = self._run, self._shards, self._output

        def _write(all_counts, **extras):
            stats = summarize(all_counts, run, shards, extras)
            write_json(f"{output}/stats.json", stats)
            return stats

        return counts | "WriteStatsJson" >> beam.Map(_write, **extra_views)

"""Exact dedup: one document per ``exact_hash``, the most trustworthy one kept.

The pipeline decides on keys (``ExactDecisions``): the streaming pass sketches every staged
document's hash (``sketch.SketchKeys``), then one read of the staged files' key columns sends to the
``GroupByKey`` only the documents whose hash may repeat, with their rank and staged file; the
decision records (``(file, (EXACT, id, kept id))``) are applied by the apply pass. ``ExactDedup``
is the same rule over documents in memory (tests, library use).

Documents sharing the hash of their case/width/whitespace-folded text (``normalize.exact_dedup_key``)
are one cluster; its representative is chosen by ``representative.pick_representative`` (shared
with near dedup); the others are rejected as ``exact_duplicate_of:<kept id>``. A document without
an ``id`` or ``exact_hash`` (a stage upstream did not run) becomes an error record.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.metrics import Metrics
from ouroboros.transforms.base import (
    ERRORS,
    KEPT,
    METRICS_NAMESPACE,
    REJECTED,
    StageOutputs,
    StrictModel,
    document_error,
    rejected,
)
from ouroboros.transforms.dedup.components import ID
from ouroboros.transforms.dedup.representative import doc_key, pick_representative
from ouroboros.transforms.dedup.sketch import (
    KeySketch,
    ReadsSketches,
    SketchFile,
    as_keys,
    hex_key,
)
from ouroboros.transforms.io.staged import KEPT_BEFORE, staged_batches
from pydantic import Field

STAGE = "exact_dedup"


class ExactDedupConfig(StrictModel):
    enabled: bool = Field(True, description="drop documents whose normalized text hash repeats")


def _key_by_hash(doc: Mapping[str, Any]) -> Iterable[Any]:
    if not doc.get("id") or not isinstance(doc.get("exact_hash"), str):
        missing = "id" if not doc.get("id") else "exact_hash"
        yield pvalue.TaggedOutput(ERRORS, document_error(
            doc, STAGE, f"document without {missing}", error_type="bad_document"))
        return
    yield doc["exact_hash"], doc


class _KeepRepresentative(beam.DoFn):
    def __init__(self, drop: bool):
        self._drop = drop
        self._dropped = Metrics.counter(METRICS_NAMESPACE, f"{STAGE}.dropped.exact_duplicate")
        self._kept = Metrics.counter(METRICS_NAMESPACE, f"{STAGE}.kept")

    def process(self, element: tuple[str, Iterable[dict[str, Any]]]) -> Iterable[Any]:
        _, docs = element
        # Two passes over the grouped iterable (re-iterable on every runner) instead of a list,
        # so a hash shared by very many pages does not need them all in memory at once.
        best_id = pick_representative(docs)["id"]
        for doc in docs:
            if doc["id"] == best_id:
                self._kept.inc()
                yield doc
                continue
            self._dropped.inc()
            out = rejected(doc, STAGE, f"exact_duplicate_of:{best_id}", self._drop)
            yield pvalue.TaggedOutput(REJECTED, out) if self._drop else out


class ExactDedup(beam.PTransform):
    """``StageOutputs``: one document per exact_hash kept, the other copies rejected (naming the
    kept id), documents without id or hash as errors. ``drop=False`` only annotates."""

    def __init__(self, drop: bool = True):
        super().__init__(label=STAGE)
        self._drop = drop

    def expand(self, docs: Any) -> StageOutputs:
        keyed = docs | "KeyByHash" >> beam.FlatMap(_key_by_hash).with_outputs(ERRORS, main="keyed")
        decided = (keyed.keyed
                   | "GroupByHash" >> beam.GroupByKey()
                   | "KeepRepresentative" >> beam.ParDo(_KeepRepresentative(self._drop))
                   .with_outputs(REJECTED, main=KEPT))
        return StageOutputs(decided[KEPT], decided[REJECTED], keyed[ERRORS])


# ---------------------------------------------------------------------------------------------
# Deciding on keys: the pipeline's exact dedup.

EXACT = "exact"  # the kind of a decision record: (file, (EXACT, id, the id it duplicates))
KEY_COLUMNS = ("id", "exact_hash", "crawl_date", "synthetic_score", KEPT_BEFORE)


def exact_key(doc: Mapping[str, Any]) -> int | None:
    """The 64-bit sketch key of a document's exact hash (None without one)."""
    value = doc.get("exact_hash")
    return hex_key(value) if isinstance(value, str) and value else None


def has_exact_keys(row: Mapping[str, Any]) -> bool:
    return bool(row.get("id")) and isinstance(row.get("exact_hash"), str) and bool(row["exact_hash"])


class _Candidates(ReadsSketches):
    """A staged file -> (exact_hash, (rank, file)) for its documents whose hash may repeat."""

    def __init__(self) -> None:
        self._shuffled = Metrics.counter(METRICS_NAMESPACE, f"{STAGE}.keys_shuffled")

    def process(self, path: str, stored: KeySketch | SketchFile) -> Iterable[Any]:
        sketch = self._sketches.get(stored)
        if sketch is None:  # no key was sketched: none can repeat
            return
        for batch in staged_batches(path, KEY_COLUMNS):
            rows = [r for r in batch.to_pylist() if has_exact_keys(r)]
            if not rows:
                continue
            maybe = sketch.at_least(as_keys(hex_key(r["exact_hash"]) for r in rows), 2)
            for row, again in zip(rows, maybe):
                if again:
                    self._shuffled.inc()
                    yield row["exact_hash"], (doc_key(row), path)


class _Pick(beam.DoFn):
    def __init__(self) -> None:
        self._dropped = Metrics.counter(METRICS_NAMESPACE, f"{STAGE}.dropped.exact_duplicate")

    def process(self, element: tuple[str, Iterable[tuple]]) -> Iterable[tuple[str, tuple]]:
        _, members = element
        best = min(members)[0]
        for rank, path in members:
            if rank[ID] != best[ID]:
                self._dropped.inc()
                yield path, (EXACT, rank[ID], best[ID])


class ExactDecisions(beam.PTransform):
    """Staged file paths -> ``(file, (EXACT, id, kept id))`` for every exact duplicate that is not
    its hash's representative. ``sketch``: a one-element PCollection, the ``KeySketch`` of every
    staged document's ``exact_key`` (or the ``SketchFile`` holding it)."""

    def __init__(self, sketch: Any):
        super().__init__(label=STAGE)
        self._sketch = sketch

    def expand(self, files: Any) -> Any:
        return (files
                | "Candidates" >> beam.ParDo(
                    _Candidates(), pvalue.AsSingleton(self._sketch, default_value=None))
                | "GroupByHash" >> beam.GroupByKey()
                | "Pick" >> beam.ParDo(_Pick()))

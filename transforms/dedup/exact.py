"""Exact dedup: one document per ``exact_hash``, the most trustworthy one kept.

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
from ouroboros.transforms.dedup.representative import pick_representative
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

"""Exact dedup: one document per `exact_hash`, the most trustworthy one kept.

The representative policy (shared with near-dedup): earliest `crawl_date`, then lowest
`synthetic_score` when known, then smallest `id`. Deterministic, so reruns keep the same record.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.metrics import Metrics
from ouroboros.transforms.base import KEPT, METRICS_NAMESPACE, REJECTED, StrictModel, reject
from pydantic import Field


class ExactDedupConfig(StrictModel):
    enabled: bool = Field(True, description="drop documents whose normalized text hash repeats")


def representative_key(doc: dict[str, Any]) -> tuple:
    """Sort key of the representative policy: smaller is preferred. A document an earlier run
    kept (re-read with --reprocess, `_kept_before`) comes first, as in near-dedup's tiers: it is
    itself, and its copies are the duplicates."""
    date = doc.get("crawl_date")
    score = doc.get("synthetic_score")
    return (not doc.get("_kept_before"), date is None, date or "", score is None,
            score if score is not None else 0.0, doc.get("id") or "")


class _KeepRepresentative(beam.DoFn):
    def __init__(self, drop: bool):
        self._drop = drop
        self._dropped = Metrics.counter(METRICS_NAMESPACE, "exact_dedup.dropped.exact_duplicate")
        self._kept = Metrics.counter(METRICS_NAMESPACE, "exact_dedup.kept")

    def process(self, element: tuple[str, Iterable[dict[str, Any]]]):
        _, docs = element
        # Two passes over the grouped iterable (re-iterable on every runner) instead of a list,
        # so a hash shared by very many pages does not need them all in memory at once.
        best = min(docs, key=representative_key)
        best_id = best["id"]
        for doc in docs:
            if doc["id"] == best_id:
                self._kept.inc()
                yield doc
            elif self._drop:
                self._dropped.inc()
                yield pvalue.TaggedOutput(
                    REJECTED, reject(doc, "exact_dedup", f"exact_duplicate_of:{best_id}"))
            else:
                if not doc.get("reject_stage"):
                    reject(doc, "exact_dedup", f"exact_duplicate_of:{best_id}")
                yield doc


class ExactDedup(beam.PTransform):
    """Outputs `kept` (one per exact_hash) and `rejected` (the other copies, naming the kept id)."""

    def __init__(self, drop: bool = True):
        super().__init__()
        self._drop = drop

    def expand(self, docs):
        return (docs
                | "KeyByHash" >> beam.Map(lambda d: (d["exact_hash"], d))
                | "GroupByHash" >> beam.GroupByKey()
                | "KeepRepresentative" >> beam.ParDo(_KeepRepresentative(self._drop))
                .with_outputs(REJECTED, main=KEPT))

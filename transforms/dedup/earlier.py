"""Documents an earlier nightly run already kept, met again because their shard is read again
(rewritten in place, or `--reprocess`).

Ids derive from a document's source and record (`transforms/io/readers/common.record_id`), so a
document read again from the same shard has the id it had. Only shards an earlier run processed
can hold such documents; documents of other shards pass untouched, so a night of new shards costs
nothing here. The ids come from the earlier runs' band indexes (`STATE/minhash-index/<run_id>/`):
every document near-dedup kept, whether or not it had a signature.

- A nightly run: a document whose id an earlier run kept is rejected with
  `kept_by_earlier_run:<run_id>`. It is in that run's partition already: a rewritten shard's
  documents are deduplicated against their earlier versions, never output twice.
- `--reprocess` (a deliberate re-curation of everything): it is kept and marked `_kept_before`,
  so that exact dedup keeps it rather than a copy of it from another shard, and near-dedup treats
  it as itself; what was kept before is kept again, under the same id.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import apache_beam as beam
import pyarrow.parquet as pq
from apache_beam import pvalue
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from ouroboros.transforms.base import KEPT, METRICS_NAMESPACE, REJECTED, StageOutputs, rejected

STAGE = "earlier_runs"
KEPT_BEFORE = "_kept_before"  # transient: not a column, dropped when the record is written


def index_ids(path: str) -> Iterable[tuple[str, str]]:
    """(id, run_id) of every document in one band-index file `.../<run_id>/<file>.parquet`."""
    run_id = path.rstrip("/").rsplit("/", 2)[-2]
    with FileSystems.open(path) as f:
        for batch in pq.ParquetFile(f).iter_batches(columns=["id"], batch_size=65536):
            for doc_id in batch.column(0).to_pylist():
                yield doc_id, run_id


class _Decide(beam.DoFn):
    def __init__(self, reprocess: bool, drop: bool):
        self._reprocess = reprocess
        self._drop = drop
        self._again = Metrics.counter(METRICS_NAMESPACE, f"{STAGE}.kept_before")

    def process(self, kv: tuple[str, dict[str, list]]) -> Iterable[Any]:
        _, joined = kv
        runs = sorted(set(joined["prior"]))
        for doc in joined["doc"]:
            if not runs:
                yield doc
                continue
            self._again.inc()
            if self._reprocess:
                yield {**doc, KEPT_BEFORE: True}
                continue
            out = rejected(doc, STAGE, f"kept_by_earlier_run:{runs[0]}", self._drop)
            yield pvalue.TaggedOutput(REJECTED, out) if self._drop else out


class EarlierRuns(beam.PTransform):
    """``StageOutputs``: documents of `shards_seen` whose id is in `index_files` are rejected
    (nightly) or marked (`reprocess`); every other document is kept untouched."""

    def __init__(self, index_files: Sequence[str], shards_seen: Sequence[str],
                 reprocess: bool = False, drop: bool = True):
        super().__init__(label=STAGE)
        self._index = list(index_files)
        self._seen = frozenset(shards_seen)
        self._reprocess = reprocess
        self._drop = drop

    def expand(self, docs: Any) -> StageOutputs:
        seen = self._seen
        fresh, again = docs | "SeenBefore" >> beam.Partition(
            lambda doc, _: int(doc.get("source_uri") in seen), 2)
        prior = (docs.pipeline
                 | "IndexFiles" >> beam.Create(self._index)
                 | "IndexIds" >> beam.FlatMap(index_ids))
        decided = ({"doc": again | "ById" >> beam.Map(lambda d: (d["id"], d)), "prior": prior}
                   | "JoinIds" >> beam.CoGroupByKey()
                   | "Decide" >> beam.ParDo(_Decide(self._reprocess, self._drop)).with_outputs(
                       REJECTED, main=KEPT))
        kept = (fresh, decided[KEPT]) | "Merge" >> beam.Flatten()
        no_errors = docs.pipeline | "NoErrors" >> beam.Create([])
        return StageOutputs(kept, decided[REJECTED], no_errors)

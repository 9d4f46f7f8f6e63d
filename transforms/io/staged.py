"""Staged documents: what the streaming pass keeps, on disk, for the keyed decisions and the apply pass.

The streaming pass writes every document that reaches the keyed stages (exact dedup, near dedup,
topics, sampling) to Parquet files under the run's work directory, as it streams: one file per
``rows_per_file`` documents of a bundle, named with a fresh UUID, written through Beam's
``FileSystems`` (so ``gs://`` and ``s3://`` work). ``WriteStaged`` emits the name of every file it
closed; only emitted names are read later, so the orphan file of a retried bundle is never read.

The keyed stages read back only the columns they decide on (Parquet is columnar: the text is not
decompressed), and the apply pass reads each file once, whole, row group by row group. No document
crosses a shuffle: only these file names and small keyed records do.

A staged row is a record of ``REJECTED_SCHEMA`` plus internal columns (``STAGED_COLUMNS``): the
MinHash band hashes and signature, the sampling stratum and size, and a deferred stage outcome.
Scores are stored as float64, so that a value read back is the one the streaming pass computed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue
from ouroboros.schemas.record import REJECTED_SCHEMA, conform
from ouroboros.transforms.base import (
    METRICS_NAMESPACE,
    PENDING_ERROR,
    PENDING_ERROR_TYPE,
    PENDING_REASON,
    PENDING_STAGE,
)

BANDS, SIGNATURE = "_bands", "_signature"
STRATUM, SIZE = "_stratum", "_size"
KEPT_BEFORE = "_kept_before"

STAGED_COLUMNS = pa.schema([
    pa.field(PENDING_STAGE, pa.string()),
    pa.field(PENDING_REASON, pa.string()),
    pa.field(PENDING_ERROR_TYPE, pa.string()),
    pa.field(PENDING_ERROR, pa.string()),
    pa.field(BANDS, pa.list_(pa.uint64())),
    pa.field(SIGNATURE, pa.binary()),
    pa.field(STRATUM, pa.string()),
    pa.field(SIZE, pa.float64()),
    pa.field(KEPT_BEFORE, pa.bool_()),
])


def _widened(field: pa.Field) -> pa.Field:
    return field.with_type(pa.float64()) if field.type == pa.float32() else field


STAGED_SCHEMA = pa.schema([_widened(f) for f in REJECTED_SCHEMA] + list(STAGED_COLUMNS))
INTERNAL = frozenset(STAGED_COLUMNS.names)


class WriteStaged(beam.DoFn):
    """Documents -> staged Parquet files; emits each closed file's path."""

    def __init__(self, directory: str, rows_per_file: int = 5000, rows_per_group: int = 1000):
        self._directory = directory.rstrip("/")
        self._rows_per_file = rows_per_file
        self._rows_per_group = rows_per_group
        self._files = Metrics.counter(METRICS_NAMESPACE, "staged.files")
        self._rows = Metrics.counter(METRICS_NAMESPACE, "staged.rows")

    def start_bundle(self) -> None:
        self._writer: pq.ParquetWriter | None = None
        self._handle: Any = None
        self._path: str | None = None
        self._buffer: list[dict[str, Any]] = []
        self._in_file = 0

    def process(self, doc: dict[str, Any]) -> Iterable[str]:
        self._buffer.append(conform(doc, STAGED_SCHEMA))
        if len(self._buffer) >= self._rows_per_group:
            self._flush()
        if self._in_file + len(self._buffer) >= self._rows_per_file:
            yield from self._close()

    def finish_bundle(self) -> Iterable[WindowedValue]:
        for path in self._close():
            yield WindowedValue(path, 0, [GlobalWindow()])

    def _flush(self) -> None:
        if not self._buffer:
            return
        if self._writer is None:
            self._path = f"{self._directory}/{uuid.uuid4().hex}.parquet"
            self._handle = FileSystems.create(self._path)
            self._writer = pq.ParquetWriter(self._handle, STAGED_SCHEMA, compression="zstd")
        self._writer.write_table(pa.Table.from_pylist(self._buffer, STAGED_SCHEMA))
        self._in_file += len(self._buffer)
        self._rows.inc(len(self._buffer))
        self._buffer = []

    def _close(self) -> Iterator[str]:
        self._flush()
        if self._writer is None:
            return
        self._writer.close()
        self._handle.close()
        self._files.inc()
        path, self._writer, self._handle, self._path, self._in_file = self._path, None, None, None, 0
        yield path


class StageDocuments(beam.PTransform):
    """docs -> the paths of the staged files holding them (see the module docstring)."""

    def __init__(self, directory: str, rows_per_file: int = 5000, label: str | None = None):
        super().__init__(label)
        self._directory = directory
        self._rows_per_file = rows_per_file

    def expand(self, docs: Any) -> Any:
        return docs | "Write" >> beam.ParDo(WriteStaged(self._directory, self._rows_per_file))


def staged_batches(path: str, columns: Sequence[str] | None = None,
                   batch_rows: int = 1000) -> Iterator[pa.RecordBatch]:
    """The rows of one staged file, `columns` only (all by default), a batch at a time."""
    with FileSystems.open(path) as f:
        parquet = pq.ParquetFile(f)
        yield from parquet.iter_batches(batch_size=batch_rows, columns=list(columns) if columns else None)


def staged_rows(path: str, columns: Sequence[str] | None = None,
                batch_rows: int = 1000) -> Iterator[dict[str, Any]]:
    """The rows of one staged file as dicts (`columns` only, all by default)."""
    for batch in staged_batches(path, columns, batch_rows):
        yield from batch.to_pylist()


def delete_work(directory: str) -> None:
    """Removes a run's work directory (its staged files), wherever it lies."""
    try:
        if FileSystems.exists(directory):
            FileSystems.delete([directory])
    except OSError:
        pass

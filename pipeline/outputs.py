"""Reading a finished run's output directory: its parts, its stats, and single records in it.

The run report, the dataset card and `ouroboros inspect` read the outputs, not the pipeline's
memory, so they can be rebuilt later from `OUT/` alone. Reads are column-wise and streamed row group
by row group (pyarrow): a report over a large output never holds the texts, and a record lookup
reads the `id` column first and only the row group that holds the match.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

BATCH_ROWS = 65536


def is_remote(path: str) -> bool:
    return "://" in path


def part_files(out: str, part: str) -> list[str]:
    """The Parquet files of one output part (`curated`, `rejected`, `tagged`, `errors`)."""
    if not is_remote(out):
        return sorted(glob.glob(os.path.join(out, part, "*.parquet")))
    from apache_beam.io.filesystems import FileSystems

    pattern = FileSystems.join(out, part, "*.parquet")
    try:
        return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)
    except Exception:  # noqa: BLE001  (no such prefix on an object store: the part is empty)
        return []


def _open(path: str) -> pq.ParquetFile:
    if not is_remote(path):
        return pq.ParquetFile(path)
    from apache_beam.io.filesystems import FileSystems

    return pq.ParquetFile(FileSystems.open(path))


def read_text(out: str, name: str) -> str | None:
    path = f"{out.rstrip('/')}/{name}"
    if not is_remote(out):
        return open(path, encoding="utf-8").read() if os.path.exists(path) else None
    from apache_beam.io.filesystems import FileSystems

    if not FileSystems.exists(path):
        return None
    with FileSystems.open(path) as f:
        return f.read().decode("utf-8")


def write_text(out: str, name: str, text: str) -> str:
    path = f"{out.rstrip('/')}/{name}"
    if not is_remote(out):
        tmp = f"{path}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
        return path
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.create(path) as f:
        f.write(text.encode("utf-8"))
    return path


def read_stats(out: str) -> dict[str, Any]:
    text = read_text(out, "stats.json")
    if text is None:
        raise FileNotFoundError(f"{out} holds no stats.json: not the output of a finished run")
    return json.loads(text)


def mode(out: str) -> str:
    """"tag" for the output of `ouroboros tag` (one `tagged/` part), else "run"."""
    return "tag" if part_files(out, "tagged") else "run"


def iter_batches(out: str, part: str, columns: Iterable[str]) -> Iterator[pa.RecordBatch]:
    """Streams the given columns of a part, row group by row group. Nested fields are named with a
    dot (`quality_signals.n_words`); columns a file does not have are left out of its batches."""
    wanted = list(columns)
    for path in part_files(out, part):
        f = _open(path)
        names = set(f.schema_arrow.names)
        cols = [c for c in wanted if c.split(".", 1)[0] in names]
        if not cols:
            continue
        yield from f.iter_batches(columns=cols, batch_size=BATCH_ROWS)


def find_rows(out: str, part: str, column: str, values: Iterable[str],
              limit: int | None = None) -> list[dict[str, Any]]:
    """Every row of `part` whose `column` is one of `values`, with all its columns.

    Reads `column` alone first, then only the row groups holding a match."""
    wanted = set(values)
    rows: list[dict[str, Any]] = []
    for path in part_files(out, part):
        f = _open(path)
        if column not in f.schema_arrow.names:
            continue
        for rg in range(f.metadata.num_row_groups):
            keys = f.read_row_group(rg, columns=[column]).column(0).to_pylist()
            hits = [i for i, k in enumerate(keys) if k in wanted]
            if not hits:
                continue
            table = f.read_row_group(rg)
            for i in hits:
                row = table.slice(i, 1).to_pylist()[0]
                row["_part"] = part
                rows.append(row)
                if limit is not None and len(rows) >= limit:
                    return rows
    return rows


def find_values(out: str, part: str, column: str, values: Iterable[str],
                columns: list[str]) -> list[dict[str, Any]]:
    """Like `find_rows`, but only `columns` of the matches (never the text unless asked)."""
    wanted = set(values)
    rows = []
    for batch in iter_batches(out, part, [column, *columns]):
        if column not in batch.schema.names:
            continue
        keys = batch.column(column).to_pylist()
        hits = [i for i, k in enumerate(keys) if k in wanted]
        for i in hits:
            row = batch.slice(i, 1).to_pylist()[0]
            row["_part"] = part
            rows.append(row)
    return rows

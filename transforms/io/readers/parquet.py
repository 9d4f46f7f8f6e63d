"""Parquet shards: rows in batches (`read.parquet_batch_rows`); the `text` column (configurable)
is the document, every other column is kept as metadata. A file without that column is one shard
error, not a row error per row."""

from __future__ import annotations

from collections.abc import Iterator

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from ouroboros.transforms.io.limits import LimitExceeded
from ouroboros.transforms.io.readers.common import (
    Item,
    ReadConfig,
    ShardReadError,
    structured_doc,
)


def read_parquet(uri: str, fmt: str, config: ReadConfig) -> Iterator[Item]:
    import pyarrow.parquet as pq

    with FileSystems.open(uri, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        pf = pq.ParquetFile(f)
        if config.text_field not in pf.schema_arrow.names:
            raise ShardReadError(
                f"Parquet schema has no '{config.text_field}' column (columns: "
                f"{', '.join(pf.schema_arrow.names[:20])})", "shard", "missing_text_column")
        meta = pf.metadata
        size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        if size > config.max_shard_decompressed_bytes:
            raise ShardReadError(f"Parquet data of {size:,} bytes", "shard") from LimitExceeded(
                "max_shard_decompressed_bytes", size, config.max_shard_decompressed_bytes)
        row = 0
        for batch in pf.iter_batches(batch_size=config.parquet_batch_rows):
            for obj in batch.to_pylist():
                yield structured_doc(uri, fmt, f"row:{row}", row, obj, config)
                row += 1

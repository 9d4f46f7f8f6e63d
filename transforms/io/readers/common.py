"""What every reader shares: its configuration, the document it builds, the error it raises.

A reader is a generator over one shard yielding ``("doc", dict)``, ``("error", dict)`` or
``("skip", record_type)``; ``transforms/io/read.py`` picks the reader for a shard's format.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ouroboros.transforms.base import StrictModel, error_record
from ouroboros.transforms.io.domains import registered_domain
from ouroboros.transforms.io.limits import DecompressionBudget
from pydantic import Field

Item = tuple[str, Any]


class ReadConfig(StrictModel):
    text_field: str = Field("text", description="JSONL/Parquet/HF field that holds the document text")
    url_fields: tuple[str, ...] = Field(
        ("url", "metadata.url", "metadata.warc_url", "warc_url"),
        description="fields tried in order for the URL (dotted = nested)")
    date_fields: tuple[str, ...] = Field(
        ("crawl_date", "date", "metadata.warc_date", "warc_date", "created", "timestamp"),
        description="fields tried in order for the crawl date")
    max_record_bytes: int = Field(
        20_000_000, gt=0,
        description="a WARC payload, JSONL line or text cell larger than this is quarantined "
                    "(error `max_record_bytes`); it streams past, never held in memory")
    max_record_decompressed_bytes: int = Field(
        1 << 30, gt=0,
        description="bytes one record may decompress to, counting what streams past "
                    "max_record_bytes; beyond it the shard is abandoned at that record "
                    "(error `max_record_decompressed_bytes`)")
    max_shard_decompressed_bytes: int = Field(
        64 << 30, gt=0,
        description="bytes one shard may decompress to; the rest of the shard is quarantined "
                    "(error `max_shard_decompressed_bytes`)")
    max_compression_ratio: float = Field(
        200.0, gt=1,
        description="decompressed/compressed bytes of a shard, judged after 32 MiB of output; web "
                    "text compresses 3-10x, a gzip bomb of zeros ~1000x "
                    "(error `max_compression_ratio`)")
    max_errors_per_shard: int = Field(
        1000, ge=0,
        description="error records written one by one per shard; further errors are counted, "
                    "and one summary record per error type says how many (`error_count`): a "
                    "shard of a million bad lines costs a thousand records, every line counted")
    parquet_batch_rows: int = Field(1000, gt=0, description="rows read at a time from Parquet/HF")


class ShardReadError(Exception):
    """A failure that ends a shard (or its tail), with where it happened."""

    def __init__(self, message: str, location: str, error_type: str | None = None):
        super().__init__(message)
        self.location = location
        if error_type:
            self.error_type = error_type


def budget(config: ReadConfig) -> DecompressionBudget:
    return DecompressionBudget(config.max_shard_decompressed_bytes,
                               config.max_record_decompressed_bytes, config.max_compression_ratio)


def record_id(source_uri: str, source_record_id: str) -> str:
    """Stable across runs: derived only from where the record came from."""
    return hashlib.sha256(f"{source_uri}\x00{source_record_id}".encode()).hexdigest()[:32]


def new_doc(source_uri: str, source_format: str, source_record_id: str, offset: int | None,
            *, id_key: str | None = None, **fields: Any) -> dict[str, Any]:
    """A document with its source provenance; `id_key` replaces `source_record_id` in the id
    where the source's own record id is not unique (repeated WARC-Record-IDs)."""
    doc = {
        "id": record_id(source_uri, id_key or source_record_id),
        "source_uri": source_uri,
        "source_format": source_format,
        "source_record_id": source_record_id,
        "source_offset": offset,
    }
    doc.update(fields)
    url = doc.get("url")
    if url and not doc.get("domain"):
        doc["domain"] = registered_domain(url)
    return doc


def _get(obj: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def structured_doc(uri: str, fmt: str, rec_id: str, offset: int, obj: dict[str, Any],
                   config: ReadConfig) -> Item:
    """A document from a JSON object or a table row; other fields are kept as metadata."""
    text = obj.get(config.text_field)
    location = rec_id
    if text is None:
        return "error", error_record(uri, fmt, location, "read",
                                     f"record has no '{config.text_field}' field",
                                     error_type="missing_text", record_id=rec_id,
                                     raw=json.dumps(obj, default=str)[:200])
    if not isinstance(text, str):
        return "error", error_record(uri, fmt, location, "read",
                                     f"'{config.text_field}' is {type(text).__name__}, not a string",
                                     error_type="bad_text_type", record_id=rec_id)
    if len(text) > config.max_record_bytes:
        return "error", error_record(uri, fmt, location, "read",
                                     f"text of {len(text):,} characters exceeds "
                                     f"read.max_record_bytes={config.max_record_bytes:,}",
                                     error_type="max_record_bytes", record_id=rec_id)
    url = next((v for f in config.url_fields if isinstance(v := _get(obj, f), str) and v), None)
    date = next((v for f in config.date_fields if (v := _get(obj, f)) not in (None, "")), None)
    metadata = {k: v for k, v in obj.items() if k != config.text_field}
    doc = new_doc(uri, fmt, rec_id, offset, text=text, url=url,
                  crawl_date=str(date) if date is not None else None,
                  source_metadata=metadata or None)
    return "doc", doc

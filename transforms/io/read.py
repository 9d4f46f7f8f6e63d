"""Readers for raw shards: WARC, WET, JSONL (.gz/.zst), Parquet and local Hugging Face datasets.

Each reader is a generator over one shard that yields ``("doc", dict)``, ``("error", dict)`` or
``("skip", record_type)``, streaming: a shard is never loaded whole. Files are opened through Beam's
``FileSystems`` so ``gs://`` and ``s3://`` work when the matching Beam extra is installed. Every
document gets its source provenance here; every failure becomes an error record with its location.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from typing import Any

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from ouroboros.transforms.base import StrictModel, error_record
from ouroboros.transforms.io.domains import registered_domain
from ouroboros.transforms.io.limits import (
    DecompressionBudget,
    GuardedStream,
    LimitExceeded,
    bounded_lines,
    guarded_archive_iterator,
)
from pydantic import Field

Item = tuple[str, Any]

FORMATS = ("warc", "wet", "jsonl", "parquet", "hf_dataset")


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
    parquet_batch_rows: int = Field(1000, gt=0, description="rows read at a time from Parquet/HF")


def detect_format(path: str) -> str | None:
    """The shard format from its name; HF datasets are directories holding `state.json`."""
    name = path.lower().rstrip("/")
    for comp in (".gz", ".zst", ".zstd", ".bz2"):
        if name.endswith(comp):
            name = name[: -len(comp)]
            break
    if name.endswith(".wet"):
        return "wet"
    if name.endswith((".warc", ".wat", ".arc")):
        return "warc"
    if name.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    if name.endswith(".parquet"):
        return "parquet"
    if _is_hf_dataset_dir(path):
        return "hf_dataset"
    return None


def _is_hf_dataset_dir(path: str) -> bool:
    return os.path.isdir(path) and any(
        os.path.exists(os.path.join(path, f)) for f in ("state.json", "dataset_dict.json"))


def expand_inputs(patterns: list[str]) -> list[str]:
    """Shard URIs for globs, paths or directories (sorted, de-duplicated, absolute for local files)."""
    shards: list[str] = []
    for pattern in patterns:
        local = "://" not in pattern
        if local and _is_hf_dataset_dir(pattern):
            shards.append(os.path.abspath(pattern))
            continue
        if local and os.path.isdir(pattern):
            pattern = os.path.join(pattern, "*")
        try:
            matched = FileSystems.match([pattern])[0].metadata_list
        except (OSError, ValueError) as exc:  # gs:// without the gcp extra, a store refusing
            raise FileNotFoundError(f"cannot list input {pattern}: {exc}") from None
        if not matched:
            what = "matched no files" if any(c in pattern for c in "*?[") else "not found"
            raise FileNotFoundError(f"input {what}: {pattern}")
        for m in matched:
            shards.append(os.path.abspath(m.path) if local else m.path)
    return sorted(set(shards))


def record_id(source_uri: str, source_record_id: str) -> str:
    """Stable across runs: derived only from where the record came from."""
    return hashlib.sha256(f"{source_uri}\x00{source_record_id}".encode()).hexdigest()[:32]


def new_doc(source_uri: str, source_format: str, source_record_id: str, offset: int | None,
            **fields: Any) -> dict[str, Any]:
    doc = {
        "id": record_id(source_uri, source_record_id),
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


def read_shard(uri: str, fmt: str, config: ReadConfig) -> Iterator[Item]:
    """All items of one shard; a failure that stops the shard becomes its last item (an error)."""
    readers = {"warc": read_warc, "wet": read_warc, "jsonl": read_jsonl,
               "parquet": read_parquet, "hf_dataset": read_hf_dataset}
    produced = False
    try:
        for item in readers[fmt](uri, fmt, config):
            produced = True
            yield item
    except ImportError:
        raise  # a broken installation is not bad input: fail loudly
    except Exception as exc:  # unreadable shard (or its tail): quarantine, never crash the run
        produced = True
        cause = exc.__cause__ if isinstance(exc, ShardReadError) and exc.__cause__ else exc
        kind = (getattr(exc, "error_type", None) or getattr(cause, "limit", None)
                or type(cause).__name__)
        yield "error", error_record(uri, fmt, getattr(exc, "location", "shard"), "read", exc,
                                    error_type=kind)
    if not produced:  # a zero-byte or record-less shard is almost always a failed download
        yield "error", error_record(uri, fmt, "shard", "read", "shard holds no records",
                                    error_type="empty_shard")


class ShardReadError(Exception):
    def __init__(self, message: str, location: str, error_type: str | None = None):
        super().__init__(message)
        self.location = location
        if error_type:
            self.error_type = error_type


# --- WARC / WET -----------------------------------------------------------------------------------

def _budget(config: ReadConfig) -> DecompressionBudget:
    return DecompressionBudget(config.max_shard_decompressed_bytes,
                               config.max_record_decompressed_bytes, config.max_compression_ratio)


def read_warc(uri: str, fmt: str, config: ReadConfig) -> Iterator[Item]:
    """WARC (incl. WARC/0.18) and WET: `response` records become HTML documents, `conversion`
    records (WET) text documents, `resource` records with an http(s) URI documents too; other
    record types are skipped and counted. Gzip members are read one at a time (streaming), every
    decompressed block charged to the shard's `DecompressionBudget`.

    A record whose Content-Length lies is quarantined and the reader resynchronises on the next
    record, so the good records after it survive."""
    with FileSystems.open(uri, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
        budget = _budget(config)
        records = guarded_archive_iterator(raw, budget)
        try:
            for record in records:
                budget.start_record()
                if record.rec_type not in ("response", "conversion", "resource"):
                    yield "skip", f"warc:{record.rec_type}"
                    continue
                # Read the payload before asking for the offset: warcio's get_record_offset()
                # reads the record to its end.
                payload = record.content_stream().read(config.max_record_bytes + 1)
                short = len(payload) <= config.max_record_bytes and _truncated(record)
                warnings = records.err_count
                offset = records.get_record_offset()
                long = records.err_count > warnings
                if short or long:
                    rec_id = record.rec_headers.get_header("WARC-Record-ID")
                    declared = record.rec_headers.get_header("Content-Length")
                    why = ("more than the record's bytes: the record or shard is cut" if short
                           else "less than the record's bytes: bytes follow the declared end")
                    yield "error", error_record(
                        uri, fmt, f"offset:{offset}", "read", f"Content-Length {declared} is {why}",
                        error_type="content_length_mismatch", record_id=rec_id)
                    if long:
                        _resync(records)
                    continue
                yield from _warc_record(uri, fmt, record, payload, offset, config)
        except Exception as exc:
            raise ShardReadError(f"{type(exc).__name__}: {exc}",
                                 f"offset:{getattr(records, 'offset', 0)}") from exc


def _resync(records: Any) -> None:
    """Skips the bytes after a record's declared end up to the next record header: to the end of
    the gzip member (one record per member), or, uncompressed, to the next `WARC/` line."""
    from warcio.utils import BUFF_SIZE

    reader = records.reader
    if reader.decompressor:
        while reader.read(BUFF_SIZE):
            pass
        records.next_line = None
    else:
        line = records.next_line
        while line and not line.startswith((b"WARC/1.", b"WARC/0.")):
            line = reader.readline(BUFF_SIZE)
        records.next_line = line or None
    records.offset = records.fh.tell() - reader.rem_length() - len(records.next_line or b"")


def _truncated(record: Any) -> bool:
    """warcio ends quietly at a cut-off shard: a record without Content-Length, or whose block
    stopped before Content-Length bytes, is the sign."""
    if record.length is None:
        return True
    return getattr(record.raw_stream, "limit", 0) > 0


def _warc_record(uri: str, fmt: str, record: Any, payload: bytes, offset: int,
                 config: ReadConfig) -> Iterator[Item]:
    headers = record.rec_headers
    rec_id = headers.get_header("WARC-Record-ID") or f"offset:{offset}"
    url = (headers.get_header("WARC-Target-URI") or "").strip("<>") or None
    rtype = record.rec_type
    if rtype == "resource" and not (url or "").startswith(("http://", "https://")):
        yield "skip", "warc:resource"  # e.g. wget's own log files stored as resources
        return
    if len(payload) > config.max_record_bytes:
        yield "error", error_record(uri, fmt, f"offset:{offset}", "read",
                                    f"payload exceeds read.max_record_bytes={config.max_record_bytes}",
                                    error_type="max_record_bytes", record_id=rec_id)
        return
    status = None
    content_type = None
    if record.http_headers is not None and rtype == "response":
        try:
            status = int(record.http_headers.get_statuscode())
        except (TypeError, ValueError):
            status = None
        content_type = record.http_headers.get_header("Content-Type")
    else:
        content_type = headers.get_header("Content-Type")
    doc = new_doc(uri, fmt, rec_id, offset, url=url, crawl_date=headers.get_header("WARC-Date"),
                  content_type=content_type, http_status=status)
    if rtype == "conversion":
        doc["text"] = payload.decode("utf-8", "replace")
        doc["source_format"] = "wet"
    else:
        doc["_payload"] = payload
    yield "doc", doc


# --- JSONL ----------------------------------------------------------------------------------------

def _get(obj: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def _structured_doc(uri: str, fmt: str, rec_id: str, offset: int, obj: dict[str, Any],
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


_SURROGATE_ESCAPE = re.compile(rb"\\[uU][dD][89a-fA-F]")


def read_jsonl(uri: str, fmt: str, config: ReadConfig) -> Iterator[Item]:
    """One JSON object per line; compression (.gz, .zst, .bz2) from the file name. Lines stream
    through a bounded buffer: an over-long line is quarantined without ever being held whole."""
    next_line = 0
    with FileSystems.open(uri, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
        stream = GuardedStream(raw, uri, _budget(config))
        try:
            for line_no, line, length in bounded_lines(stream, config.max_record_bytes,
                                                       config.max_record_decompressed_bytes):
                next_line = line_no + 1
                if line is None:
                    yield "error", error_record(
                        uri, fmt, f"line:{line_no}", "read",
                        f"line of {length:,} bytes exceeds read.max_record_bytes="
                        f"{config.max_record_bytes:,}", error_type="max_record_bytes")
                    continue
                if not line.strip():
                    continue
                yield _json_line(uri, fmt, line_no, line, config)
        except Exception as exc:  # truncated or corrupt compression, or a spent budget
            location = getattr(exc, "location", None) or f"line:{next_line}"
            raise ShardReadError(f"{type(exc).__name__}: {exc} (after line {next_line - 1})",
                                 location) from exc


def _json_line(uri: str, fmt: str, line_no: int, line: bytes, config: ReadConfig) -> Item:
    location = f"line:{line_no}"
    try:
        obj = json.loads(line)
    except UnicodeDecodeError as exc:
        return "error", error_record(uri, fmt, location, "read", exc, error_type="invalid_utf8",
                                     raw=line)
    except (ValueError, RecursionError) as exc:
        return "error", error_record(uri, fmt, location, "read", exc, error_type="invalid_json",
                                     raw=line)
    if not isinstance(obj, dict):
        return "error", error_record(uri, fmt, location, "read",
                                     f"line is a JSON {type(obj).__name__}, not an object",
                                     error_type="invalid_json", raw=line)
    if _SURROGATE_ESCAPE.search(line):  # `\ud800` decodes to a str that UTF-8 cannot encode
        try:
            json.dumps(obj, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            return "error", error_record(uri, fmt, location, "read",
                                         f"lone surrogate escape: {exc}",
                                         error_type="invalid_utf8", raw=line)
    return _structured_doc(uri, fmt, location, line_no, obj, config)


# --- Parquet and HF datasets ----------------------------------------------------------------------

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
                yield _structured_doc(uri, fmt, f"row:{row}", row, obj, config)
                row += 1


def read_hf_dataset(uri: str, fmt: str, config: ReadConfig) -> Iterator[Item]:
    """A dataset saved with `save_to_disk` (memory-mapped Arrow: rows stream from disk)."""
    import datasets

    loaded = datasets.load_from_disk(uri)
    splits = loaded.items() if isinstance(loaded, datasets.DatasetDict) else [(None, loaded)]
    for split, ds in splits:
        if config.text_field not in ds.column_names:
            raise ShardReadError(f"dataset{'/' + split if split else ''} has no "
                                 f"'{config.text_field}' column", "shard", "missing_text_column")
        prefix = f"{split}/" if split else ""
        for row, obj in enumerate(ds):
            yield _structured_doc(uri, fmt, f"{prefix}row:{row}", row, obj, config)

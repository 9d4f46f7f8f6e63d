"""WARC (1.0, 1.1, 0.18) and WET shards, read with warcio, one gzip member at a time.

`response` records become HTML documents, `conversion` records (WET) text documents, `resource`
records with an http(s) URI documents too; other record types are skipped and counted. Every
decompressed block is charged to the shard's `DecompressionBudget`.

Quarantined, with the rest of the shard read on: a record whose Content-Length lies (the reader
resynchronises on the next record), a response or conversion without `WARC-Target-URI` (warcio
itself would raise on it and end the shard). Record ids: `WARC-Record-ID`; a shard that repeats one
gives each later record with it an id derived from its byte offset as well, so ids stay distinct
and stable across runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from ouroboros.transforms.base import error_record
from ouroboros.transforms.io.limits import guarded_archive_iterator
from ouroboros.transforms.io.readers.common import (
    Item,
    ReadConfig,
    ShardReadError,
    budget,
    new_doc,
)
from warcio.recordloader import ArcWarcRecordLoader

# Record types that carry a document only together with the URI they were fetched from.
_NEED_URI = ("response", "conversion")


def read_warc(uri: str, fmt: str, config: ReadConfig) -> Iterator[Item]:
    with FileSystems.open(uri, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
        spent = budget(config)
        records = guarded_archive_iterator(raw, spent)
        records.loader = _TolerantLoader()
        seen: set[bytes] = set()  # digests of the record ids met so far in this shard
        try:
            for record in records:
                spent.start_record()
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
                rec_id = record.rec_headers.get_header("WARC-Record-ID")
                if short or long:
                    declared = record.rec_headers.get_header("Content-Length")
                    why = ("more than the record's bytes: the record or shard is cut" if short
                           else "less than the record's bytes: bytes follow the declared end")
                    yield "error", error_record(
                        uri, fmt, f"offset:{offset}", "read", f"Content-Length {declared} is {why}",
                        error_type="content_length_mismatch", record_id=rec_id)
                    if long:
                        _resync(records)
                    continue
                if record.rec_type in _NEED_URI and not record.rec_headers.get_header(
                        "WARC-Target-URI"):
                    yield "error", error_record(
                        uri, fmt, f"offset:{offset}", "read",
                        f"{record.rec_type} record without WARC-Target-URI",
                        error_type="missing_target_uri", record_id=rec_id)
                    continue
                yield from _warc_record(uri, fmt, record, payload, offset, config,
                                        _repeated(rec_id, seen))
        except Exception as exc:
            raise ShardReadError(f"{type(exc).__name__}: {exc}",
                                 f"offset:{getattr(records, 'offset', 0)}") from exc


def _repeated(rec_id: str | None, seen: set[bytes]) -> bool:
    """True when `rec_id` was met before in this shard (16-byte digests: bounded memory)."""
    if not rec_id:
        return False
    digest = hashlib.blake2b(rec_id.encode(), digest_size=16).digest()
    if digest in seen:
        return True
    seen.add(digest)
    return False


class _TolerantLoader(ArcWarcRecordLoader):
    """warcio's loader, except that a record without WARC-Target-URI is parsed (without HTTP
    headers) instead of raising AttributeError inside warcio, which would end the shard."""

    def load_http_headers(self, rec_type, uri, stream, length):
        if uri is None:
            return None
        return super().load_http_headers(rec_type, uri, stream, length)


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
                 config: ReadConfig, repeated: bool) -> Iterator[Item]:
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
    doc = new_doc(uri, fmt, rec_id, offset, id_key=f"{rec_id}@{offset}" if repeated else None,
                  url=url, crawl_date=headers.get_header("WARC-Date"),
                  content_type=content_type, http_status=status)
    if rtype == "conversion":
        doc["text"] = payload.decode("utf-8", "replace")
        doc["source_format"] = "wet"
    else:
        doc["_payload"] = payload
    yield "doc", doc

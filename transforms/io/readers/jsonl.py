"""JSONL shards (`.jsonl`, `.json`, `.ndjson`; plain, `.gz`, `.zst`, `.bz2`): one JSON object per
line, streamed through a bounded buffer, so an over-long line is quarantined without ever being
held whole. A compressed stream that ends early (a cut download) is an error at the first line
it could not deliver, saying how many bytes were read (`limits.TruncatedStream`)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from ouroboros.transforms.base import error_record
from ouroboros.transforms.io.limits import GuardedStream, bounded_lines
from ouroboros.transforms.io.readers.common import (
    Item,
    ReadConfig,
    ShardReadError,
    budget,
    structured_doc,
)

_SURROGATE_ESCAPE = re.compile(rb"\\[uU][dD][89a-fA-F]")


def read_jsonl(uri: str, fmt: str, config: ReadConfig) -> Iterator[Item]:
    next_line = 0
    with FileSystems.open(uri, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
        stream = GuardedStream(raw, uri, budget(config))
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
    return structured_doc(uri, fmt, location, line_no, obj, config)

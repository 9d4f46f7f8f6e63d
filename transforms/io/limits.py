"""Limits on hostile input: bounded decompression, bounded lines, cheap pre-parse guards.

Web shards are hostile: decompression bombs, lines of tens of megabytes, pages nested a hundred
thousand levels deep, binary files labelled `text/html`. Everything here streams with a bounded
buffer, and a violated limit raises ``LimitExceeded`` carrying the limit's config name, so the record
or shard is quarantined under that name instead of being dropped silently or crashing the worker.
"""

from __future__ import annotations

import bz2
import gzip
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

# Decompression ratio is judged only after this much output: small files of repeated markup can
# legitimately compress 100x, a bomb keeps its ratio for gigabytes.
RATIO_MIN_BYTES = 32 * 1024 * 1024


class TruncatedStream(EOFError):
    """A compressed stream ended inside a member or frame: the shard was cut (a failed download).
    The message says how far reading got; the reader reports it at the first line it lost."""

    error_type = "truncated"


class LimitExceeded(Exception):
    """A configured limit was exceeded; `limit` is the config key (e.g. `max_record_bytes`)."""

    def __init__(self, limit: str, value: float, maximum: float, location: str | None = None):
        super().__init__(f"{limit} exceeded: {value:,.0f} > {maximum:,.0f}")
        self.limit = limit
        self.value = value
        self.maximum = maximum
        if location is not None:
            self.location = location


@dataclass
class DecompressionBudget:
    """Counts the bytes one shard decompresses to; raises as soon as a budget is spent.

    `compressed` and `decompressed` grow block by block as the reader pulls data, so a bomb is
    stopped after at most one block of output beyond the limit, never after inflating it whole.
    """

    max_shard_bytes: int
    max_record_bytes: int
    max_ratio: float
    compressed: int = 0
    decompressed: int = 0
    record_start: int = 0

    def add(self, compressed: int, decompressed: int) -> None:
        self.compressed += compressed
        self.decompressed += decompressed
        if self.decompressed > self.max_shard_bytes:
            raise LimitExceeded("max_shard_decompressed_bytes", self.decompressed,
                                self.max_shard_bytes)
        in_record = self.decompressed - self.record_start
        if in_record > self.max_record_bytes:
            raise LimitExceeded("max_record_decompressed_bytes", in_record, self.max_record_bytes)
        if self.decompressed > RATIO_MIN_BYTES and self.compressed:
            ratio = self.decompressed / self.compressed
            if ratio > self.max_ratio:
                raise LimitExceeded("max_compression_ratio", ratio, self.max_ratio)

    def start_record(self) -> None:
        self.record_start = self.decompressed


class _CountingRaw:
    """The compressed side: counts what the decompressor pulls from the file (and shows it to
    a `ZstdFrames` walker, when there is one)."""

    def __init__(self, raw: IO[bytes]):
        self._raw = raw
        self.count = 0
        self.frames: ZstdFrames | None = None

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self.count += len(data)
        if self.frames is not None:
            self.frames.feed(data)
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:  # the caller owns the raw file
        pass


class GuardedStream:
    """Decompressed bytes of a file (gzip, multi-member gzip, zstd, bz2 or none), in bounded reads,
    charged to a `DecompressionBudget`. The decompressor is chosen from the file name. A stream
    that ends inside a gzip member, a bzip2 stream or a zstd frame raises `TruncatedStream`."""

    def __init__(self, raw: IO[bytes], name: str, budget: DecompressionBudget):
        self._counting = _CountingRaw(raw)
        self._budget = budget
        self._seen = 0
        self._decompressed = 0
        self._frames: ZstdFrames | None = None
        lower = name.lower()
        if lower.endswith(".gz"):
            self._kind = "gzip"
            self._stream = gzip.GzipFile(fileobj=self._counting, mode="rb")
        elif lower.endswith((".zst", ".zstd")):
            import zstandard

            # python-zstandard ends quietly where a frame is cut (checked: 0.25); the frame
            # walker sees every compressed byte and tells whether the input ended between frames.
            self._kind = "zstd"
            self._frames = self._counting.frames = ZstdFrames()
            self._stream = zstandard.ZstdDecompressor().stream_reader(
                self._counting, read_across_frames=True)
        elif lower.endswith(".bz2"):
            self._kind = "bzip2"
            self._stream = bz2.BZ2File(self._counting, mode="rb")
        else:
            self._kind = None
            self._stream = self._counting
        # read1 hands over what one decompression step produced, so the data before a corrupt
        # or truncated tail is delivered before the error is raised.
        self._read = getattr(self._stream, "read1", self._stream.read)

    def read(self, n: int) -> bytes:
        try:
            data = self._read(n)
        except EOFError as exc:  # gzip and bz2: "Compressed file ended before the end-of-stream"
            raise TruncatedStream(self._cut(f"inside a {self._kind} stream")) from exc
        if not data and self._frames is not None and not self._frames.complete():
            raise TruncatedStream(self._cut(self._frames.where()))
        compressed = self._counting.count - self._seen
        self._seen = self._counting.count
        self._decompressed += len(data)
        self._budget.add(compressed, len(data))
        return data

    def _cut(self, where: str) -> str:
        return (f"{self._kind} input ends {where}: the shard is cut after {self._counting.count:,} "
                f"compressed bytes ({self._decompressed:,} bytes decompressed)")


class ZstdFrames:
    """Follows the frame and block headers of a zstd stream as its bytes go by (RFC 8878: frame
    header, blocks whose headers give their sizes, optional checksum; skippable frames), without
    decompressing anything, so the end of the input can be checked: between two frames, or cut."""

    _MAGIC = 0xFD2FB528

    def __init__(self) -> None:
        self.frames = 0  # complete frames so far
        self._buf = bytearray()
        self._need = 4  # header bytes to collect before `_header` can read them
        self._skip = 0  # body bytes to pass over before `_after_skip`
        self._state = "magic"
        self._checksum = False
        self._last = False
        self._invalid = False

    def feed(self, data: bytes) -> None:
        view, i = memoryview(data), 0
        while i < len(view) and not self._invalid:
            if self._skip:
                step = min(self._skip, len(view) - i)
                self._skip -= step
                i += step
                if not self._skip:
                    self._after_skip()
                continue
            step = min(self._need - len(self._buf), len(view) - i)
            self._buf += view[i:i + step]
            i += step
            if len(self._buf) == self._need:
                header, self._buf = bytes(self._buf), bytearray()
                self._header(header)

    def _header(self, b: bytes) -> None:
        if self._state == "magic":
            magic = int.from_bytes(b, "little")
            if magic == self._MAGIC:
                self._state, self._need = "descriptor", 1
            elif magic & 0xFFFFFFF0 == 0x184D2A50:
                self._state, self._need = "skippable", 4
            else:
                self._invalid = True  # not zstd: the decompressor reports that itself
        elif self._state == "descriptor":
            fhd = b[0]
            fcs, single, dict_id = fhd >> 6, (fhd >> 5) & 1, fhd & 3
            self._checksum = bool((fhd >> 2) & 1)
            self._pass("header", (0 if single else 1) + (0, 1, 2, 4)[dict_id]
                       + ((1 if single else 0), 2, 4, 8)[fcs])
        elif self._state == "block":
            h = int.from_bytes(b, "little")
            self._last = bool(h & 1)
            self._pass("block_body", 1 if (h >> 1) & 3 == 1 else h >> 3)  # RLE: one byte
        elif self._state == "skippable":
            self._pass("skippable_body", int.from_bytes(b, "little"))

    def _pass(self, state: str, n: int) -> None:
        self._state, self._skip = state, n
        if not n:
            self._after_skip()

    def _after_skip(self) -> None:
        if self._state == "header" or (self._state == "block_body" and not self._last):
            self._state, self._need = "block", 3
        elif self._state == "block_body" and self._checksum:
            self._pass("checksum", 4)
        else:  # the last block, its checksum, or a skippable frame: a frame ends here
            self.frames += self._state != "skippable_body"
            self._state, self._need = "magic", 4

    def complete(self) -> bool:
        """True when the bytes so far end between two frames (or are not zstd at all)."""
        return self._invalid or (self._state == "magic" and not self._buf and not self._skip)

    def where(self) -> str:
        part = "header" if self._state in ("magic", "descriptor", "header") else "blocks"
        return f"inside the {part} of zstd frame {self.frames + 1}"


def bounded_lines(stream: GuardedStream | IO[bytes], max_line_bytes: int, max_skip_bytes: int,
                  chunk_size: int = 1 << 20) -> Iterator[tuple[int, bytes | None, int]]:
    """(line number, line without its newline or None when longer than `max_line_bytes`, length).

    Memory stays below `max_line_bytes + chunk_size` whatever the input: an over-long line is
    skipped as it streams past, never assembled. A line longer than `max_skip_bytes` ends the
    shard (raises): there is no point decompressing gigabytes to find the next newline.
    """
    pending = bytearray()
    skipping = False
    length = 0
    line_no = 0
    while True:
        chunk = stream.read(chunk_size)
        if not chunk:
            break
        start = 0
        while True:
            nl = chunk.find(b"\n", start)
            end = nl if nl >= 0 else len(chunk)
            length += end - start
            if not skipping and length > max_line_bytes:
                skipping = True
                pending = bytearray()  # release the buffer now
            if skipping:
                if length > max_skip_bytes:
                    raise LimitExceeded("max_record_decompressed_bytes", length, max_skip_bytes,
                                        location=f"line:{line_no}")
            else:
                pending += chunk[start:end]
            if nl < 0:
                break
            yield line_no, None if skipping else bytes(pending), length
            pending.clear()
            skipping = False
            length = 0
            line_no += 1
            start = nl + 1
    if length or skipping:
        yield line_no, None if skipping else bytes(pending), length


# --- WARC: the same budget inside warcio's own gzip reader ------------------------------------------

def guarded_archive_iterator(raw: IO[bytes], budget: DecompressionBudget):
    """warcio's ArchiveIterator whose decompressing reader charges every block to `budget`.

    warcio decompresses one gzip member (= one record) block by block (16 KiB in); replacing its
    reader keeps its record parsing and compressed offsets while bounding what a bomb can cost.
    """
    from warcio.archiveiterator import ArchiveIterator
    from warcio.bufferedreaders import DecompressingBufferedReader

    class _GuardedReader(DecompressingBufferedReader):
        def _process_read(self, data: bytes) -> None:
            super()._process_read(data)
            if data:
                budget.add(len(data), self.buff_size)

    records = ArchiveIterator(raw, check_digests=False)
    records.reader = _GuardedReader(records.fh, block_size=records.reader.block_size)
    return records


# --- HTML pre-parse guards --------------------------------------------------------------------------

_TAG = re.compile(rb"<(/?)([A-Za-z][A-Za-z0-9:-]{0,30})")
# Elements that never nest (void) or whose end tag is optional: counting them would turn ordinary
# sloppy HTML into fake depth.
_FLAT = frozenset(
    b"area base br col embed hr img input link meta param source track wbr p li dt dd tr td th "
    b"option optgroup rb rt rp tbody thead tfoot colgroup caption html head body".split())


def html_depth(payload: bytes, stop_at: int) -> int:
    """Upper estimate of the element nesting depth, from a regex scan of the tags (no parse).

    Returns as soon as the depth passes `stop_at`, so a hostile page costs one partial scan.
    """
    depth = deepest = 0
    for m in _TAG.finditer(payload):
        name = m.group(2).lower()
        if name in _FLAT:
            continue
        if m.group(1):
            depth = max(depth - 1, 0)
        else:
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > stop_at:
                    break
    return deepest


_MAGIC = ((b"%PDF-", "pdf"), (b"\x89PNG\r\n\x1a\n", "png"), (b"GIF87a", "gif"), (b"GIF89a", "gif"),
          (b"\xff\xd8\xff", "jpeg"), (b"PK\x03\x04", "zip"), (b"\x1f\x8b", "gzip"),
          (b"(\xb5/\xfd", "zstd"), (b"BZh", "bzip2"), (b"\x7fELF", "elf"), (b"MZ", "exe"),
          (b"OggS", "ogg"), (b"ID3", "mp3"), (b"\x00\x00\x01\x00", "ico"), (b"wOFF", "woff"),
          (b"wOF2", "woff2"), (b"\xd0\xcf\x11\xe0", "ms-office"), (b"7z\xbc\xaf", "7z"))


def binary_kind(payload: bytes) -> str | None:
    """The kind of a binary payload (by magic bytes, or NUL bytes in text), None for text.

    Servers label PDFs and images `text/html`; parsing them as HTML wastes time and yields junk.
    """
    head = payload[:16]
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if head.startswith(b"RIFF") and payload[8:12] in (b"WEBP", b"WAVE", b"AVI "):
        return payload[8:12].decode().strip().lower()
    if payload[4:8] == b"ftyp":
        return "mp4"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return None  # UTF-16 text has NULs
    sample = payload[:4096]
    if sample and sample.count(0) > len(sample) // 100:
        return "binary"
    return None

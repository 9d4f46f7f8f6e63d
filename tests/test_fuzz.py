"""Property-based fuzzing (hypothesis) of the readers and the text functions, bounded in time.

Invariants: a reader never raises on any bytes, every item it yields is a document with valid UTF-8
text or an error record with a location; the bounded line splitter agrees with `bytes.split`; the
text functions never raise and never produce text that the Parquet writer would refuse.
"""

from __future__ import annotations

import gzip
import json
import os
import tempfile
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ouroboros.transforms.io.extract import ExtractConfig, decode_html, extract_text, is_html
from ouroboros.transforms.io.limits import binary_kind, bounded_lines, html_depth
from ouroboros.transforms.io.normalize import exact_dedup_key, normalize_text
from ouroboros.transforms.io.read import ReadConfig, read_shard

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SMALL = ReadConfig(max_record_bytes=200, max_record_decompressed_bytes=5_000)

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8)
_json_line = st.one_of(
    st.dictionaries(st.sampled_from(["text", "url", "title", "date"]), _json_values, max_size=4)
    .map(lambda d: json.dumps(d).encode()),
    st.builds(lambda t: json.dumps({"text": t}, ensure_ascii=False).encode(), st.text(max_size=80)),
    st.binary(max_size=80))


def _read(data: bytes, suffix: str, config: ReadConfig = SMALL) -> list:
    fd, path = tempfile.mkstemp(suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return list(read_shard(path, "warc" if ".warc" in suffix else "jsonl", config))
    finally:
        os.unlink(path)


def _check_items(items: list) -> None:
    assert items, "a shard always yields something (at least an empty_shard error)"
    for kind, item in items:
        assert kind in ("doc", "error", "skip")
        if kind == "doc":
            assert isinstance(item.get("text", ""), str)
            (item.get("text") or "").encode("utf-8")  # strict: Arrow would refuse surrogates
            json.dumps(item.get("source_metadata"), ensure_ascii=False, default=str).encode("utf-8")
        elif kind == "error":
            assert item["source_location"] and item["error_type"] and item["error_message"]


@pytest.mark.slow
@FAST
@given(lines=st.lists(_json_line, max_size=12), cut=st.floats(0, 1), compress=st.booleans())
def test_jsonl_reader_never_raises_on_any_lines(lines, cut, compress):
    data = b"\n".join(lines) + b"\n"
    if compress:
        data = gzip.compress(data)
        data = data[: max(1, int(len(data) * cut))] if cut < 0.9 else data
    items = _read(data, ".jsonl.gz" if compress else ".jsonl")
    _check_items(items)
    if not compress:  # every non-blank line is accounted for exactly once
        assert len(items) == max(1, sum(1 for ln in data.split(b"\n")[:-1] if ln.strip()))


def _warc(body: bytes) -> bytes:
    block = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n" + body
    return (b"WARC/1.0\r\nWARC-Type: response\r\nWARC-Record-ID: <urn:uuid:x>\r\n"
            b"WARC-Target-URI: https://example.org/\r\nContent-Length: %d\r\n\r\n" % len(block)
            + block + b"\r\n\r\n")


_VALID_WARC = gzip.compress(_warc(b"<html><body><p>hello</p></body></html>")) * 3


@FAST
@given(flips=st.lists(st.tuples(st.integers(0, len(_VALID_WARC) - 1), st.integers(0, 255)),
                      max_size=4),
       cut=st.integers(0, len(_VALID_WARC)), gz=st.booleans())
def test_warc_reader_never_raises_on_corrupted_shards(flips, cut, gz):
    data = bytearray(_VALID_WARC if gz else zlib.decompress(_VALID_WARC[: len(_VALID_WARC) // 3], 31) * 3)
    for pos, value in flips:
        data[pos % len(data)] = value
    items = _read(bytes(data[:cut]), ".warc.gz" if gz else ".warc")
    _check_items(items)
    for kind, item in items:
        if kind == "error":
            assert item["source_location"].startswith(("offset:", "shard"))


@FAST
@given(data=st.binary(max_size=3000), max_line=st.integers(1, 50), chunk=st.integers(1, 64))
def test_bounded_lines_agrees_with_split(data, max_line, chunk):
    import io

    got = list(bounded_lines(io.BytesIO(data), max_line, 10**9, chunk_size=chunk))
    want = data.split(b"\n")
    if want and want[-1] == b"":
        want.pop()
    assert [n for n, _, _ in got] == list(range(len(want)))
    for (_, line, length), expected in zip(got, want):
        assert length == len(expected)
        assert line == (expected if len(expected) <= max_line else None)


@FAST
@given(st.text(max_size=300))
def test_normalize_is_idempotent_and_clean(text):
    once = normalize_text(text)
    assert normalize_text(once) == once
    assert "\r" not in once and "\x00" not in once and once == once.strip()
    assert len(exact_dedup_key(text)) == 32
    if not any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        once.encode("utf-8")


@FAST
@given(payload=st.binary(max_size=400), content_type=st.one_of(
    st.none(), st.sampled_from(["text/html", "text/html; charset=utf-8", "text/html; charset=shift_jis",
                                "text/html; charset=x-bogus", "application/pdf", "text/plain; charset=utf-16"])))
def test_decoding_and_sniffing_never_raise_and_give_valid_text(payload, content_type):
    text = decode_html(payload, content_type)
    assert isinstance(text, str)
    text.encode("utf-8")  # strict
    is_html(content_type, payload)
    binary_kind(payload)
    assert 0 <= html_depth(payload, 50) <= payload.count(b"<") + 1


_html = st.recursive(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20),
    lambda inner: st.builds(lambda tag, kids: f"<{tag}>{''.join(kids)}</{tag}>",
                            st.sampled_from(["div", "p", "span", "table", "td", "script", "b", "x"]),
                            st.lists(inner, max_size=3)),
    max_leaves=20)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=_html, engine=st.sampled_from(["resiliparse", "trafilatura"]))
def test_extractors_never_raise_on_generated_markup(body, engine):
    text = extract_text(f"<html><body>{body}</body></html>", ExtractConfig(engine=engine))
    assert isinstance(text, str)
    text.encode("utf-8")

"""Readers: every shard format, streaming, and bad input quarantined with its location."""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from ouroboros.transforms.io.read import ReadConfig, detect_format, expand_inputs, read_shard

from tests.conftest import WEB, require_data

CFG = ReadConfig()


def items(path, fmt=None):
    path = str(path)
    return list(read_shard(path, fmt or detect_format(path), CFG))


def docs_of(result):
    return [d for kind, d in result if kind == "doc"]


def errors_of(result):
    return [d for kind, d in result if kind == "error"]


@pytest.mark.parametrize("name, fmt, n_docs", [
    ("cc-main-2020-34-excerpt.warc.gz", "warc", 16),
    ("cc-main-2024-22-one-page.warc.gz", "warc", 1),
    ("cc-main-2024-22-one-page.warc.wet.gz", "wet", 1),
    ("cc-main-2024-22-one-page.warc.wat.gz", "warc", 0),
    ("warc018-eucjp-quirk.warc.gz", "warc", 29),
    ("wget-crawl-0000.warc.gz", "warc", 22),
    ("wget-crawl-0001.warc.gz", "warc", 15),
    ("CC-MAIN-20190717121559-20190717143559-00140.jsonl.gz", "jsonl", 697),
])
def test_real_shards(name, fmt, n_docs):
    path = require_data("web", name)
    assert detect_format(str(path)) == fmt
    result = items(path)
    docs = docs_of(result)
    assert len(docs) == n_docs
    assert not errors_of(result)
    for d in docs:
        assert d["id"] and d["source_uri"] == str(path) and d["source_record_id"]
        assert d["url"], d


def test_warc_provenance_fields():
    docs = docs_of(items(require_data("web", "cc-main-2024-22-one-page.warc.gz")))
    d = docs[0]
    assert d["url"] == "https://an.wikipedia.org/wiki/Escopete"
    assert d["domain"] == "wikipedia.org"
    assert d["http_status"] == 200 and d["content_type"].startswith("text/html")
    assert d["source_record_id"].startswith("<urn:uuid:")
    assert d["crawl_date"] == "2024-05-18T01:58:10Z"
    assert b"Escopete" in d["_payload"]


def test_jsonl_metadata_and_url():
    docs = docs_of(items(require_data("web", "CC-MAIN-20190717121559-20190717143559-00140.jsonl.gz")))
    d = docs[0]
    assert d["source_record_id"] == "line:0" and d["source_offset"] == 0
    assert d["crawl_date"] and d["url"]
    assert "metadata" in d["source_metadata"]  # other fields kept for provenance


def test_parquet_zstd_jsonl_and_hf_dataset_read_the_same_documents(tmp_path):
    src = docs_of(items(require_data("web", "CC-MAIN-20190717121559-20190717143559-00140.jsonl.gz")))[:50]
    rows = [{"text": d["text"], "url": d["url"], "lang_hint": "x"} for d in src]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "s.parquet", row_group_size=7)
    with open(tmp_path / "s.jsonl.zst", "wb") as f:
        f.write(zstandard.ZstdCompressor().compress(
            "".join(json.dumps(r) + "\n" for r in rows).encode()))
    import datasets

    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "hf"))
    for path, fmt in [(tmp_path / "s.parquet", "parquet"), (tmp_path / "s.jsonl.zst", "jsonl"),
                      (tmp_path / "hf", "hf_dataset")]:
        assert detect_format(str(path)) == fmt
        docs = docs_of(items(path))
        assert [d["text"] for d in docs] == [r["text"] for r in rows], fmt
        assert docs[3]["source_record_id"] == "row:3" if fmt != "jsonl" else "line:3"
        assert json.loads(json.dumps(docs[0]["source_metadata"]))["lang_hint"] == "x"


def test_expand_inputs_globs_and_directories(tmp_path):
    require_data("web")
    shards = expand_inputs([str(WEB / "*.warc.gz"), str(WEB)])
    assert len(shards) == len(set(shards)) == 8
    with pytest.raises(FileNotFoundError):
        expand_inputs([str(tmp_path / "nothing-*.jsonl")])


def test_truncated_gzip_jsonl_keeps_records_before_the_cut(tmp_path):
    payload = gzip.compress("".join(json.dumps({"text": f"doc {i} " * 50}) + "\n"
                                    for i in range(2000)).encode())
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(payload[: len(payload) // 2])
    result = items(path)
    docs, errors = docs_of(result), errors_of(result)
    assert 100 < len(docs) < 2000
    assert len(errors) == 1
    assert errors[0]["source_location"] == f"line:{len(docs)}" or errors[0]["source_location"].startswith("line:")
    assert errors[0]["error_stage"] == "read" and errors[0]["source_uri"] == str(path)


def test_invalid_json_lines_and_missing_text_are_errors_with_line_numbers(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "good one"}\n{not json\n{"title": "no text"}\n[1, 2]\n'
                    '{"text": 5}\n\n{"text": "good two"}\n')
    result = items(path)
    assert [d["text"] for d in docs_of(result)] == ["good one", "good two"]
    errors = {e["source_location"]: e["error_type"] for e in errors_of(result)}
    assert errors == {"line:1": "invalid_json", "line:2": "missing_text", "line:3": "invalid_json",
                      "line:4": "bad_text_type"}


def test_bad_warc_header_and_truncated_warc(tmp_path):
    good = require_data("web", "wget-crawl-0000.warc.gz").read_bytes()
    bad_header = tmp_path / "badheader.warc.gz"
    bad_header.write_bytes(gzip.compress(b"NOT-A-WARC/9.9\r\nfoo: bar\r\n\r\n") + good)
    result = items(bad_header)
    assert not docs_of(result) and len(errors_of(result)) == 1
    assert errors_of(result)[0]["source_location"] == "offset:0"

    truncated = tmp_path / "truncated.warc.gz"
    truncated.write_bytes(good[: int(len(good) * 0.6)])
    result = items(truncated)
    assert 0 < len(docs_of(result)) < 22
    [err] = errors_of(result)
    assert err["source_location"].startswith("offset:") and err["error_stage"] == "read"


def test_parquet_without_text_column_is_a_shard_error(tmp_path):
    path = tmp_path / "wrong.parquet"
    pq.write_table(pa.table({"body": ["a", "b"]}), path)
    [(kind, err)] = items(path)
    assert kind == "error" and "no 'text' column" in err["error_message"]

"""Readers: the integrity failures of issue 12 (items 5-10), each over a real `execute()`.

Every shard here mixes the bad part with good records; the tests name the exact records that must
come out (documents by `source_record_id`, errors by type and location) and check that the run's
accounting counts every input record.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest
import zstandard
from ouroboros.pipeline.cli import execute, main
from ouroboros.transforms.io.read import ReadConfig, expand_inputs, read_shard

from tests.conftest import read_output, require_data
from tests.test_bad_inputs import html_page, jsonl, prose, warc_record

DOLMA = "CC-MAIN-20190717121559-20190717143559-00140.jsonl.gz"


def _without_target_uri(record: bytes, rec_id: str) -> bytes:
    cut = record.replace(f"WARC-Target-URI: https://example.org/{rec_id}\r\n".encode(), b"")
    assert cut != record
    return cut


def _zstd_frames(lines: list[bytes], split: int) -> tuple[bytes, int]:
    """Two zstd frames (lines[:split], lines[split:]) back to back; returns them and where the
    second frame starts."""
    c = zstandard.ZstdCompressor()
    first = c.compress(b"".join(lines[:split]))
    return first + c.compress(b"".join(lines[split:])), len(first)


@pytest.fixture(scope="module")
def bad_shards(tmp_path_factory):
    """The shards of items 5, 6, 8 and 9, and one run of `ouroboros run` over all of them."""
    root = tmp_path_factory.mktemp("reader-integrity")
    shards = root / "shards"
    shards.mkdir()
    # 5: a response record without WARC-Target-URI among 16 good ones, gzip per record.
    recs = [warc_record(f"nouri-good-{i}", html_page(3000 + i)) for i in range(16)]
    bad = _without_target_uri(warc_record("nouri-bad", html_page(3099)), "nouri-bad")
    (shards / "no-target-uri.warc.gz").write_bytes(
        b"".join(gzip.compress(r) for r in recs[:8] + [bad] + recs[8:]))
    # 6: 697 real lines in two zstd frames (300 + 397), cut inside the second frame's header,
    #    and cut in the middle of the second frame.
    lines = gzip.decompress(require_data("web", DOLMA).read_bytes()).splitlines(keepends=True)
    assert len(lines) == 697
    data, second = _zstd_frames(lines, 300)
    (shards / "cut-in-header.jsonl.zst").write_bytes(data[: second + 3])
    (shards / "cut-mid-frame.jsonl.zst").write_bytes(data[: second + (len(data) - second) // 2])
    # 8: three records sharing one WARC-Record-ID (and two distinct ones), uncompressed.
    same = [warc_record("shared-id", html_page(3200 + i), url=f"https://example.org/s{i}")
            for i in range(3)]
    (shards / "shared-record-id.warc").write_bytes(
        warc_record("unique-0", html_page(3210)) + b"".join(same) + warc_record("unique-1", html_page(3211)))
    # 9: 5,000 lines that are not JSON between two good ones.
    (shards / "not-json.jsonl").write_bytes(
        jsonl({"text": prose(3300)}) + b"this is not json at all, line after line\n" * 5000
        + jsonl({"text": prose(3301)}))
    out = root / "out"
    stats = execute([str(shards)], str(out), quiet=True, run_id="reader-integrity")
    parts = {p: read_output(out, p) for p in ("curated", "rejected", "errors")}
    return shards, stats, parts


def _of(parts: dict, shards: Path, name: str) -> tuple[list[dict], list[dict]]:
    uri = str(shards / name)
    docs = [r for r in parts["curated"] + parts["rejected"] if r["source_uri"] == uri]
    return docs, [e for e in parts["errors"] if e["source_uri"] == uri]


@pytest.mark.slow
def test_item5_warc_response_without_target_uri_is_quarantined_and_the_shard_goes_on(bad_shards):
    shards, stats, parts = bad_shards
    docs, errors = _of(parts, shards, "no-target-uri.warc.gz")
    assert sorted(d["source_record_id"] for d in docs) == sorted(
        f"<urn:uuid:nouri-good-{i}>" for i in range(16))
    assert [(e["error_type"], e["source_record_id"]) for e in errors] == [
        ("missing_target_uri", "<urn:uuid:nouri-bad>")]
    assert errors[0]["source_location"].startswith("offset:")
    assert stats["accounting"]["holds"]


@pytest.mark.slow
def test_item6_zstd_cut_in_a_frame_header_is_an_error_not_a_silent_end(bad_shards):
    shards, _, parts = bad_shards
    docs, errors = _of(parts, shards, "cut-in-header.jsonl.zst")
    assert sorted(d["source_offset"] for d in docs) == list(range(300))
    assert [(e["error_type"], e["source_location"]) for e in errors] == [("truncated", "line:300")]
    assert "zstd" in errors[0]["error_message"] and "bytes" in errors[0]["error_message"]


@pytest.mark.slow
def test_item6_zstd_cut_mid_frame_is_reported_as_truncation_with_its_position(bad_shards):
    shards, _, parts = bad_shards
    docs, errors = _of(parts, shards, "cut-mid-frame.jsonl.zst")
    n = len(docs)
    assert 300 < n < 697 and sorted(d["source_offset"] for d in docs) == list(range(n))
    assert [(e["error_type"], e["source_location"]) for e in errors] == [("truncated", f"line:{n}")]
    assert "invalid_json" not in {e["error_type"] for e in errors}


@pytest.mark.slow
def test_item8_warc_records_sharing_a_record_id_get_distinct_stable_ids(bad_shards):
    shards, _, parts = bad_shards
    docs, errors = _of(parts, shards, "shared-record-id.warc")
    assert not errors
    shared = [d for d in docs if d["source_record_id"] == "<urn:uuid:shared-id>"]
    assert sorted(d["url"] for d in shared) == [f"https://example.org/s{i}" for i in range(3)]
    assert len({d["id"] for d in docs}) == len(docs) == 5
    again = [d["id"] for k, d in read_shard(str(shards / "shared-record-id.warc"), "warc",
                                            ReadConfig()) if k == "doc"]
    assert sorted(again) == sorted(d["id"] for d in docs)  # stable across runs


@pytest.mark.slow
def test_item9_error_records_per_shard_are_capped_and_the_rest_counted(bad_shards):
    shards, stats, parts = bad_shards
    docs, errors = _of(parts, shards, "not-json.jsonl")
    assert sorted(d["source_record_id"] for d in docs) == ["line:0", "line:5001"]
    # the first 1,000 one by one, then one record counting the other 4,000 (of the same type)
    assert Counter(e["error_type"] for e in errors) == {"invalid_json": 1001}
    assert sorted(e["error_count"] for e in errors) == [1] * 1000 + [4000]
    [summary] = [e for e in errors if e["error_count"] > 1]
    assert summary["source_location"] == "line:1001"
    assert "4,000 more invalid_json errors" in summary["error_message"]
    assert "read.max_errors_per_shard" in summary["error_message"]
    assert max(len(json.dumps(e)) for e in errors) < 3000  # every error record is small
    # the accounting still counts every input line
    assert stats["accounting"]["holds"]
    assert stats["errors_by_stage"]["read"]["invalid_json"] == 5000


def test_item9_the_cap_is_a_config_key(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"{nope\n" * 50)
    items = list(read_shard(str(path), "jsonl", ReadConfig(max_errors_per_shard=10)))
    assert [i["error_type"] for _, i in items] == ["invalid_json"] * 11
    assert [i["error_count"] for _, i in items] == [1] * 10 + [40]


@pytest.mark.slow
def test_item7_a_stray_state_json_does_not_hide_a_directory_of_shards(tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "a.jsonl").write_bytes(jsonl({"text": prose(3400)}, {"text": prose(3401)}))
    (shards / "b.jsonl").write_bytes(jsonl({"text": prose(3402)}))
    (shards / "state.json").write_text('{"last_crawl": "2024-05-01"}')  # e.g. a crawler's own file
    stats = execute([str(shards)], str(tmp_path / "out"), quiet=True, run_id="stray")
    docs = read_output(tmp_path / "out", "curated") + read_output(tmp_path / "out", "rejected")
    assert sorted((Path(d["source_uri"]).name, d["source_record_id"]) for d in docs) == [
        ("a.jsonl", "line:0"), ("a.jsonl", "line:1"), ("b.jsonl", "line:0")]
    # the stray file is a shard by its name (`.json`), read and reported: it holds no text
    errors = read_output(tmp_path / "out", "errors")
    assert [(Path(e["source_uri"]).name, e["source_location"], e["error_type"]) for e in errors] \
        == [("state.json", "line:0", "missing_text")]
    assert stats["shards"] == 3 and stats["accounting"]["holds"]


def test_item7_a_real_hf_dataset_is_still_one_and_a_mixed_directory_is_an_error(tmp_path):
    import datasets

    datasets.Dataset.from_list([{"text": prose(3500)}]).save_to_disk(str(tmp_path / "hf"))
    assert expand_inputs([str(tmp_path / "hf")]) == [str(tmp_path / "hf")]
    (tmp_path / "hf" / "extra.jsonl").write_bytes(jsonl({"text": prose(3501)}))
    with pytest.raises(ValueError, match="extra.jsonl"):
        expand_inputs([str(tmp_path / "hf")])


@pytest.mark.slow
def test_item10_brackets_in_a_shard_name_are_literal_every_night(tmp_path, capsys):
    shards, state = tmp_path / "shards", tmp_path / "state"
    shards.mkdir()
    (shards / "crawl[1].jsonl").write_bytes(jsonl({"text": prose(3600)}))
    (shards / "crawl1.jsonl").write_bytes(jsonl({"text": prose(3601)}, {"text": prose(3602)}))
    # the path, given literally, is that file (not the glob `crawl[1].jsonl` = crawl1.jsonl)
    assert expand_inputs([str(shards / "crawl[1].jsonl")]) == [str(shards / "crawl[1].jsonl")]
    for night in ("n1", "n2"):
        code = main(["run", "-i", str(shards / "crawl[1].jsonl"), "-o", str(tmp_path / night),
                     "--state", str(state), "--run-id", night])
        assert code == 0, capsys.readouterr().err
    assert [Path(d["source_uri"]).name for d in read_output(tmp_path / "n1", "curated")
            + read_output(tmp_path / "n1", "rejected")] == ["crawl[1].jsonl"]
    assert "skipping 1 shards already processed" in capsys.readouterr().out
    # and through a glob that matches it, with --state, night after night
    code = main(["run", "-i", str(shards / "*.jsonl"), "-o", str(tmp_path / "n3"),
                 "--state", str(state), "--run-id", "n3"])
    assert code == 0, capsys.readouterr().err
    assert {Path(d["source_uri"]).name for d in read_output(tmp_path / "n3", "curated")
            + read_output(tmp_path / "n3", "rejected")} == {"crawl1.jsonl"}

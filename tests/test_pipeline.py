"""End-to-end runs of the whole pipeline on the DirectRunner over the real web shards."""

from __future__ import annotations

import glob
import gzip
import json
import shutil

import pytest
from ouroboros.pipeline.cli import execute, main
from ouroboros.schemas.record import PROVENANCE_COLUMNS

from tests.conftest import WEB, read_output, require_data


@pytest.mark.slow
def test_run_over_every_web_shard_accounts_for_every_record(web_run):
    out, stats = web_run
    curated, rejected, errors = (read_output(out, p) for p in ("curated", "rejected", "errors"))
    # 697 JSONL lines + 16 + 1 + 29 + 22 + 15 WARC responses + 1 WET conversion
    assert stats["input_records"] == 781
    assert stats["accounting"]["holds"]
    assert len(curated) + len(rejected) + len(errors) == stats["input_records"]
    assert (len(curated), len(rejected), len(errors)) == (stats["curated"], stats["rejected"], stats["errors"])
    assert stats["skipped_non_documents"]["warc:request"] == 55
    ids = [r["id"] for r in curated + rejected]
    assert len(ids) == len(set(ids))
    for r in rejected:
        assert r["reject_stage"] and r["reject_reason"]


@pytest.mark.slow
def test_curated_records_carry_provenance(web_run):
    out, stats = web_run
    curated = read_output(out, "curated")
    assert curated
    for r in curated:
        for col in PROVENANCE_COLUMNS:
            assert r[col], (col, r["id"])
        assert r["text"].strip()
        assert r["run_id"] == "test-run-1" and r["config_sha256"] == stats["config_sha256"]
        if r["source_format"] in ("warc", "wet"):
            assert r["url"] and r["domain"] and r["source_offset"] is not None
    assert {r["source_format"] for r in curated} == {"warc", "jsonl"}
    # the one WET page is navigation-heavy: Gopher drops it, with its reason
    assert {r["source_format"] for r in read_output(out, "rejected")} == {"warc", "wet", "jsonl"}
    html = [r for r in curated if r["source_format"] == "warc"]
    assert all(r["extractor"] for r in html)


@pytest.mark.slow
def test_output_loads_with_hf_datasets(web_run):
    import datasets

    out, stats = web_run
    ds = datasets.load_dataset("parquet", data_files=glob.glob(str(out / "curated" / "*.parquet")),
                               split="train")
    assert ds.num_rows == stats["curated"]
    assert {"id", "text", "source_uri", "quality_signals", "provenance_class"} <= set(ds.column_names)


@pytest.mark.slow
def test_two_runs_give_identical_ids_and_curated_set(web_run, tmp_path):
    out1, _ = web_run
    out2 = tmp_path / "second"
    execute([str(WEB / "*")], str(out2), quiet=True, run_id="test-run-2")
    first = read_output(out1, "curated")
    second = read_output(out2, "curated")
    assert sorted(r["id"] for r in first) == sorted(r["id"] for r in second)
    assert {(r["id"], r["content_sha256"]) for r in first} == {(r["id"], r["content_sha256"]) for r in second}
    rej1 = {(r["id"], r["reject_reason"]) for r in read_output(out1, "rejected")}
    rej2 = {(r["id"], r["reject_reason"]) for r in read_output(out2, "rejected")}
    assert rej1 == rej2


@pytest.mark.slow
def test_multi_processing_direct_runner_gives_the_same_result(web_run, tmp_path):
    out1, _ = web_run
    out2 = tmp_path / "mp"
    stats = execute([str(WEB / "*")], str(out2), quiet=True,
                    beam_args=["--direct_running_mode=multi_processing", "--direct_num_workers=2"])
    assert stats["accounting"]["holds"]
    assert sorted(r["id"] for r in read_output(out2, "curated")) == \
        sorted(r["id"] for r in read_output(out1, "curated"))


@pytest.mark.slow
def test_corrupt_shards_become_errors_and_the_run_completes(tmp_path):
    require_data("web")
    shards = tmp_path / "shards"
    shards.mkdir()
    good = WEB / "wget-crawl-0001.warc.gz"
    shutil.copy(good, shards / "good.warc.gz")
    raw = (WEB / "wget-crawl-0000.warc.gz").read_bytes()
    (shards / "truncated.warc.gz").write_bytes(raw[: len(raw) // 2])
    (shards / "badheader.warc.gz").write_bytes(gzip.compress(b"GARBAGE/1.0\r\n\r\n") + raw)
    lines = gzip.compress(("".join(json.dumps({"text": f"line {i} " * 30}) + "\n" for i in range(3000))).encode())
    (shards / "cut.jsonl.gz").write_bytes(lines[: len(lines) // 3])
    (shards / "mixed.jsonl").write_text('{"text": "fine document number one"}\n{"text": oops}\n'
                                        '{"text": "fine document number two"}\n')
    (shards / "notes.txt").write_text("not a shard")
    out = tmp_path / "out"
    stats = execute([str(shards)], str(out), quiet=True)
    errors = read_output(out, "errors")
    assert stats["accounting"]["holds"]
    by_uri = {e["source_uri"].rsplit("/", 1)[-1]: e for e in errors}
    assert set(by_uri) == {"truncated.warc.gz", "badheader.warc.gz", "cut.jsonl.gz", "mixed.jsonl",
                           "notes.txt"}
    assert by_uri["mixed.jsonl"]["source_location"] == "line:1"
    assert by_uri["badheader.warc.gz"]["source_location"] == "offset:0"
    assert by_uri["truncated.warc.gz"]["source_location"].startswith("offset:")
    assert by_uri["notes.txt"]["error_type"] == "unknown_format"
    curated, rejected = read_output(out, "curated"), read_output(out, "rejected")
    # the good records of every damaged shard survive reading (later stages may still filter them)
    sources = {r["source_uri"].rsplit("/", 1)[-1] for r in curated + rejected}
    assert {"good.warc.gz", "truncated.warc.gz", "cut.jsonl.gz", "mixed.jsonl"} <= sources
    assert len(curated) + len(rejected) + len(errors) == stats["input_records"]


@pytest.mark.slow
def test_tag_writes_every_record_and_drops_none(tmp_path):
    require_data("web")
    out = tmp_path / "tag"
    stats = execute([str(WEB / "*.jsonl.gz")], str(out), quiet=True, mode="tag")
    tagged = read_output(out, "tagged")
    assert len(tagged) == stats["input_records"] == 697
    would_drop = [r for r in tagged if r["reject_stage"]]
    assert would_drop and all(r["reject_reason"] for r in would_drop)


@pytest.mark.slow
def test_demo_runs_on_the_bundled_corpus(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--output", str(out)]) == 0
    stats = json.loads((out / "stats.json").read_text())
    assert stats["accounting"]["holds"] and stats["curated"] > 10
    assert "output:" in capsys.readouterr().out
    assert stats["rejected_by_stage"]["extract"] == {"http_status": 1, "unsupported_content_type": 1}


@pytest.mark.slow
def test_existing_output_is_not_overwritten_by_accident(tmp_path, capsys):
    require_data("web")
    out = tmp_path / "o"
    args = ["run", "-i", str(WEB / "*.wet.gz"), "-o", str(out)]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 2  # a refusal before any work, like every other one
    assert "already holds outputs" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0

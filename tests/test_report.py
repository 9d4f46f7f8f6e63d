"""The run report, the dataset card, `ouroboros inspect`, the progress line and the run's timings.

One run of the demo corpus with sampling on (so every stage drops something: extraction, quality,
exact and near duplicates, sampling) feeds the end-to-end tests; it is run the way a user runs it
(not quiet), with standard output and error captured, which are not terminals.
"""

from __future__ import annotations

import contextlib
import io
import json
import multiprocessing
import shutil
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from ouroboros.pipeline import progress
from ouroboros.pipeline.card import configs, size_category
from ouroboros.pipeline.profile import BoundedCounter, funnel
from ouroboros.pipeline.publish import PARTS
from ouroboros.pipeline.report import SECTIONS, external_references

from tests import chromium
from tests.conftest import read_output

DEMO_SETTINGS = ["sampling.enabled=true", "sampling.budget_fraction=0.5"]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """(out, stats, stdout, stderr) of `execute` over the demo corpus, not quiet."""
    from ouroboros.pipeline.cli import demo_inputs, execute

    out = tmp_path_factory.mktemp("demo_report") / "out"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        stats = execute(demo_inputs(), str(out), overrides=DEMO_SETTINGS, run_id="report-test")
    return out, stats, stdout.getvalue(), stderr.getvalue()


# ---- stats.json: durations and per-shard counts ------------------------------------------------

@pytest.mark.slow
def test_stats_hold_timings_and_per_shard_counts(demo_run):
    out, stats, _, _ = demo_run
    on_disk = json.loads((out / "stats.json").read_text())
    assert on_disk["timing"] == stats["timing"]
    timing = stats["timing"]
    assert timing["duration_seconds"] > 0 and timing["finished_at"] >= timing["started_at"]
    assert timing["records_per_second"] == pytest.approx(
        stats["input_records"] / timing["duration_seconds"], rel=0.01)
    steps = timing["seconds_by_step"]
    # The runner samples step time: a step of a few milliseconds (Read on the demo) can come out
    # as 0 and be left out, so only the demo's two heavy steps are required: the streaming pass
    # (`documents`: every per-document stage in one step) and near dedup's decisions. Each
    # per-document stage's own time is counted by the step itself (`seconds_by_stage`).
    assert {"documents", "near_dedup"} <= set(steps) and all(v > 0 for v in steps.values())
    assert "quality" in timing["seconds_by_stage"]
    assert stats["runner"]["name"] == "DirectRunner"
    assert stats["versions"]["apache-beam"] and stats["config"]["sampling"]["enabled"] is True
    assert stats["beam_counters"]["read.documents"] == stats["accounting"]["documents_read"]

    shards = stats["per_shard"]
    assert sorted(r["source_uri"] for r in shards) == sorted(stats["inputs"])
    assert all(r["accounting_holds"] for r in shards)
    for key in ("input_records", "curated", "rejected", "errors"):
        assert sum(r[key] for r in shards) == stats[key]
    # the per-shard counts agree with the outputs themselves
    for part in ("curated", "rejected"):
        by_shard = Counter(r["source_uri"] for r in read_output(out, part))
        assert {r["source_uri"]: r[part] for r in shards if r[part]} == dict(by_shard)


def test_per_shard_counts_include_empty_shards_and_read_errors():
    from ouroboros.pipeline.stats import per_shard

    rows = per_shard({"a": {"documents_read": 3, "read_errors": 1, "errors": 1, "curated": 2,
                            "rejected": 1}}, ["a", "b"], "curated")
    assert rows[0] == {"source_uri": "a", "input_records": 4, "documents_read": 3, "read_errors": 1,
                       "curated": 2, "rejected": 1, "errors": 1, "accounting_holds": True}
    assert rows[1]["source_uri"] == "b" and rows[1]["input_records"] == 0
    assert not per_shard({"a": {"documents_read": 2, "curated": 1}}, ["a"], "curated")[0][
        "accounting_holds"]


# ---- the command's output: no progress line off a terminal, a short summary --------------------

@pytest.mark.slow
def test_no_progress_line_off_a_terminal_and_a_short_summary(demo_run):
    _, stats, stdout, stderr = demo_run
    assert "records read" not in stderr and "filtering" not in stderr and "\r" not in stderr
    assert "Beam counters" not in stdout
    assert max(len(line) for line in stdout.splitlines()) < 200
    assert f"{stats['input_records']} input records" in stdout
    assert "report: " in stdout and "report.html" in stdout


def test_progress_line_only_for_a_local_runner_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert progress.enabled(None, Tty())
    assert progress.enabled("DirectRunner", Tty())
    assert not progress.enabled(None, io.StringIO())  # a pipe or a log file
    assert not progress.enabled(None, Tty(), quiet=True)
    assert not progress.enabled("DataflowRunner", Tty())
    assert not progress.enabled("PortableRunner", Tty())
    with progress.progress_line(["x"], on=False) as channel:
        assert channel is None


def test_progress_line_draws_phases_on_a_terminal(tmp_path):
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    shard = tmp_path / "s.jsonl"
    shard.write_text("x" * 1000)
    stream = Tty()
    with progress.progress_line([str(shard)], on=True, stream=stream) as channel:
        channel.add(read=10)
        channel.add(shards=1, shard_bytes=1000)
        channel.add(started=4)
        channel.flush()
        import time

        time.sleep(3 * progress.POLL_SECONDS)
    drawn = stream.getvalue()
    assert "filtering" in drawn and "1/1 shards" in drawn and "10 records read" in drawn
    assert "4 filtered" in drawn and "elapsed" in drawn
    assert not Path(channel.path).exists()  # the channel is removed at the end


def test_progress_estimates_each_phase():
    est = progress.estimate({}, 4, 1000, 5.0)
    assert est.phase == "starting" and est.seconds_left is None
    est = progress.estimate({"read": 100, "shards": 1, "shard_bytes": 250}, 4, 1000, 10.0)
    assert est.phase == "reading" and est.fraction == 0.25 and est.seconds_left == pytest.approx(30)
    est = progress.estimate({"read": 400, "shards": 4}, 4, 1000, 10.0)
    assert est.phase == "preparing" and est.seconds_left is None
    est = progress.estimate({"read": 400, "shards": 4, "started": 100}, 4, 1000, 10.0)
    assert est.phase == "filtering" and est.fraction == 0.25 and est.seconds_left == pytest.approx(30)
    assert est.rate == pytest.approx(10)
    est = progress.estimate({"read": 400, "read_errors": 100, "shards": 4, "started": 300}, 4, 1000, 5)
    assert est.phase == "finishing" and est.seconds_left is None  # nothing written yet: unknown
    est = progress.estimate({"read": 400, "shards": 4, "started": 400, "done": 300}, 4, 1000, 3.0)
    assert est.phase == "finishing" and est.seconds_left == pytest.approx(1.0)
    line = progress.format_line({"read": 400, "shards": 4, "started": 400, "done": 300}, 4, est, 65)
    assert "finishing  75%" in line and "01:05 elapsed" in line and "~00:01 left to finish" in line


def _add_counts(path: str) -> None:
    channel = progress.ProgressChannel(path)
    for _ in range(100):
        channel.add(read=1)
    channel.flush()


def test_progress_channel_sums_separate_worker_processes(tmp_path):
    """The multi-process DirectRunner's workers are separate interpreters: they report by file."""
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_add_counts, args=(str(tmp_path),)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert progress.ProgressChannel(str(tmp_path)).read() == {"read": 200}


# ---- the dataset card: load_dataset(OUT) ------------------------------------------------------

@pytest.mark.slow
def test_load_dataset_reads_curated_by_default_and_rejected_by_name(demo_run, tmp_path):
    import datasets

    out, stats, _, _ = demo_run
    assert (out / "errors").is_dir() and (out / "minhash-index").is_dir()  # other schemas beside
    curated = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf"))
    assert list(curated) == ["train"] and curated["train"].num_rows == stats["curated"]
    features = curated["train"].features
    assert features["quality_signals"]["n_words"] == datasets.Value("float64")
    assert features["dup_cluster_size"] == datasets.Value("int64")
    assert features["processed_at"] == datasets.Value("timestamp[us, tz=UTC]")
    assert features["quality_reasons"].feature == datasets.Value("string")
    assert "reject_stage" not in features
    assert set(curated["train"]["id"]) == {r["id"] for r in read_output(out, "curated")}

    rejected = datasets.load_dataset(str(out), "rejected", cache_dir=str(tmp_path / "hf"))
    assert rejected["train"].num_rows == stats["rejected"]
    assert rejected["train"].features["reject_reason"] == datasets.Value("string")
    assert Counter(rejected["train"]["reject_stage"]) == {
        stage: sum(r.values()) for stage, r in stats["rejected_by_stage"].items()}


@pytest.mark.slow
def test_card_holds_schema_provenance_and_notes_to_fill_in(demo_run):
    out, stats, _, _ = demo_run
    card = (out / "README.md").read_text()
    import yaml

    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["configs"] == configs(tagged=False) and meta["license"] == "unknown"
    assert meta["size_categories"] == [size_category(stats["curated"])] == ["n<1K"]
    assert "en" in meta["language"]
    assert "| `dup_cluster_id` | string | dedup |" in card and "`reject_reason`" in card
    assert stats["run_id"] in card and stats["config_sha256"] in card
    assert "## Sources and licence" in card and "_To fill in" in card


@pytest.mark.slow
def test_report_command_rebuilds_report_and_card_and_keeps_the_users_notes(demo_run, tmp_path):
    from ouroboros.pipeline.cli import main

    src, stats, _, _ = demo_run
    out = tmp_path / "copy"
    shutil.copytree(src, out)
    (out / "report.html").unlink()
    card = (out / "README.md").read_text()
    card = card.replace("license: unknown", "license: cc-by-4.0")
    start = card.index("<!-- notes:start -->") + len("<!-- notes:start -->")
    card = card[:start] + "\nCrawled by us in May; CC-BY pages only.\n" + card[card.index("<!-- notes:end -->"):]
    (out / "README.md").write_text(card)
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["report", str(out)]) == 0
    page = (out / "report.html").read_text()
    assert stats["run_id"] in page and all(f'id="{sid}"' in page for sid, _ in SECTIONS)
    rebuilt = (out / "README.md").read_text()
    assert "license: cc-by-4.0" in rebuilt and "Crawled by us in May; CC-BY pages only." in rebuilt
    assert "_To fill in" not in rebuilt


@pytest.mark.slow
def test_report_and_card_are_published_with_the_run(demo_run):
    out, _, _, _ = demo_run
    assert "report.html" in PARTS and "README.md" in PARTS
    assert (out / "report.html").is_file() and (out / "README.md").is_file()
    assert not [p for p in out.iterdir() if p.name.startswith(".staging-")]
    assert ".staging-" not in (out / "report.html").read_text()  # names the published directory


# ---- inspect ----------------------------------------------------------------------------------

@pytest.mark.slow
def test_inspect_a_near_duplicate_shows_its_representative_and_cluster(demo_run):
    from ouroboros.pipeline.cli import main
    from ouroboros.pipeline.inspect import explain

    out, _, _, _ = demo_run
    rejected = read_output(out, "rejected")
    dup = next(r for r in rejected if r["reject_stage"] == "near_dedup")
    rep_id = dup["reject_reason"].split(":", 1)[1]
    rep = next(r for r in read_output(out, "curated") + rejected if r["id"] == rep_id)
    members = [r for r in read_output(out, "curated") + rejected if r["dup_cluster_id"] == rep_id]

    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(["inspect", str(out), "--id", dup["id"]]) == 0
    text = stdout.getvalue()
    assert f"representative {rep_id}" in text and rep["url"] in text
    assert "near_dedup     dropped" in text and "sample         not reached" in text
    assert dup["source_uri"] in text and dup["source_record_id"] in text  # provenance columns
    for m in members:
        assert m["id"] in text

    [entry] = explain(str(out), record_id=dup["id"])
    near = entry["related"]["near_duplicates"]
    assert near["representative"]["id"] == rep_id and near["size"] == len(members)
    verdicts = {d["stage"]: d["verdict"] for d in entry["decisions"]}
    assert verdicts["quality"] == "kept" and verdicts["near_dedup"] == "dropped"


@pytest.mark.slow
def test_inspect_by_url_exact_duplicates_and_missing_ids(demo_run):
    from ouroboros.pipeline.cli import main
    from ouroboros.pipeline.inspect import explain

    out, _, _, _ = demo_run
    copy = next(r for r in read_output(out, "rejected") if r["reject_stage"] == "exact_dedup")
    kept_id = copy["reject_reason"].split(":", 1)[1]
    [entry] = explain(str(out), url=copy["url"])
    assert entry["related"]["exact_duplicates"]["kept"]["id"] == kept_id
    [kept] = explain(str(out), record_id=kept_id)
    assert [c["id"] for c in kept["related"]["exact_duplicates"]["copies"]] == [copy["id"]]
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        assert main(["inspect", str(out), "--id", "no-such-id"]) == 1
    assert "no record with id no-such-id" in stderr.getvalue()


# ---- the report page ----------------------------------------------------------------------------

SECTION_IDS = "JSON.stringify([...document.querySelectorAll('section[id]')].map(s => [s.id, s.querySelectorAll('svg, table').length]))"


def _require_chromium() -> None:
    if chromium.find_chromium() is None:
        pytest.skip("chromium is not installed (`apt-get install chromium`; .ci/run installs it "
                    "where apt is available): the report cannot be rendered in a browser here")


@pytest.mark.slow
def test_report_renders_in_chromium_with_every_section_and_no_errors(demo_run):
    _require_chromium()
    out, _, _, _ = demo_run
    page = (out / "report.html").read_text()
    assert external_references(page) == [] and "<script" not in page
    loaded = chromium.load((out / "report.html").as_uri(), SECTION_IDS)
    assert loaded.errors == []
    assert loaded.requests == [(out / "report.html").as_uri()]  # nothing from the network
    rendered = dict(json.loads(loaded.value))
    assert list(rendered) == [sid for sid, _ in SECTIONS]
    for sid in ("funnel", "languages", "domains", "synthetic", "quality", "near-duplicates",
                "strata", "shards", "provenance"):
        assert rendered[sid] >= 1, f"section {sid} has no plot or table"


@pytest.mark.slow
def test_chromium_check_fails_on_a_broken_page(tmp_path):
    """The browser check itself: a script error and a remote image must both be reported."""
    _require_chromium()
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><body><section id="a">x</section>'
                   '<script>undefinedFunction();</script>'
                   '<img src="https://cdn.invalid/x.png"></body></html>')
    loaded = chromium.load(bad.as_uri(), SECTION_IDS)
    assert any("undefinedFunction" in e for e in loaded.errors)
    assert "https://cdn.invalid/x.png" in loaded.requests
    assert external_references(bad.read_text()) == ['src="https://']


# ---- pure parts ---------------------------------------------------------------------------------

def test_funnel_follows_the_pipeline_order():
    stats = {"input_records": 100,
             "rejected_by_stage": {"quality": {"gopher": 30, "c4": 10}, "extract": {"http_status": 5},
                                   "near_dedup": {"near_duplicate_of": 7}},
             "errors_by_stage": {"read": {"truncated": 3}}}
    rows = funnel(stats)
    assert [r["stage"] for r in rows] == ["read", "extract", "quality", "near_dedup"]
    assert [(r["in"], r["dropped"], r["errors"], r["out"]) for r in rows] == [
        (100, 0, 3, 97), (97, 5, 0, 92), (92, 40, 0, 52), (52, 7, 0, 45)]


def test_bounded_counter_keeps_the_largest_keys():
    c = BoundedCounter(budget=10)
    c.update(["big"] * 50 + ["mid"] * 20 + [f"rare{i}" for i in range(30)])
    assert c.approximate and len(c) <= 10
    assert c.most_common(2) == [("big", 50), ("mid", 20)]


def test_parquet_parts_stream_only_the_needed_columns(tmp_path):
    import pyarrow as pa
    from ouroboros.pipeline.outputs import find_rows, iter_batches

    (tmp_path / "curated").mkdir()
    table = pa.table({"id": [f"r{i}" for i in range(10)], "text": ["x" * 100] * 10,
                      "quality_signals": [{"n_words": float(i)} for i in range(10)]})
    pq.write_table(table, tmp_path / "curated" / "part-0.parquet", row_group_size=3)
    batches = list(iter_batches(str(tmp_path), "curated", ["id", "quality_signals.n_words", "nope"]))
    assert all(b.schema.names == ["id", "quality_signals"] for b in batches)
    assert sum(b.num_rows for b in batches) == 10
    [row] = find_rows(str(tmp_path), "curated", "id", ["r7"])
    assert row["text"] == "x" * 100 and row["quality_signals"] == {"n_words": 7.0}


@pytest.mark.slow
def test_tag_output_gets_a_card_and_a_report_of_what_run_would_drop(tmp_path):
    import datasets
    from ouroboros.pipeline.cli import demo_inputs, execute
    from ouroboros.pipeline.profile import profile

    out = tmp_path / "tagged"
    stats = execute(demo_inputs()[:1], str(out), mode="tag", quiet=True, run_id="tag-test")
    tagged = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf"))["train"]
    assert tagged.num_rows == stats["tagged"] == stats["input_records"]
    would = Counter(s for s in tagged["reject_stage"] if s)
    prof = profile(str(out), stats)
    assert {st: sum(r.values()) for st, r in prof["would_drop"].items()} == dict(would)
    assert prof["kept"] == tagged.num_rows - sum(would.values())
    page = (out / "report.html").read_text()
    assert "Tag mode" in page and all(f'id="{sid}"' in page for sid, _ in SECTIONS)

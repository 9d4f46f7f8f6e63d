"""Nightly incremental runs (`run --state`): only new shards are read, a failed night claims nothing,
and two runs never share a state directory at once. Real runs on the DirectRunner (~5 s each)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from ouroboros.pipeline import graph
from ouroboros.pipeline.cli import demo_inputs, execute, main
from ouroboros.pipeline.manifest import Shard, select_new, state_lock

from tests.conftest import read_output

# English prose from the bundled demo corpus: every one of these is curated by the default config.
DEMO = [json.loads(line) for line in Path(demo_inputs()[0]).read_text().splitlines()]
RIVER, SOURDOUGH, MARKET, LIBRARY, ROADWORKS = (DEMO[i] for i in (0, 1, 2, 3, 9))


def _write(path: Path, docs: list[dict]) -> None:
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))


def _night(shards: Path, out: Path, state: Path, run_id: str, **kwargs) -> dict:
    return execute([str(shards / "*.jsonl")], str(out), quiet=True, state=str(state),
                   run_id=run_id, **kwargs)


def _manifest(state: Path, run_id: str) -> list[dict]:
    lines = (state / "manifest" / f"{run_id}.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def _names(rows: list[dict], key: str = "path") -> set[str]:
    return {r[key].rsplit("/", 1)[-1] for r in rows}


@pytest.fixture(scope="module")
def two_nights(tmp_path_factory):
    """Night 1 reads shards a and b; shard c then arrives, holding a near copy of a night-1
    document and a fresh one; night 2 runs the same command with the same glob."""
    root = tmp_path_factory.mktemp("nightly")
    shards, state = root / "shards", root / "state"
    shards.mkdir()
    _write(shards / "a.jsonl", [RIVER, SOURDOUGH])
    _write(shards / "b.jsonl", [MARKET, LIBRARY])
    night1 = _night(shards, root / "night1", state, "night-1")
    near_copy = dict(SOURDOUGH, id="copy", text=SOURDOUGH["text"].replace("twice", "two times"))
    assert near_copy["text"] != SOURDOUGH["text"]
    _write(shards / "c.jsonl", [near_copy, ROADWORKS])
    night2 = _night(shards, root / "night2", state, "night-2")
    return root, night1, night2


@pytest.mark.slow
def test_second_night_reads_only_the_new_shard_and_dedups_against_the_first(two_nights):
    root, night1, night2 = two_nights
    state = root / "state"
    assert (night1["shards"], night1["input_records"], night1["curated"]) == (2, 4, 4)
    assert night1["shards_skipped_already_processed"] == 0
    assert (night2["shards"], night2["input_records"]) == (1, 2)
    assert night2["shards_skipped_already_processed"] == 2

    kept1 = read_output(root / "night1", "curated")
    curated2, rejected2 = read_output(root / "night2", "curated"), read_output(root / "night2", "rejected")
    assert _names(curated2 + rejected2, "source_uri") == {"c.jsonl"}  # a and b were not read again
    sourdough_id = next(r["id"] for r in kept1 if r["text"].startswith("Sourdough starter"))
    assert [r["reject_reason"] for r in rejected2] == [f"near_duplicate_of:{sourdough_id}"]
    assert "two times" in rejected2[0]["text"]
    assert [r["text"][:20] for r in curated2] == [ROADWORKS["text"][:20]]

    assert _names(_manifest(state, "night-1")) == {"a.jsonl", "b.jsonl"}
    assert _names(_manifest(state, "night-2")) == {"c.jsonl"}
    row = _manifest(state, "night-2")[0]
    assert row["size"] == (root / "shards" / "c.jsonl").stat().st_size and row["run_id"] == "night-2"
    assert sorted(p.name for p in (state / "minhash-index").iterdir()) == ["night-1", "night-2"]
    assert not (state / ".lock").exists()


@pytest.mark.slow
def test_a_night_with_nothing_new_exits_0_and_writes_nothing(two_nights, capsys):
    root, _, _ = two_nights
    out, state = root / "night3", root / "state"
    before = sorted(str(p) for p in state.rglob("*"))
    code = main(["run", "-i", str(root / "shards" / "*.jsonl"), "-o", str(out), "--state", str(state)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "skipping 3 shards already processed by earlier runs; processing 0 new" in printed
    assert "nothing new to process" in printed
    assert not out.exists()
    assert sorted(str(p) for p in state.rglob("*")) == before  # no manifest, index or lock left


@pytest.mark.slow
def test_reprocess_reads_every_shard_again(two_nights, tmp_path):
    root, _, _ = two_nights
    state = tmp_path / "state"
    shutil.copytree(root / "state", state)  # leaves the shared state as the other tests expect
    stats = _night(root / "shards", tmp_path / "out", state, "night-again", reprocess=True)
    assert (stats["shards"], stats["input_records"]) == (3, 6)
    assert stats["shards_skipped_already_processed"] == 0
    assert _names(_manifest(state, "night-again")) == {"a.jsonl", "b.jsonl", "c.jsonl"}
    # documents re-read are themselves, not duplicates of their night-1 selves; the copy still goes
    assert stats["curated"] == 5
    assert [r["text"][:20] for r in read_output(tmp_path / "out", "rejected")] == \
        [SOURDOUGH["text"][:20]]


@pytest.mark.slow
def test_failed_night_records_nothing_and_its_shards_are_processed_next_time(tmp_path, monkeypatch):
    shards, state = tmp_path / "shards", tmp_path / "state"
    shards.mkdir()
    _write(shards / "a.jsonl", [RIVER, SOURDOUGH])
    _write(shards / "b.jsonl", [MARKET])
    real_build = graph.build_pipeline

    def build_then_fail(p, *args, **kwargs):
        real_build(p, *args, **kwargs)  # the whole graph runs and writes into staging...
        import apache_beam as beam

        def fail(_):
            raise RuntimeError("night failed on purpose")

        _ = p | "Fail" >> beam.Create([0]) | "Boom" >> beam.Map(fail)  # ...and the run fails

    monkeypatch.setattr(graph, "build_pipeline", build_then_fail)
    with pytest.raises(Exception, match="night failed on purpose"):
        _night(shards, tmp_path / "out", state, "failed-night")
    assert not (state / "manifest").exists()
    assert not (state / "minhash-index").exists()
    assert not (state / ".lock").exists()  # released although the run raised
    assert not (tmp_path / "out" / "curated").exists() and not (tmp_path / "out" / "stats.json").exists()

    monkeypatch.undo()
    stats = _night(shards, tmp_path / "out", state, "rerun")
    assert (stats["shards"], stats["shards_skipped_already_processed"]) == (2, 0)
    assert stats["curated"] == 3
    assert _names(_manifest(state, "rerun")) == {"a.jsonl", "b.jsonl"}


@pytest.mark.slow
def test_a_rewritten_shard_is_processed_again_and_its_old_documents_not_output_twice(tmp_path, capsys):
    shards, state = tmp_path / "shards", tmp_path / "state"
    shards.mkdir()
    _write(shards / "a.jsonl", [RIVER, SOURDOUGH])
    first = _night(shards, tmp_path / "n1", state, "n1")
    assert first["curated"] == 2
    _write(shards / "a.jsonl", [RIVER, SOURDOUGH, ROADWORKS])  # appended to in place
    second = execute([str(shards / "*.jsonl")], str(tmp_path / "n2"), state=str(state), run_id="n2")
    printed = capsys.readouterr().out
    assert "processing again 1 shards whose size or mtime changed" in printed
    assert (second["shards"], second["input_records"]) == (1, 3)
    assert second["shards_skipped_already_processed"] == 0
    # the two documents night 1 published stay in night 1's partition only
    assert second["curated"] == 1 and second["rejected"] == 2
    assert [r["text"][:20] for r in read_output(tmp_path / "n2", "curated")] == [ROADWORKS["text"][:20]]
    ids1 = {r["id"] for r in read_output(tmp_path / "n1", "curated")}
    assert sorted(r["reject_reason"] for r in read_output(tmp_path / "n2", "rejected")) == \
        ["kept_by_earlier_run:n1"] * 2
    assert {r["id"] for r in read_output(tmp_path / "n2", "rejected")} == ids1
    assert _manifest(state, "n2")[0]["size"] == (shards / "a.jsonl").stat().st_size


def test_a_held_lock_stops_the_run_with_a_clear_error(tmp_path, capsys):
    shards, state = tmp_path / "shards", tmp_path / "state"
    shards.mkdir()
    state.mkdir()
    _write(shards / "a.jsonl", [RIVER])
    lock = state / ".lock"
    lock.write_text(json.dumps({"pid": 4242, "host": "nightly-box", "started_at": "2024-05-01T02:17:00+00:00"}))
    code = main(["run", "-i", str(shards / "*.jsonl"), "-o", str(tmp_path / "out"), "--state", str(state)])
    assert code == 2
    err = capsys.readouterr().err
    assert f"another run holds {lock}" in err and "remove it if that run is dead" in err
    assert "pid 4242 on nightly-box" in err
    assert lock.exists()  # the other run's lock is not ours to remove
    assert not (tmp_path / "out").exists() and not (state / "manifest").exists()


def test_lock_is_exclusive_and_released_on_error(tmp_path):
    with state_lock(str(tmp_path)) as path:
        assert Path(path).exists()
        with pytest.raises(RuntimeError, match="another run holds"), state_lock(str(tmp_path)):
            pass
        assert Path(path).exists()  # the refused second run left the holder's lock alone
    assert not Path(path).exists()
    with pytest.raises(ValueError), state_lock(str(tmp_path)):
        raise ValueError
    assert not (tmp_path / ".lock").exists()


def test_select_new_matches_path_size_and_mtime():
    done = {("/s/a", 10, 1.5), ("/s/b", 20, 2.0)}
    shards = [Shard("/s/a", 10, 1.5), Shard("/s/b", 20, 3.0), Shard("/s/c", 5, 1.0)]
    selection = select_new(shards, done)
    assert [s.path for s in selection.skipped] == ["/s/a"]
    assert [s.path for s in selection.new] == ["/s/b", "/s/c"]
    assert [s.path for s in selection.changed] == ["/s/b"]  # same size, newer mtime: reread
    assert [s.path for s in select_new(shards, done, reprocess=True).new] == ["/s/a", "/s/b", "/s/c"]


def test_index_commit_through_beam_filesystems_copies_every_file(tmp_path):
    """The object-store commit (no rename there) exercised on local paths: every index file ends
    under STATE/minhash-index/<run_id>/ with its own name and bytes."""
    from ouroboros.pipeline.state import _commit_index_remote

    src = tmp_path / "out" / "minhash-index"
    src.mkdir(parents=True)
    for name, body in (("a.parquet", b"one"), ("b.parquet", b"two")):
        (src / name).write_bytes(body)
    _commit_index_remote(str(tmp_path / "out"), str(tmp_path / "state"), "r1")
    dest = tmp_path / "state" / "minhash-index" / "r1"
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == {"a.parquet": b"one", "b.parquet": b"two"}

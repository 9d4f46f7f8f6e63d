"""Outputs and state: the integrity failures of issue 12 (items 1-4), over real `execute()` runs.

Kills are real SIGKILLs of a child `ouroboros run` at the named step (tests/faults.py), full disks
a small tmpfs filled at the named step. After each, what a reader sees must be one whole run, and
the next run (with no manual step) must neither lose nor repeat a document.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from ouroboros.pipeline.cli import main

from tests import faults
from tests.conftest import read_output
from tests.test_incremental import DEMO, _manifest, _write

pytestmark = pytest.mark.slow  # every test here runs the pipeline several times (5-20 s each)

KILLED = -signal.SIGKILL


def view(out: Path) -> tuple:
    """What a reader of OUT sees: stats.json's run and counts, and the run ids and ids of the
    curated, rejected and errors Parquet files, read the way a user reads them (by glob)."""
    stats_path = out / "stats.json"
    stats = json.loads(stats_path.read_text()) if stats_path.exists() else None
    parts = {p: read_output(out, p) for p in ("curated", "rejected", "errors")}
    return (None if stats is None else (stats["run_id"], stats["curated"], stats["rejected"]),
            {p: sorted((r["run_id"], r.get("id") or r["source_location"]) for r in rows)
             for p, rows in parts.items()})


def whole(out: Path) -> str | None:
    """The run OUT shows, asserting that stats.json and every part belong to that one run."""
    stats, parts = view(out)
    if stats is None:
        assert parts == {"curated": [], "rejected": [], "errors": []}, parts
        return None
    run_id, curated, rejected = stats
    assert {r for p in parts.values() for r, _ in p} <= {run_id}
    assert (len(parts["curated"]), len(parts["rejected"])) == (curated, rejected)
    return run_id


def _shards(root: Path, **docs: list[dict]) -> Path:
    shards = root / "shards"
    shards.mkdir(exist_ok=True)
    for name, rows in docs.items():
        _write(shards / f"{name}.jsonl", rows)
    return shards


# --- 1. two runs on one OUT ---------------------------------------------------------------------

def _wait_for(path: Path, child: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if child.poll() is not None:
            raise AssertionError(f"child ended early ({child.returncode}): {child.stderr.read()}")
        assert time.monotonic() < deadline, "child never reached the pause point"
        time.sleep(0.1)


def test_item1_a_second_run_on_the_same_output_is_refused_and_the_first_completes(tmp_path, capsys):
    shards = _shards(tmp_path, a=DEMO[0:3], b=DEMO[3:5])
    out, pause = tmp_path / "out", tmp_path / "pause"
    pause.mkdir()
    first = faults.run({"at": ["ouroboros.pipeline.stats:write_json"], "action": "pause",
                        "dir": str(pause)},
                       ["run", "-i", str(shards / "a.jsonl"), "-o", str(out), "--run-id", "first"],
                       wait=False)
    try:
        _wait_for(pause / "reached", first)  # the first run is writing into OUT's staging
        code = main(["run", "-i", str(shards / "b.jsonl"), "-o", str(out), "--run-id", "second"])
        err = capsys.readouterr().err
        assert code == 2, err
        assert f"another run holds {out / '.lock'}" in err and f"pid {first.pid}" in err
    finally:
        (pause / "go").touch()
        _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    assert whole(out) == "first"
    assert len(read_output(out, "curated")) == 3
    assert not (out / ".lock").exists()


# --- 2. killed mid-commit ----------------------------------------------------------------------

_COMMIT = """
import sys, json
from tests import faults
faults.arm(json.loads(sys.argv[1]))
import pyarrow as pa, pyarrow.parquet as pq, os
from ouroboros.pipeline.publish import staged_output
out, run = sys.argv[2], sys.argv[3]
with staged_output(out, run) as target:
    for part, n in (("curated", 3), ("rejected", 2), ("errors", 1)):
        os.makedirs(f"{target}/{part}")
        for i in range(2):
            pq.write_table(pa.table({"id": [f"{run}-{part}-{i}-{j}" for j in range(n)],
                                     "run_id": [run] * n}), f"{target}/{part}/part-{i}.parquet")
    with open(f"{target}/stats.json", "w") as f:
        json.dump({"run_id": run, "curated": 6, "rejected": 4}, f)
"""

_FS_STEPS = ["os:rename", "os:replace", "os:symlink", "os:remove", "os:unlink", "os:rmdir",
             "shutil:rmtree", "os:makedirs", "os:mkdir"]


def _commit_child(out: Path, run: str, nth: int) -> int:
    spec = {"at": _FS_STEPS, "nth": nth, "caller": "ouroboros.pipeline.publish"}
    return subprocess.run([sys.executable, "-c", _COMMIT, json.dumps(spec), str(out), run],
                          cwd=faults.ROOT, capture_output=True, text=True, timeout=120,
                          check=False).returncode


def test_item2_a_kill_at_any_step_of_the_commit_shows_a_reader_one_whole_run(tmp_path):
    """Killed at every file-system step of the commit in turn: OUT shows the old run or the new
    one, whole, at every point; the next run then commits normally, with no manual step."""
    base = tmp_path / "base"
    assert _commit_child(base, "old", 0) == 0
    assert whole(base) == "old"
    outcomes = []
    for nth in range(1, 60):
        out = tmp_path / f"out{nth}"
        shutil.copytree(base, out, symlinks=True)
        code = _commit_child(out, "new", nth)
        seen = whole(out)
        assert seen in ("old", "new"), (nth, seen)
        outcomes.append(seen)
        assert _commit_child(out, f"next{nth}", 0) == 0  # the next run: no manual step
        assert whole(out) == f"next{nth}"
        assert not [p for p in os.listdir(out) if p.startswith(".staging-")]
        if code == 0:
            break
        assert code == KILLED
    else:
        pytest.fail("the commit never finished")
    assert outcomes[0] == "old" and outcomes[-1] == "new"


def test_item2_killed_between_the_renames_of_a_real_run_then_rerun(tmp_path):
    import datasets

    shards = _shards(tmp_path, b=DEMO[3:5])
    out = tmp_path / "out"
    assert _commit_child(out, "old", 0) == 0  # a published run (of the fake kind above)
    spec = {"at": ["os:rename", "os:replace", "os:symlink"], "nth": 3,
            "caller": "ouroboros.pipeline.publish"}
    done = faults.run(spec, ["run", "-i", str(shards / "b.jsonl"), "-o", str(out),
                             "--run-id", "new", "--overwrite"])
    assert done.returncode == KILLED, done.stderr
    assert whole(out) in ("old", "new")
    # nothing to repair by hand: the same command runs and publishes
    assert main(["run", "-i", str(shards / "b.jsonl"), "-o", str(out), "--run-id", "again",
                 "--overwrite"]) == 0
    assert whole(out) == "again" and len(read_output(out, "curated")) == 2
    # and the output reads the usual ways, through its pointer
    ds = datasets.load_dataset("parquet", data_files=f"{out}/curated/*.parquet", split="train")
    assert ds.num_rows == 2 and set(ds["run_id"]) == {"again"}
    assert pq.read_table(out / "curated").num_rows == 2


# --- 3. crash between publishing and the state commit; full disks --------------------------------

def _night(shards: Path, out: Path, state: Path, run_id: str, spec: dict | None = None,
           extra: tuple[str, ...] = ()) -> subprocess.Popen | int:
    argv = ["run", "-i", str(shards / "*.jsonl"), "-o", str(out), "--state", str(state),
            "--run-id", run_id, *extra]
    return faults.run(spec, argv) if spec is not None else main(argv)


@pytest.fixture(scope="module")
def night1(tmp_path_factory):
    """Shard a (three documents) and the state after night 1 read it: copied by `_fork`."""
    root = tmp_path_factory.mktemp("night1")
    shards = _shards(root, a=DEMO[0:3])
    assert _night(shards, root / "n1", root / "state", "n1") == 0
    return root


def _fork(night1: Path, root: Path) -> tuple[Path, Path]:
    """A private copy of night 1 (shards with their mtimes, state, partition) under `root`."""
    for part in ("shards", "state", "n1"):
        shutil.copytree(night1 / part, root / part, symlinks=True)
    for manifest in (root / "state" / "manifest").glob("*.jsonl"):
        manifest.write_text(manifest.read_text().replace(str(night1), str(root)))
    return root / "shards", root / "state"


@pytest.mark.parametrize("step", [
    "ouroboros.pipeline.cli:commit_index",      # published, the index not yet in STATE
    "ouroboros.pipeline.manifest:write_manifest",  # published and indexed, no manifest yet
])
def test_item3_a_crash_after_publishing_never_publishes_the_documents_again(step, night1, tmp_path):
    shards, state = _fork(night1, tmp_path)
    _write(shards / "b.jsonl", DEMO[3:6])
    done = _night(shards, tmp_path / "n2", state, "n2",
                  {"at": [step, step.replace("cli:", "state:")]})
    assert done.returncode == KILLED, done.stderr
    assert whole(tmp_path / "n2") == "n2"  # it was published
    _write(shards / "c.jsonl", DEMO[6:7])
    assert _night(shards, tmp_path / "n3", state, "n3") == 0
    # night 3 finished night 2's commit and read only shard c
    assert [Path(d["source_uri"]).name for d in read_output(tmp_path / "n3", "curated")] == ["c.jsonl"]
    assert {Path(r["path"]).name for r in _manifest(state, "n2")} == {"b.jsonl"}
    assert sorted(p.name for p in (state / "minhash-index").iterdir()) == ["n1", "n2", "n3"]
    ids = [r["id"] for n in ("n1", "n2", "n3") for r in read_output(tmp_path / n, "curated")]
    assert len(ids) == len(set(ids)) == 7


def test_item3_a_full_state_disk_at_the_index_copy_is_finished_by_the_next_night(night1, tmp_path):
    shards, on_disk = _fork(night1, tmp_path)
    with faults.small_tmpfs(tmp_path / "small", "2m") as state:
        shutil.copytree(on_disk, state, dirs_exist_ok=True)
        _write(shards / "b.jsonl", DEMO[3:6])
        done = _night(shards, tmp_path / "n2", state, "n2",
                      {"at": ["ouroboros.pipeline.cli:commit_index",
                              "ouroboros.pipeline.state:commit_index"],
                       "action": "fill", "dir": str(state)})
        assert done.returncode != 0
        assert "No space left on device" in done.stderr
        assert "next run" in done.stderr, done.stderr[-3000:]  # says what happens next
        # whatever a later run's index glob matches is whole Parquet
        for f in (state / "minhash-index").glob("*/*.parquet"):
            pq.read_metadata(f)
        (state / "filler").unlink()  # the operator frees space; nothing else
        _write(shards / "c.jsonl", DEMO[6:7])
        assert _night(shards, tmp_path / "n3", state, "n3") == 0
        assert [Path(d["source_uri"]).name for d in read_output(tmp_path / "n3", "curated")] == \
            ["c.jsonl"]
        assert {Path(r["path"]).name for r in _manifest(state, "n2")} == {"b.jsonl"}


def test_item3_a_full_disk_when_taking_the_lock_leaves_no_lock_behind(tmp_path, capsys):
    shards = _shards(tmp_path, a=DEMO[0:2])
    with faults.small_tmpfs(tmp_path / "state", "1m") as state:
        faults.fill(str(state))
        code = _night(shards, tmp_path / "n1", state, "n1")
        assert code != 0 and "No space left on device" in capsys.readouterr().err
        assert not (state / ".lock").exists()
        (state / "filler").unlink()
        assert _night(shards, tmp_path / "n1", state, "n1") == 0


def test_item3_state_files_that_cannot_be_read_are_named_and_incoming_ones_ignored(night1, tmp_path,
                                                                                  capsys):
    shards, state = _fork(night1, tmp_path)
    # a half-copied index under the old temporary name: never read
    incoming = state / "minhash-index" / ".incoming-crashed"
    incoming.mkdir()
    (incoming / "part-00000.parquet").write_bytes(b"PAR1 truncated")
    _write(shards / "b.jsonl", DEMO[3:4])
    assert _night(shards, tmp_path / "n2", state, "n2") == 0
    # a committed index file that is damaged: the error names it, before any work starts
    bad = state / "minhash-index" / "n1" / "damaged.parquet"
    bad.write_bytes(b"not parquet at all")
    _write(shards / "c.jsonl", DEMO[4:5])
    capsys.readouterr()
    assert _night(shards, tmp_path / "n3", state, "n3") != 0
    assert str(bad) in capsys.readouterr().err
    assert not (tmp_path / "n3" / "curated").exists()
    bad.unlink()
    # a damaged manifest line: named too
    manifest = state / "manifest" / "n1.jsonl"
    manifest.write_text(manifest.read_text() + "{half a line\n")
    assert _night(shards, tmp_path / "n3", state, "n3") != 0
    assert f"{manifest}:2" in capsys.readouterr().err


# --- 4. --reprocess with exact copies across shards ----------------------------------------------

def test_item4_reprocess_keeps_what_was_kept_and_copies_do_not_cancel_it(tmp_path):
    shards = _shards(tmp_path, a=DEMO[0:7])
    state = tmp_path / "state"
    assert _night(shards, tmp_path / "n1", state, "n1") == 0
    originals = {r["text"]: r["id"] for r in read_output(tmp_path / "n1", "curated")}
    assert len(originals) == 7
    # night 2: exact copies of four night-1 documents, dated earlier, and three new documents
    copies = [dict(d, date="2001-01-01") for d in DEMO[0:4]]
    _write(shards / "b.jsonl", copies + DEMO[7:10])
    assert _night(shards, tmp_path / "n2", state, "n2") == 0
    assert len(read_output(tmp_path / "n2", "curated")) == 3
    kept = {r["id"] for n in ("n1", "n2") for r in read_output(tmp_path / n, "curated")}
    assert len(kept) == 10

    assert _night(shards, tmp_path / "again", state, "again", extra=("--reprocess",)) == 0
    curated = read_output(tmp_path / "again", "curated")
    assert {r["id"] for r in curated} == kept  # 10 stay 10, under the same ids
    rejected = read_output(tmp_path / "again", "rejected")
    copy_reasons = sorted(r["reject_reason"] for r in rejected
                          if Path(r["source_uri"]).name == "b.jsonl")
    assert copy_reasons == sorted(f"exact_duplicate_of:{originals[d['text']]}" for d in copies)


def test_an_output_written_before_versioning_is_replaced_by_a_versioned_one(tmp_path):
    """OUT/curated etc. as real directories (the layout before the pointer): the next commit
    moves them aside and publishes through links; nothing of the old run stays visible."""
    import pyarrow as pa
    from ouroboros.pipeline.publish import staged_output

    out = tmp_path / "out"
    (out / "curated").mkdir(parents=True)
    pq.write_table(pa.table({"id": ["legacy"], "run_id": ["legacy"]}), out / "curated" / "p.parquet")
    (out / "stats.json").write_text('{"run_id": "legacy", "curated": 1, "rejected": 0}')
    assert whole(out) == "legacy"
    with staged_output(str(out), "new") as target:
        Path(target, "curated").mkdir()
        pq.write_table(pa.table({"id": ["a", "b"], "run_id": ["new"] * 2}),
                       Path(target, "curated", "p.parquet"))
        Path(target, "stats.json").write_text('{"run_id": "new", "curated": 2, "rejected": 0}')
    assert whole(out) == "new"
    assert sorted(os.listdir(out)) == [".current", ".v-new", "curated", "stats.json"]

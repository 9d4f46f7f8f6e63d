"""Nightly runs that recover by themselves (issue 16): a killed night is rerun with no manual step
and gives what an uninterrupted night gives; stale locks are taken over with a message; a rewritten
shard's documents are not output a second time."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from ouroboros.pipeline.cli import main

from tests import faults
from tests.conftest import read_output
from tests.test_incremental import DEMO, _write

KILLED = -signal.SIGKILL


def _run(shards: Path, out: Path, state: Path, run_id: str, *extra: str) -> int:
    return main(["run", "-i", str(shards / "*.jsonl"), "-o", str(out), "--state", str(state),
                 "--run-id", run_id, *extra])


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _partition(out: Path) -> list[tuple]:
    """A partition's content without what differs between two runs of the same night (run id)."""
    rows = []
    for part in ("curated", "rejected", "errors"):
        for r in read_output(out, part):
            rows.append((part, r.get("id"), r.get("text") or r.get("error_message"),
                         r.get("reject_reason"), r.get("source_uri")))
    return sorted(rows, key=repr)


def _state(state: Path) -> dict:
    """STATE's content without run ids: shards recorded, index ids, and every other file."""
    shards = sorted((r["path"], r["size"], r["mtime"])
                    for f in (state / "manifest").glob("*.jsonl")
                    for r in map(json.loads, f.read_text().splitlines()))
    index = sorted(r["id"] for f in (state / "minhash-index").glob("*/*.parquet")
                   for r in read_output(f.parent.parent, f.parent.name))
    other = sorted(str(p.relative_to(state)) for p in state.rglob("*")
                   if p.is_file() and not str(p.relative_to(state)).startswith(("manifest/", "minhash-index/")))
    return {"shards": shards, "index": index, "other": other, "runs": len(list((state / "manifest").glob("*.jsonl")))}


@pytest.mark.slow
@pytest.mark.parametrize("kill_at", [
    "ouroboros.transforms.dedup.near:_Decide.process",  # mid-pipeline: documents flowing
    "ouroboros.pipeline.stats:write_json",             # the last step of the pipeline
])
def test_a_killed_night_is_rerun_with_no_manual_step_as_if_it_had_not_failed(kill_at, tmp_path, capsys):
    shards = tmp_path / "shards"
    shards.mkdir()
    _write(shards / "a.jsonl", DEMO[0:3])
    state = tmp_path / "state"
    assert _run(shards, tmp_path / "night1", state, "night1") == 0
    _write(shards / "b.jsonl", DEMO[3:6])

    reference = tmp_path / "reference-state"  # an uninterrupted night 2, for comparison
    shutil.copytree(state, reference)
    assert _run(shards, tmp_path / "reference-night2", reference, "night2-ok") == 0

    killed = _killed_night(shards, tmp_path / "night2", state, kill_at)
    assert killed.returncode == KILLED, killed.stderr[-2000:]
    assert (state / ".lock").exists()  # what kill -9 leaves: a lock and a staging directory
    assert [p for p in os.listdir(tmp_path / "night2") if p.startswith(".staging-")]

    capsys.readouterr()
    assert _run(shards, tmp_path / "night2", state, "night2-rerun") == 0  # cron, the next time
    err = capsys.readouterr().err
    assert "taking over" in err and f"pid {killed.pid}" in err and "no longer running" in err

    assert _partition(tmp_path / "night2") == _partition(tmp_path / "reference-night2")
    assert _state(state) == _state(reference)
    # nothing of the killed attempt is visible anywhere
    leftovers = [str(p) for p in (tmp_path / "night2").rglob("*") if "night2-killed" in p.name]
    leftovers += [str(p) for p in state.rglob("*") if "night2-killed" in p.name]
    assert leftovers == [] and not (state / ".lock").exists()
    assert not [p for p in os.listdir(tmp_path / "night2") if p.startswith((".staging-", ".lock"))]
    for root in (tmp_path / "night2", state):
        assert not any("night2-killed" in p.read_text(errors="replace")
                       for p in root.rglob("*.json*") if p.is_file())

    # no curated id in two partitions, also after a shard is rewritten in place
    _write(shards / "a.jsonl", DEMO[0:3] + DEMO[6:7])  # appended to
    _write(shards / "c.jsonl", DEMO[7:8])
    assert _run(shards, tmp_path / "night3", state, "night3") == 0
    nights = ("night1", "night2", "night3")
    ids = [r["id"] for n in nights for r in read_output(tmp_path / n, "curated")]
    assert len(ids) == len(set(ids)) == 8
    night3 = read_output(tmp_path / "night3", "rejected")
    assert sorted(r["reject_reason"] for r in night3) == ["kept_by_earlier_run:night1"] * 3


def _killed_night(shards: Path, out: Path, state: Path, kill_at: str) -> subprocess.Popen:
    return faults.run({"at": [kill_at]},
                      ["run", "-i", str(shards / "*.jsonl"), "-o", str(out), "--state", str(state),
                       "--run-id", "night2-killed"])


def _lock(state: Path, **holder) -> Path:
    state.mkdir(parents=True, exist_ok=True)
    lock = state / ".lock"
    lock.write_text(json.dumps({"pid": 4242, "host": socket.gethostname(),
                                "started_at": "2024-05-01T02:17:00+00:00", **holder}))
    return lock


def test_a_lock_whose_process_is_dead_is_taken_over_with_a_message(tmp_path, capsys):
    shards = tmp_path / "shards"
    shards.mkdir()
    _write(shards / "a.jsonl", DEMO[0:1])
    pid = _dead_pid()
    _lock(tmp_path / "state", pid=pid)
    assert _run(shards, tmp_path / "out", tmp_path / "state", "r1") == 0
    err = capsys.readouterr().err
    assert f"taking over {tmp_path / 'state' / '.lock'}" in err and f"pid {pid}" in err
    assert not (tmp_path / "state" / ".lock").exists()


def test_a_lock_of_a_live_process_or_another_host_is_respected(tmp_path, capsys):
    shards = tmp_path / "shards"
    shards.mkdir()
    _write(shards / "a.jsonl", DEMO[0:1])
    state = tmp_path / "state"
    for holder in ({"pid": os.getppid()}, {"pid": 4242, "host": "another-box"}):
        lock = _lock(state, **holder)
        assert _run(shards, tmp_path / "out", state, "r1") == 2
        err = capsys.readouterr().err
        assert f"another run holds {lock}" in err and "remove it if that run is dead" in err
        assert lock.exists() and not (tmp_path / "out").exists()


def test_a_lock_older_than_the_timeout_is_taken_over(tmp_path, capsys):
    shards = tmp_path / "shards"
    shards.mkdir()
    _write(shards / "a.jsonl", DEMO[0:1])
    state = tmp_path / "state"
    _lock(state, pid=4242, host="another-box")  # started 2024-05-01: long ago
    assert _run(shards, tmp_path / "out", state, "r1", "--lock-timeout", "6h") == 0
    err = capsys.readouterr().err
    assert "taking over" in err and "older than --lock-timeout 6h" in err


def test_an_empty_or_unreadable_lock_does_not_block_forever(tmp_path, capsys):
    shards = tmp_path / "shards"
    shards.mkdir()
    _write(shards / "a.jsonl", DEMO[0:1])
    state = tmp_path / "state"
    state.mkdir()
    (state / ".lock").write_text("")
    assert _run(shards, tmp_path / "out", state, "r1") == 0
    assert "taking over" in capsys.readouterr().err

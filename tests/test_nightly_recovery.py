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


def _names(*partitions: Path) -> dict[str, str]:
    """id -> `shard name/record id` over the documents of `partitions` (readable diffs)."""
    names = {}
    for partition in partitions:
        for part in ("curated", "rejected"):
            for r in read_output(partition, part):
                names[r["id"]] = f"{Path(r['source_uri']).name}/{r['source_record_id']}"
    return names


def _partition(out: Path, root: Path) -> list[tuple]:
    """A partition's content (ids, also inside reject reasons, by name), without what differs
    between two runs of the same night (run id, time)."""
    names = _names(root / "night1", out)
    rows = []
    for part in ("curated", "rejected", "errors"):
        for r in read_output(out, part):
            reason = r.get("reject_reason") or ""
            kind, _, ref = reason.partition(":")
            rows.append((part, names.get(r.get("id")), r.get("text") or r.get("error_message"),
                         f"{kind}:{names.get(ref, ref)}" if ref else reason,
                         Path(r["source_uri"]).name))
    return sorted(rows, key=repr)


def _state(state: Path, night2: Path) -> dict:
    """STATE's content without run ids: shards recorded, the documents in the band indexes (by
    name), and every other file."""
    names = _names(night2.parent / "night1", night2)
    shards = sorted((r["path"], r["size"], r["mtime"])
                    for f in (state / "manifest").glob("*.jsonl")
                    for r in map(json.loads, f.read_text().splitlines()))
    index = sorted(names[r["id"]] for d in (state / "minhash-index").iterdir()
                   for r in read_output(d.parent, d.name))
    other = sorted(str(p.relative_to(state)) for p in state.rglob("*")
                   if p.is_file() and not str(p.relative_to(state)).startswith(("manifest/", "minhash-index/")))
    return {"shards": shards, "index": index, "other": other, "runs": len(list((state / "manifest").glob("*.jsonl")))}


@pytest.mark.slow
def test_a_killed_night_is_rerun_with_no_manual_step_as_if_it_had_not_failed(tmp_path, capsys):
    """Night 1; night 2 killed with SIGKILL while documents flow through the apply pass (after
    the dedup decisions, while curated and rejected records are written); the same
    cron line again: the result equals an uninterrupted night 2 (run beside it on a copy of the
    state), and after a shard is rewritten no curated id is in two partitions."""
    shards = tmp_path / "shards"
    shards.mkdir()
    _write(shards / "a.jsonl", DEMO[0:3])
    state = tmp_path / "state"
    assert _run(shards, tmp_path / "night1", state, "night1") == 0
    _write(shards / "b.jsonl", DEMO[3:6])
    reference = tmp_path / "reference-state"
    shutil.copytree(state, reference)
    assert _run(shards, tmp_path / "reference-night2", reference, "night2-ok") == 0

    killed = faults.run({"at": ["ouroboros.transforms.decisions:ApplyDecisions.process"]},
                        ["run", "-i", str(shards / "*.jsonl"), "-o", str(tmp_path / "night2"),
                         "--state", str(state), "--run-id", "night2-killed"])
    assert killed.returncode == KILLED, killed.stderr[-2000:]
    assert (state / ".lock").exists()  # what kill -9 leaves: a lock and a staging directory
    assert [p for p in os.listdir(tmp_path / "night2") if p.startswith(".staging-")]

    capsys.readouterr()
    assert _run(shards, tmp_path / "night2", state, "night2-rerun") == 0  # cron, the next time
    err = capsys.readouterr().err
    assert "taking over" in err and f"pid {killed.pid}" in err and "no longer running" in err
    assert "discarded run night2-killed" in err

    assert _partition(tmp_path / "night2", tmp_path) == \
        _partition(tmp_path / "reference-night2", tmp_path)
    assert _state(state, tmp_path / "night2") == _state(reference, tmp_path / "reference-night2")
    # nothing of the killed attempt is visible anywhere
    for root in (tmp_path / "night2", state):
        assert not [p for p in root.rglob("*") if "night2-killed" in p.name]
        assert not any("night2-killed" in p.read_text(errors="replace")
                       for p in root.rglob("*") if p.is_file() and p.suffix != ".parquet")
    assert not (state / ".lock").exists()
    assert not [p for p in os.listdir(tmp_path / "night2") if p.startswith((".staging-", ".lock"))]

    # no curated id in two partitions, also after a shard is rewritten in place
    _write(shards / "a.jsonl", DEMO[0:3] + DEMO[6:7])  # appended to
    _write(shards / "c.jsonl", DEMO[7:8])
    assert _run(shards, tmp_path / "night3", state, "night3") == 0
    partitions = ("night1", "night2", "night3")
    ids = [r["id"] for n in partitions for r in read_output(tmp_path / n, "curated")]
    assert len(ids) == len(set(ids)) == 8
    night3 = read_output(tmp_path / "night3", "rejected")
    assert sorted(r["reject_reason"] for r in night3) == ["kept_by_earlier_run:night1"] * 3


def _lock(state: Path, **holder) -> Path:
    state.mkdir(parents=True, exist_ok=True)
    lock = state / ".lock"
    lock.write_text(json.dumps({"pid": 4242, "host": socket.gethostname(),
                                "started_at": "2024-05-01T02:17:00+00:00", **holder}))
    return lock


@pytest.mark.slow
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


def test_a_lock_older_than_the_timeout_is_taken_over(tmp_path):
    from ouroboros.pipeline.manifest import StateLocked, state_lock

    lock = _lock(tmp_path, pid=4242, host="another-box")  # started 2024-05-01: long ago
    with pytest.raises(StateLocked, match="pass --lock-timeout"), state_lock(str(tmp_path)):
        pass
    said = []
    with state_lock(str(tmp_path), "r1", timeout=6 * 3600, notify=said.append) as path:
        assert json.loads(Path(path).read_text())["run_id"] == "r1"
    assert said == [(f"taking over {lock} from pid 4242 on another-box since "
                     "2024-05-01T02:17:00+00:00: it is older than --lock-timeout 6h")]
    assert not lock.exists()


def test_an_empty_or_unreadable_lock_does_not_block_forever(tmp_path):
    from ouroboros.pipeline.manifest import state_lock

    for content in ("", "{half"):
        (tmp_path / ".lock").write_text(content)
        said = []
        with state_lock(str(tmp_path), notify=said.append):
            pass
        assert len(said) == 1 and "it names no holder" in said[0]


def test_a_lock_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    """The content goes to a temporary file first: a write that fails leaves no lock at all."""
    import errno

    from ouroboros.pipeline import locks

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(locks.os, "fsync", full)
    with pytest.raises(OSError, match="No space left"), locks.run_lock(str(tmp_path)):
        pass
    assert os.listdir(tmp_path) == []

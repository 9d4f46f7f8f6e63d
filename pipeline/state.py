"""The state directory of nightly runs, and how a run's work enters it: whole, once, or not at all.

    STATE/manifest/<run_id>.jsonl         shards the run processed (written last: the commit)
    STATE/minhash-index/<run_id>/*.parquet  band index of the documents the run kept
    STATE/runs/<run_id>.json              a run in flight: its output directory and shards
    STATE/.incoming/<run_id>/             an index being copied in (beyond every reader's glob)
    STATE/.lock                           held by the running night (pipeline/locks.py)

Under the state's lock a run:
  1. `reconcile`s what dead runs left: a run whose output was published (its stats.json names
     it) gets its commit finished (index, manifest); any other is discarded with what it left
     (its staging directory, its incoming index, its output lock, an empty output directory). A
     night killed at any point is therefore either done or undone before the next night chooses
     its shards, and never published twice;
  2. records itself in `runs/<run_id>.json` (`begin_run`) before the pipeline starts;
  3. after its outputs are published, `commit_run`: the band index is copied under
     `.incoming/`, synced, renamed into `minhash-index/<run_id>/`, the manifest is written, and
     the journal removed. A failure there (a full disk) leaves the journal, so the next run
     finishes the commit once it can.

Object stores (`gs://`, `s3://`) go through Beam's FileSystems: no rename there, so index files are
copied under their final names (objects appear whole) and the manifest, written after them, is
the commit. Pure functions, no pipeline: the command calls them before and after the run.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import asdict

from apache_beam.io.filesystems import FileSystems
from ouroboros.pipeline import manifest
from ouroboros.pipeline.manifest import Shard, StateError

INDEX_DIR = "minhash-index"
RUNS_DIR = "runs"
INCOMING_DIR = ".incoming"


def _join(state: str, *parts: str) -> str:
    return "/".join([state.rstrip("/"), *parts])


def _remote(*paths: str) -> bool:
    return any("://" in p for p in paths)


def _write(path: str, data: bytes) -> None:
    """Whole or not at all: locally a temporary name, synced, then renamed."""
    if _remote(path):
        with FileSystems.create(path) as f:
            f.write(data)
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{os.path.dirname(path)}/.{os.path.basename(path)}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def begin_run(state: str, run_id: str, output: str, shards: Iterable[Shard]) -> None:
    """Records the run before its pipeline starts, so a kill at any later point is reconciled."""
    out = output if _remote(output) else os.path.abspath(output)
    record = {"run_id": run_id, "output": out, "shards": [asdict(s) for s in shards]}
    _write(_join(state, RUNS_DIR, f"{run_id}.json"), json.dumps(record).encode())


def commit_run(state: str, run_id: str, output: str, shards: Iterable[Shard]) -> None:
    """After publication: the band index, then the manifest (the commit), then the journal goes.
    Each step checks what is done already, so a rerun after a crash finishes it."""
    if not manifest.manifest_exists(state, run_id):
        commit_index(output, state, run_id)
        manifest.write_manifest(state, run_id, shards)
    _remove(_join(state, RUNS_DIR, f"{run_id}.json"))


def abandon_run(state: str, run_id: str, output: str) -> None:
    """After a failure: forget the run, unless it was published (then `reconcile` finishes it)."""
    from ouroboros.pipeline.publish import published_run

    if published_run(output) != run_id:
        _remove_tree(_join(state, INCOMING_DIR, run_id))
        _remove(_join(state, RUNS_DIR, f"{run_id}.json"))


def reconcile(state: str, notify: Callable[[str], None] = print) -> list[str]:
    """Finishes or undoes every run a dead process left in flight; returns what it did.
    Call only while holding the state's lock: every journal found then is a dead run's."""
    from ouroboros.pipeline.publish import published_run

    done = []
    for path in _list(_join(state, RUNS_DIR, "*.json")):
        try:
            with FileSystems.open(path) as f:
                record = json.loads(f.read().decode("utf-8"))
            run_id, output = record["run_id"], record["output"]
            shards = [Shard(s["path"], int(s["size"]), float(s["mtime"])) for s in record["shards"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise StateError(f"cannot read {path}: {exc}") from exc
        if published_run(output) == run_id:
            commit_run(state, run_id, output, shards)
            _tidy_output(output, run_id)
            message = (f"finished the commit of run {run_id}, interrupted after its outputs were "
                       f"published to {output}: its {len(shards)} shards are recorded as done")
        else:
            _remove_tree(_join(state, INCOMING_DIR, run_id))
            _tidy_output(output, run_id)
            _remove(path)
            message = (f"discarded run {run_id}, which died before publishing: its "
                       f"{len(shards)} shards will be processed again")
        notify(message)
        done.append(message)
    return done


def _tidy_output(output: str, run_id: str) -> None:
    """What a dead run left in its output directory: its lock, staging, a version it did not
    publish, and the directory itself if that is all it held."""
    if _remote(output) or not os.path.isdir(output):
        return
    from ouroboros.pipeline.locks import LOCK_FILE, read_holder
    from ouroboros.pipeline.publish import recover

    lock = os.path.join(output, LOCK_FILE)
    holder = read_holder(lock)
    if holder is not None and holder.get("run_id") == run_id:
        _remove(lock)
    if not os.path.exists(lock):  # no live run is writing there: tidy it
        recover(output)
        try:
            os.rmdir(output)  # only if the dead run left it empty
        except OSError:
            pass


def commit_index(output: str, state: str, run_id: str) -> None:
    """Adds this run's band index (OUT/minhash-index/) to the state as minhash-index/<run_id>/.

    Locally the files are copied under `.incoming/<run_id>/` (no reader's glob looks there),
    synced, and the directory renamed into place: a full disk leaves no partial index behind."""
    if _remote(output, state):
        _commit_index_remote(output, state, run_id)
        return
    src = f"{output.rstrip('/')}/{INDEX_DIR}"
    dest = _join(state, INDEX_DIR, run_id)
    if not os.path.isdir(src) or os.path.isdir(dest):
        return  # no index (near-dedup off), or committed already
    tmp = _join(state, INCOMING_DIR, run_id)
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        shutil.copytree(src, tmp)
        for name in os.listdir(tmp):
            with open(os.path.join(tmp, name), "rb") as f:
                os.fsync(f.fileno())
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        os.rename(tmp, dest)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise StateError(
            f"the outputs of run {run_id} are published in {output}, but adding its band index "
            f"to {state} failed: {exc}. Nothing to do by hand once there is space: the next run "
            "finishes this commit before it starts") from exc


def _commit_index_remote(output: str, state: str, run_id: str) -> None:
    """The same through Beam's FileSystems (gs://, s3://), where there is no atomic rename: files
    are copied under their final names (each object appears whole); the manifest, written after
    this, is the commit."""
    dest = _join(state, INDEX_DIR, run_id)
    files = _list(f"{output.rstrip('/')}/{INDEX_DIR}/*")
    if not files:
        return
    try:
        FileSystems.mkdirs(dest)  # object stores have no directories; a local one may exist
    except OSError:
        pass
    FileSystems.copy(files, [f"{dest}/{f.rsplit('/', 1)[-1]}" for f in files])


def index_files(state: str | None) -> list[str]:
    """Band-index files of committed runs, each checked to be whole Parquet (its footer read), so a
    damaged file is named before any work starts; hidden directories (`.incoming-*` of older
    versions) are never read."""
    if not state:
        return []
    import pyarrow.parquet as pq

    files = [p for p in _list(_join(state, INDEX_DIR, "*", "*.parquet"))
             if not any(part.startswith(".") for part in p.split("/")[-2:])]
    for path in files:
        try:
            with FileSystems.open(path) as f:
                pq.read_metadata(f)
        except Exception as exc:  # any failure to read it: name the file
            raise StateError(f"cannot read band index {path}: {exc}") from exc
    return sorted(files)


def _list(pattern: str) -> list[str]:
    try:
        return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)
    except Exception:  # noqa: BLE001 - a store that refuses to list a missing prefix: none yet
        return []


def _remove(path: str) -> None:
    try:
        FileSystems.delete([path]) if _remote(path) else os.remove(path)
    except (FileNotFoundError, OSError):
        pass


def _remove_tree(path: str) -> None:
    if _remote(path):
        _remove(path)
    else:
        shutil.rmtree(path, ignore_errors=True)

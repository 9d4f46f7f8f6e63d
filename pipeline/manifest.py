"""The shard manifest and the state lock that make `ouroboros run --state` a nightly, incremental job.

Each successful run leaves ``STATE/manifest/<run_id>.jsonl``: one line per shard it processed, with
the shard's size and modification time. The next night skips every shard whose path, size and mtime
all match a line of an earlier manifest, so only new shards are read; a shard rewritten in place
(size or mtime changed) is processed again, and said so. A manifest is written only after the run's
outputs and band index were committed, so a failed night claims nothing and its rerun redoes it.

``STATE/.lock`` keeps two runs on the same state from overlapping (local state directories only; on
an object store the scheduler must not start a run while another is active).

Sizes and times come from Beam's ``FileSystems``, so ``gs://`` and ``s3://`` shards and state work
like local paths. Pure functions, no pipeline: the command calls them before and after the run.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field

from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems

MANIFEST_DIR = "manifest"
LOCK_FILE = ".lock"


class StateLocked(RuntimeError):
    """Another run holds the state directory's lock."""


@dataclass(frozen=True)
class Shard:
    """A shard as it was when a run read it: a change of size or mtime means new content."""

    path: str
    size: int
    mtime: float

    def key(self) -> tuple[str, int, float]:
        return (self.path, self.size, self.mtime)


@dataclass
class Selection:
    """Which shards this run processes (`new`, including `changed`) and which it skips."""

    new: list[Shard] = field(default_factory=list)
    skipped: list[Shard] = field(default_factory=list)
    changed: list[Shard] = field(default_factory=list)

    def message(self) -> str:
        text = (f"skipping {len(self.skipped)} shards already processed by earlier runs; "
                f"processing {len(self.new)} new")
        if self.changed:
            text += (f"\nprocessing again {len(self.changed)} shards whose size or mtime changed "
                     "since an earlier run: " + ", ".join(s.path for s in self.changed))
        return text


def identify_shards(paths: list[str]) -> list[Shard]:
    """Size and mtime of each shard, in one `FileSystems.match` call (one listing per object store)."""
    if not paths:
        return []
    shards = []
    for path, result in zip(paths, FileSystems.match(paths)):
        meta = next((m for m in result.metadata_list if m.path == path), None)
        if meta is None:  # e.g. a name with glob characters that matched something else
            raise FileNotFoundError(f"cannot stat shard {path}")
        shards.append(Shard(path, int(meta.size_in_bytes), float(meta.last_updated_in_seconds)))
    return shards


def manifest_dir(state: str) -> str:
    return f"{state.rstrip('/')}/{MANIFEST_DIR}"


def load_processed(state: str) -> set[tuple[str, int, float]]:
    """(path, size, mtime) of every shard in every committed manifest of `state`."""
    try:
        files = FileSystems.match([f"{manifest_dir(state)}/*.jsonl"])[0].metadata_list
    except BeamIOError:  # a store that refuses to list a missing prefix: the first night
        return set()
    processed = set()
    for meta in files:
        with FileSystems.open(meta.path) as f:
            for line in f.read().decode("utf-8").splitlines():
                if line.strip():
                    row = json.loads(line)
                    processed.add((row["path"], int(row["size"]), float(row["mtime"])))
    return processed


def select_new(shards: list[Shard], processed: set[tuple[str, int, float]],
               reprocess: bool = False) -> Selection:
    """Splits `shards` into those to process and those an earlier run already did."""
    if reprocess:
        return Selection(new=list(shards))
    known_paths = {path for path, _, _ in processed}
    selection = Selection()
    for shard in shards:
        if shard.key() in processed:
            selection.skipped.append(shard)
        else:
            selection.new.append(shard)
            if shard.path in known_paths:
                selection.changed.append(shard)
    return selection


def write_manifest(state: str, run_id: str, shards: Iterable[Shard]) -> str:
    """Records `shards` as processed by `run_id`; call only after the run's outputs are committed.

    Local: written to a temporary name, then renamed, so a crash never leaves half a manifest that
    a later run would half-trust. Object stores publish an object only when it is closed."""
    committed_at = _utc_now()
    lines = "".join(json.dumps({**asdict(s), "run_id": run_id, "committed_at": committed_at}) + "\n"
                    for s in shards)
    path = f"{manifest_dir(state)}/{run_id}.jsonl"
    if "://" in state:
        with FileSystems.create(path) as f:
            f.write(lines.encode("utf-8"))
        return path
    os.makedirs(manifest_dir(state), exist_ok=True)
    tmp = f"{manifest_dir(state)}/.{run_id}.jsonl.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(lines)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


@contextmanager
def state_lock(state: str) -> Iterator[str | None]:
    """Holds ``STATE/.lock`` for the block; refuses to start when another run holds it.

    O_CREAT | O_EXCL makes taking the lock atomic. A run killed hard (SIGKILL, power loss) leaves
    the file behind; the error names it and who held it, so an operator can remove it."""
    if "://" in state:  # object stores have no exclusive create: the scheduler must not overlap runs
        yield None
        return
    os.makedirs(state, exist_ok=True)
    path = os.path.join(state, LOCK_FILE)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        raise StateLocked(f"another run holds {path} ({_read_holder(path)}); "
                          "remove it if that run is dead") from None
    with os.fdopen(fd, "w") as f:
        json.dump({"pid": os.getpid(), "host": socket.gethostname(), "started_at": _utc_now()}, f)
    try:
        yield path
    finally:
        with suppress(FileNotFoundError):  # removed by hand meanwhile: nothing left to release
            os.remove(path)


def _utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


def _read_holder(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            holder = json.load(f)
        return f"pid {holder['pid']} on {holder['host']} since {holder['started_at']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown"


def plan(state: str, paths: list[str], reprocess: bool = False) -> Selection:
    """The shards of `paths` this run must process, given what `state` says was done before."""
    return select_new(identify_shards(paths), load_processed(state), reprocess)

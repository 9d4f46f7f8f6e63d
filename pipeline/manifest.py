"""The shard manifest and the state lock that make `ouroboros run --state` a nightly, incremental job.

Each successful run leaves ``STATE/manifest/<run_id>.jsonl``: one line per shard it processed, with
the shard's size and modification time. The next night skips every shard whose path, size and mtime
all match a line of an earlier manifest, so only new shards are read; a shard rewritten in place
(size or mtime changed) is processed again, and said so. A manifest is written only after the run's
outputs and band index were committed (``pipeline/state.py``), so a failed night claims nothing.

``STATE/.lock`` keeps two runs on the same state from overlapping (``pipeline/locks.py``: a lock
whose holder is provably dead is taken over; local state directories only, on an object store the
scheduler must not start a run while another is active).

Sizes and times come from Beam's ``FileSystems``, so ``gs://`` and ``s3://`` shards and state work
like local paths. Pure functions, no pipeline: the command calls them before and after the run.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems
from ouroboros.pipeline.locks import LOCK_FILE, Locked, run_lock

MANIFEST_DIR = "manifest"
StateLocked = Locked  # another run holds the state directory's lock
__all__ = ["LOCK_FILE", "Selection", "Shard", "StateError", "StateLocked", "identify_shards",
           "load_processed", "plan", "select_new", "state_lock", "write_manifest"]


class StateError(RuntimeError):
    """A state file that cannot be read or written; the message names it."""


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
    """Which shards this run processes (`new`, including `changed`) and which it skips;
    `seen` are those of `new` whose path an earlier run processed (`changed`, and with
    `--reprocess` every such shard): their documents may carry ids an earlier run kept."""

    new: list[Shard] = field(default_factory=list)
    skipped: list[Shard] = field(default_factory=list)
    changed: list[Shard] = field(default_factory=list)
    seen: list[Shard] = field(default_factory=list)

    def message(self) -> str:
        text = (f"skipping {len(self.skipped)} shards already processed by earlier runs; "
                f"processing {len(self.new)} new")
        if self.changed:
            text += (f"\nprocessing again {len(self.changed)} shards whose size or mtime changed "
                     "since an earlier run: " + ", ".join(s.path for s in self.changed))
        return text


def identify_shards(paths: list[str]) -> list[Shard]:
    """Size and mtime of each shard, looked up by its literal path (a name with `[`, `*` or `?`
    is that name, never a glob)."""
    shards = []
    for path in paths:
        try:
            if "://" in path:
                meta = FileSystems.get_filesystem(path).metadata(path)
                size, mtime = meta.size_in_bytes, meta.last_updated_in_seconds
            else:
                st = os.stat(path)
                size, mtime = st.st_size, st.st_mtime
        except (OSError, BeamIOError) as exc:
            raise FileNotFoundError(f"cannot stat shard {path}: {exc}") from exc
        shards.append(Shard(path, int(size), float(mtime)))
    return shards


def manifest_dir(state: str) -> str:
    return f"{state.rstrip('/')}/{MANIFEST_DIR}"


def manifest_path(state: str, run_id: str) -> str:
    return f"{manifest_dir(state)}/{run_id}.jsonl"


def manifest_exists(state: str, run_id: str) -> bool:
    return FileSystems.exists(manifest_path(state, run_id))


def load_processed(state: str) -> set[tuple[str, int, float]]:
    """(path, size, mtime) of every shard in every committed manifest of `state`; a line that
    cannot be read is an error naming the file and line, before any work starts."""
    try:
        files = FileSystems.match([f"{manifest_dir(state)}/*.jsonl"])[0].metadata_list
    except BeamIOError:  # a store that refuses to list a missing prefix: the first night
        return set()
    processed = set()
    for meta in files:
        if meta.path.rsplit("/", 1)[-1].startswith("."):
            continue  # a temporary file of an interrupted write
        with FileSystems.open(meta.path) as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                processed.add((row["path"], int(row["size"]), float(row["mtime"])))
            except (ValueError, KeyError, TypeError) as exc:
                raise StateError(f"cannot read {meta.path}:{number}: {type(exc).__name__}: "
                                 f"{exc}") from exc
    return processed


def select_new(shards: list[Shard], processed: set[tuple[str, int, float]],
               reprocess: bool = False) -> Selection:
    """Splits `shards` into those to process and those an earlier run already did."""
    known_paths = {path for path, _, _ in processed}
    if reprocess:
        return Selection(new=list(shards), seen=[s for s in shards if s.path in known_paths])
    selection = Selection()
    for shard in shards:
        if shard.key() in processed:
            selection.skipped.append(shard)
        else:
            selection.new.append(shard)
            if shard.path in known_paths:
                selection.changed.append(shard)
                selection.seen.append(shard)
    return selection


def write_manifest(state: str, run_id: str, shards: Iterable[Shard]) -> str:
    """Records `shards` as processed by `run_id`; call only after the run's outputs are committed.

    Local: written to a temporary name, then renamed, so a crash never leaves half a manifest that
    a later run would half-trust. Object stores publish an object only when it is closed."""
    committed_at = _utc_now()
    lines = "".join(json.dumps({**asdict(s), "run_id": run_id, "committed_at": committed_at}) + "\n"
                    for s in shards)
    path = manifest_path(state, run_id)
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
def state_lock(state: str, run_id: str | None = None, timeout: float | None = None,
               notify: Callable[[str], None] | None = None) -> Iterator[str | None]:
    """Holds ``STATE/.lock`` for the block; refuses to start when a live run holds it, and takes
    over a lock whose holder is provably dead (``pipeline/locks.py``)."""
    if "://" in state:  # object stores have no exclusive create: the scheduler must not overlap runs
        yield None
        return
    with run_lock(state, run_id, timeout, notify) as path:
        yield path


def _utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


def plan(state: str, paths: list[str], reprocess: bool = False) -> Selection:
    """The shards of `paths` this run must process, given what `state` says was done before."""
    return select_new(identify_shards(paths), load_processed(state), reprocess)

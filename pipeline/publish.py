"""Publication of a run's outputs: all or nothing, as a reader of OUT sees it.

Layout of an output directory on a local file system:

    OUT/.v-<run_id>/             one whole version: curated/, rejected/, errors/, stats.json, ...
    OUT/.current -> .v-<run_id>  the published version: one symlink, switched by one rename(2)
    OUT/curated -> .current/curated, OUT/stats.json -> .current/stats.json, ...
                                 the paths readers use, each resolving through `.current`
    OUT/.staging-<run_id>/       where a running pipeline writes (hidden from `OUT/curated/*`)
    OUT/.lock                    held by the run writing OUT (pipeline/locks.py)

A run takes OUT's lock, removes what dead runs left behind (`recover`), writes into its staging
directory, and commits:
  1. renames `.staging-<run>` to `.v-<run>` (only after the pipeline succeeded: stats.json exists);
  2. adds the part links the new version needs (`OUT/<name> -> .current/<name>`; until the switch
     a new part's link resolves to nothing, as before);
  3. switches `.current` to the new version: a new symlink renamed over it, atomically. This is
     the publication;
  4. removes the old version, and the links of parts the new version does not have.
A crash before step 3 leaves the old version published, and the next run deletes the new one; a
crash after it leaves the new one published, and the next run removes the old. At every instant
`OUT/curated/*.parquet`, `OUT/stats.json` and every other part resolve into one whole version, and
any file the run adds to its output (a dataset card, a report) is published the same way.

Object stores (`gs://`, `s3://`) have no atomic rename: there the pipeline writes into OUT
directly and `stats.json`, written last, marks a finished run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ouroboros.pipeline.locks import run_lock

PARTS = ("curated", "rejected", "tagged", "errors", "minhash-index", "report.html", "README.md",
         "stats.json")
STAGING_PREFIX = ".staging-"
VERSION_PREFIX = ".v-"
CURRENT = ".current"
_REPLACED = ".replaced-"  # a pre-versioning part moved aside while its link takes its place
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def inside(root: str | os.PathLike, relative: str | os.PathLike) -> Path:
    """`root/relative`, refusing any path that resolves outside `root` (absolute paths, `..`,
    symlinks out): a path taken from a config or a run id can never escape the output directory."""
    base = Path(root).resolve()
    target = (base / relative).resolve()
    if target != base and base not in target.parents:
        raise ValueError(f"path {str(relative)!r} escapes {base}")
    return target


def staging_dir(output: str, run_id: str) -> str:
    if not _RUN_ID.fullmatch(run_id):
        raise ValueError(f"run id {run_id!r} must be letters, digits, '.', '_' or '-' "
                         "(it names a directory)")
    return str(inside(output, STAGING_PREFIX + run_id))


def current_version(output: str) -> str | None:
    """The published version's directory name (`.v-<run_id>`), None before the first commit."""
    try:
        return os.path.basename(os.readlink(os.path.join(output, CURRENT)))
    except (FileNotFoundError, OSError):
        return None


def published_run(output: str) -> str | None:
    """The run whose outputs OUT shows, from its stats.json (any file system), or None."""
    from apache_beam.io.filesystems import FileSystems

    path = f"{output.rstrip('/')}/stats.json"
    try:
        with FileSystems.open(path) as f:
            return json.loads(f.read().decode("utf-8")).get("run_id")
    except Exception:  # noqa: BLE001 - missing, unreadable or not JSON: nothing published
        return None


def begin(output: str, run_id: str) -> str:
    """Clears what dead runs left in `output`, then creates a fresh, empty staging directory.
    The caller holds OUT's lock (`staged_output` does), so nothing here belongs to a live run."""
    os.makedirs(output, exist_ok=True)
    recover(output)
    staging = staging_dir(output, run_id)
    if os.path.exists(staging):
        shutil.rmtree(staging)
    os.makedirs(staging)
    return staging


def commit(output: str, staging: str) -> list[str]:
    """Publishes the staged run as OUT's version (steps 1-4 above); returns its part names."""
    if not os.path.isfile(os.path.join(staging, "stats.json")):
        raise RuntimeError(f"{staging} holds no stats.json: the run did not finish, not publishing")
    run_id = os.path.basename(staging)[len(STAGING_PREFIX):]
    version = VERSION_PREFIX + run_id
    os.rename(staging, os.path.join(output, version))  # 1
    _fsync_dir(output)
    names = sorted(os.listdir(os.path.join(output, version)))
    for name in names:  # 2
        _link_part(output, name, run_id)
    tmp = os.path.join(output, f"{CURRENT}.{run_id}.tmp")
    if os.path.lexists(tmp):
        os.remove(tmp)
    os.symlink(version, tmp)
    os.replace(tmp, os.path.join(output, CURRENT))  # 3: published
    _fsync_dir(output)
    recover(output)  # 4
    return names


def _link_part(output: str, name: str, run_id: str) -> None:
    link, target = os.path.join(output, name), os.path.join(CURRENT, name)
    if os.path.islink(link) and os.readlink(link) == target:
        return
    if os.path.lexists(link):  # a part of an output written before versioning: move it aside
        aside = os.path.join(output, _REPLACED + run_id)
        os.makedirs(aside, exist_ok=True)
        os.rename(link, os.path.join(aside, name))
    os.symlink(target, link)


def abort(staging: str) -> None:
    shutil.rmtree(staging, ignore_errors=True)


def recover(output: str) -> list[str]:
    """Removes what no published version needs: staging directories and versions other than the
    current one (of runs that died, or that were replaced), parts moved aside, links to parts the
    current version does not have. Returns what it removed. Call only while holding OUT's lock."""
    current = current_version(output)
    done = []
    for entry in sorted(os.listdir(output)):
        path = os.path.join(output, entry)
        if entry.startswith((STAGING_PREFIX, _REPLACED)) or (
                entry.startswith(VERSION_PREFIX) and entry != current):
            shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.remove(path)
            done.append(f"removed {entry}")
        elif entry.startswith(f"{CURRENT}.") and entry.endswith(".tmp"):
            os.remove(path)
        elif (os.path.islink(path) and os.readlink(path) == os.path.join(CURRENT, entry)
              and not (current and os.path.lexists(os.path.join(output, current, entry)))):
            os.remove(path)  # a part the published version does not have
    return done


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def staged_output(output: str, run_id: str, lock_timeout: float | None = None,
                  notify: Callable[[str], None] | None = None) -> Iterator[str]:
    """The directory the pipeline should write to, under OUT's lock; published into `output`
    when the block ends without an exception, discarded when it raises."""
    if "://" in output:
        yield output
        return
    with run_lock(output, run_id, lock_timeout, notify):
        staging = begin(output, run_id)
        try:
            yield staging
        except BaseException:
            abort(staging)
            raise
        commit(output, staging)

"""Atomic publication of a run's outputs: write into a staging directory, then commit by renames.

The pipeline writes into ``OUT/.staging-<run_id>/`` (hidden: no reader globbing ``OUT/curated/``
sees it). Only after the pipeline succeeded does ``commit`` write a journal and rename each part
(``curated/``, ``rejected/``, ``tagged/``, ``errors/``, ``minhash-index/``, ``report.html``,
``README.md``, then ``stats.json`` last) into place,
replacing the previous run's part. Each rename is atomic, so a reader finds either the old complete
part or the new one, never partial Parquet; a crash in the middle of the commit is rolled forward
from the journal by the next run (``recover``), and a crash before the commit leaves only a staging
directory that the next run deletes. A rerun replaces the outputs, it never appends to them.

Local filesystems only: object stores (``gs://``, ``s3://``) have no atomic directory rename, so
``staged_output`` writes there directly and ``stats.json`` (written last) marks a finished run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PARTS = ("curated", "rejected", "tagged", "errors", "minhash-index", "report.html", "README.md",
         "stats.json")
STAGING_PREFIX = ".staging-"
JOURNAL = "_COMMIT.json"
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


def begin(output: str, run_id: str) -> str:
    """Recovers earlier interrupted runs, then creates a fresh, empty staging directory."""
    os.makedirs(output, exist_ok=True)
    recover(output)
    staging = staging_dir(output, run_id)
    if os.path.exists(staging):
        shutil.rmtree(staging)
    os.makedirs(staging)
    return staging


def commit(output: str, staging: str) -> list[str]:
    """Publishes the staged parts into `output`, replacing every part of the previous run.

    The journal makes the commit restartable: once it exists, `recover` finishes the commit."""
    if not os.path.isfile(os.path.join(staging, "stats.json")):
        raise RuntimeError(f"{staging} holds no stats.json: the run did not finish, not publishing")
    parts = [p for p in PARTS if os.path.exists(os.path.join(staging, p))]
    _write_atomic(os.path.join(staging, JOURNAL), json.dumps({"parts": parts}).encode())
    _roll_forward(output, staging)
    return parts


def abort(staging: str) -> None:
    shutil.rmtree(staging, ignore_errors=True)


def recover(output: str) -> list[str]:
    """Finishes journaled commits and deletes unfinished staging directories; returns what it did."""
    done = []
    for entry in sorted(os.listdir(output)):
        path = os.path.join(output, entry)
        if not entry.startswith(STAGING_PREFIX) or not os.path.isdir(path):
            continue
        if os.path.isfile(os.path.join(path, JOURNAL)):
            _roll_forward(output, path)
            done.append(f"committed {entry}")
        else:
            shutil.rmtree(path)
            done.append(f"discarded {entry}")
    return done


def _roll_forward(output: str, staging: str) -> None:
    """Idempotent: every step checks what is already done, so it can restart after a crash."""
    parts = json.loads(Path(staging, JOURNAL).read_text())["parts"]
    retired = os.path.join(staging, "_replaced")
    os.makedirs(retired, exist_ok=True)
    # The old stats.json goes first (it vouches for the old parts), the new one comes last.
    order = ["stats.json"] + [p for p in PARTS if p != "stats.json"]
    for part in order:
        target, staged = os.path.join(output, part), os.path.join(staging, part)
        if part in parts and not os.path.exists(staged):
            continue  # moved into place by an interrupted commit: `target` is already the new one
        if os.path.lexists(target):
            _retire(target, os.path.join(retired, part))
        if part in parts and part != "stats.json":
            os.rename(staged, target)
    if "stats.json" in parts and os.path.exists(os.path.join(staging, "stats.json")):
        os.replace(os.path.join(staging, "stats.json"), os.path.join(output, "stats.json"))
    _fsync_dir(output)
    shutil.rmtree(staging)


def _retire(target: str, retired: str) -> None:
    if os.path.lexists(retired):  # retired once already by an interrupted commit
        shutil.rmtree(target) if os.path.isdir(target) else os.remove(target)
    else:
        os.replace(target, retired)


def _write_atomic(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(os.path.dirname(path))


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def staged_output(output: str, run_id: str) -> Iterator[str]:
    """The directory the pipeline should write to; committed into `output` when the block ends
    without an exception, discarded when it raises."""
    if "://" in output:
        yield output
        return
    staging = begin(output, run_id)
    try:
        yield staging
    except BaseException:
        abort(staging)
        raise
    commit(output, staging)

"""Run locks on a directory (the output and the state): one run at a time, and a lock left behind
by a dead run taken over with a message instead of blocking every later night.

``DIR/.lock`` holds its holder as JSON: pid, host, boot id, the process's start time, run id and
start time. It is created whole: the content goes to a temporary file first, which is then
hard-linked to ``.lock`` (link(2) fails when ``.lock`` exists, so creation is atomic and
exclusive), so a full disk can leave no empty lock.

A lock is taken over when its holder is provably gone:
  - same host (hostname and boot id), and no process has that pid, or the process with that pid
    started at another time (the pid was reused);
  - same hostname, another boot id: the machine rebooted since the lock was taken;
  - older than the configured timeout (``--lock-timeout``; the only test for other hosts);
  - no readable holder in it (a lock damaged by hand or written by an older version).
A takeover holds flock(2) on the stale lock file while it checks and replaces it, so of two runs
that find the same stale lock only one takes it over; the other then sees a live holder.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

LOCK_FILE = ".lock"


class Locked(RuntimeError):
    """Another run, alive as far as can be told, holds the lock."""


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return None


def _boot_id() -> str | None:
    text = _read("/proc/sys/kernel/random/boot_id")
    return text.strip() if text else None


def _process_start(pid: int) -> str | None:
    """The start time of process `pid` (clock ticks since boot, Linux), None where unknown."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def holder(run_id: str | None = None) -> dict[str, Any]:
    """What this process writes into a lock it takes."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "boot_id": _boot_id(),
            "process_start": _process_start(os.getpid()), "run_id": run_id,
            "started_at": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
            "token": uuid.uuid4().hex}


def _parse(text: str | None) -> dict[str, Any] | None:
    try:
        data = json.loads(text or "")
        int(data["pid"]), str(data["host"])
        return data
    except (ValueError, KeyError, TypeError):
        return None


def read_holder(path: str) -> dict[str, Any] | None:
    """The holder recorded in the lock file at `path`, None if absent or unreadable."""
    return _parse(_read(path))


def describe(who: dict[str, Any] | None) -> str:
    if who is None:
        return "holder unknown"
    run = f", run {who['run_id']}" if who.get("run_id") else ""
    return f"pid {who['pid']} on {who['host']} since {who.get('started_at', '?')}{run}"


def format_duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def parse_duration(text: str) -> float:
    """`90`, `90s`, `45m`, `6h`, `2d` -> seconds (the `--lock-timeout` argument)."""
    text = text.strip().lower()
    scale = {"s": 1, "m": 60, "h": 3600, "d": 86400}.get(text[-1:], None)
    value = float(text[:-1] if scale else text)
    if value <= 0:
        raise ValueError(f"a lock timeout must be positive: {text!r}")
    return value * (scale or 1)


def _age(who: dict[str, Any], path: str) -> float:
    try:
        started = dt.datetime.fromisoformat(str(who["started_at"]))
        return (dt.datetime.now(dt.timezone.utc) - started).total_seconds()
    except (KeyError, ValueError, TypeError):
        return dt.datetime.now().timestamp() - os.path.getmtime(path)


def stale_reason(who: dict[str, Any] | None, path: str, timeout: float | None) -> str | None:
    """Why the holder of `path` is provably gone, or None when it may still be running."""
    if who is None:
        return "it names no holder (empty or damaged)"
    if timeout is not None and _age(who, path) > timeout:
        return f"it is older than --lock-timeout {format_duration(timeout)}"
    if who["host"] != socket.gethostname():
        return None  # another machine: only the timeout can tell
    boot = _boot_id()
    if who.get("boot_id") and boot and who["boot_id"] != boot:
        return f"{who['host']} has rebooted since"
    pid = int(who["pid"])
    if not _alive(pid):
        return "that process is no longer running"
    started = who.get("process_start")
    if started and _process_start(pid) not in (None, started):
        return "that process is no longer running (its pid now belongs to another process)"
    return None


def _write_temp(path: str, content: str) -> str:
    tmp = f"{path}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        with open(tmp, "x", encoding="utf-8") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        with suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    return tmp


def _take_over(path: str, tmp: str, timeout: float | None,
               notify: Callable[[str], None]) -> bool:
    """Replaces a stale lock at `path` by `tmp`; False when it changed meanwhile (look again);
    raises `Locked` when its holder may be alive."""
    try:
        fd = os.open(path, os.O_RDWR)
    except PermissionError:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # one takeover at a time; held for microseconds
        try:
            if os.fstat(fd).st_ino != os.stat(path).st_ino:
                return False  # replaced by another run's takeover while we waited
        except FileNotFoundError:
            return False
        with open(path, encoding="utf-8", errors="replace") as f:
            who = _parse(f.read())
        reason = stale_reason(who, path, timeout)
        if reason is None:
            hint = "" if timeout is not None else (" (or pass --lock-timeout to take over locks "
                                                   "older than that)")
            raise Locked(f"another run holds {path} ({describe(who)}); remove it if that run is "
                         f"dead{hint}")
        notify(f"taking over {path} from {describe(who)}: {reason}")
        os.replace(tmp, path)
        return True
    finally:
        os.close(fd)


@contextmanager
def run_lock(directory: str, run_id: str | None = None, timeout: float | None = None,
             notify: Callable[[str], None] | None = None) -> Iterator[str]:
    """Holds ``directory/.lock`` for the block; a live holder makes it raise `Locked`."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, LOCK_FILE)
    mine = json.dumps(holder(run_id))
    tmp = _write_temp(path, mine)
    try:
        for _ in range(5):
            try:
                os.link(tmp, path)
                break
            except FileExistsError:
                pass
            if _take_over(path, tmp, timeout, notify or _warn):
                break
        else:
            raise Locked(f"cannot take {path}: it keeps changing (other runs are starting)")
    finally:
        with suppress(FileNotFoundError):
            os.remove(tmp)
    try:
        yield path
    finally:
        if _read(path) == mine:  # not ours any more if a run took it over after a timeout
            with suppress(FileNotFoundError):
                os.remove(path)


def _warn(message: str) -> None:
    import logging

    logging.getLogger(__name__).warning(message)

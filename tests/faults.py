"""Fault injection for crash tests: runs the `ouroboros` command in a child process that is killed
(SIGKILL), paused, or whose disk fills up at one named step.

    python -m tests.faults SPEC_JSON run -i ... -o ...

SPEC_JSON: {"at": ["module:attr", ...], "nth": N, "caller": "module" | null,
            "action": "kill" | "pause" | "fill", "dir": "..."}

The N-th call of any of the `at` callables (counting only calls made from module `caller`, when
given) first performs `action`: `kill` SIGKILLs this process (nothing is cleaned up, as after
`kill -9` or a power cut), `pause` writes `dir/reached` and waits until `dir/go` exists, `fill`
writes zeros into `dir` until its file system is full (a small tmpfs) and then lets the call run.
Everything else runs unchanged, so the child is a real `ouroboros run`.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import importlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def fill(directory: str) -> None:
    """Writes zeros into `directory` until its file system reports ENOSPC."""
    block = bytes(4096)
    with open(os.path.join(directory, "filler"), "ab", buffering=0) as f:
        try:
            while True:
                f.write(block)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise


def arm(spec: dict[str, Any]) -> None:
    """Wraps every `module:attr` (or `module:Class.method`) of `spec["at"]` that exists."""
    calls = [0]
    for target in spec["at"]:
        module_name, path = target.split(":", 1)
        *owners, attr = path.split(".")
        try:
            owner = importlib.import_module(module_name)
            for name in owners:
                owner = getattr(owner, name)
            real = getattr(owner, attr)
        except (ImportError, AttributeError):
            continue  # a step another version of the code names differently; tests check rc

        @functools.wraps(real)
        def wrapper(*args, _real=real, **kwargs):
            caller = spec.get("caller")
            if caller is None or sys._getframe(1).f_globals.get("__name__") == caller:
                calls[0] += 1
                if calls[0] == spec.get("nth", 1):
                    act(spec)
            return _real(*args, **kwargs)

        setattr(owner, attr, wrapper)


def act(spec: dict[str, Any]) -> None:
    action = spec.get("action", "kill")
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "pause":
        Path(spec["dir"], "reached").touch()
        while not Path(spec["dir"], "go").exists():
            time.sleep(0.05)
    elif action == "fill":
        fill(spec["dir"])


def run(spec: dict[str, Any], argv: list[str], wait: bool = True) -> subprocess.Popen:
    """`ouroboros ARGV` in a child process with `spec` armed. With `wait`, returns once it ended
    (`returncode`, `pid`, `stdout`, `stderr` set; -9 when it was killed)."""
    cmd = [sys.executable, "-m", "tests.faults", json.dumps(spec), *argv]
    child = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    if wait:
        child.stdout, child.stderr = child.communicate(timeout=600)
    return child


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str = "4m"):
    """A tmpfs of `size` mounted at `path` (root only); skips the test where mounting is refused."""
    import pytest

    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}): needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def main() -> int:
    spec = json.loads(sys.argv[1])
    arm(spec)
    from ouroboros.pipeline.cli import main as ouroboros

    return ouroboros(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())

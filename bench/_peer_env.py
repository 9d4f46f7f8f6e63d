"""A private virtual environment for a peer tool (datatrove, zippy, ...), built once and reused.

Benchmarks run the peer in its own venv so its pins never touch ouroboros's environment. A file lock
makes concurrent benchmarks share one build.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(os.environ.get("OUROBOROS_PEER_VENVS", Path(__file__).resolve().parent / ".venvs"))


# Peers pinned to the versions the figures in README.md were measured with.
DATATROVE_REQUIREMENTS = ["datatrove[processing]==0.10.1", "spacy==3.8.*"]
# datatrove's JSONL reader and Parquet writer (its "io" needs), for whole-pipeline runs.
DATATROVE_PIPELINE_REQUIREMENTS = [*DATATROVE_REQUIREMENTS, "orjson==3.*", "pyarrow==25.0.1"]
ZIPPY_REQUIREMENTS = ["thinkst-zippy==0.1.3"]


def peer_python(name: str, requirements: list[str]) -> Path:
    """Path of the python of venv `name` with `requirements` installed (created on first use)."""
    ROOT.mkdir(parents=True, exist_ok=True)
    env_dir = ROOT / name
    python = env_dir / "bin" / "python"
    stamp = env_dir / ".requirements"
    wanted = "\n".join(sorted(requirements))
    with open(ROOT / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if python.exists() and stamp.exists() and stamp.read_text() == wanted:
            return python
        print(f"[peer] building venv {env_dir} with {requirements}", file=sys.stderr)
        venv.create(env_dir, with_pip=True, clear=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *requirements], check=True)
        stamp.write_text(wanted)
    return python

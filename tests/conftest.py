"""Shared fixtures: the real data in ../shared/data (read in place) and one pipeline run over it."""

from __future__ import annotations

import glob
from pathlib import Path

import pyarrow.parquet as pq
import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
WEB = SHARED_DATA / "web"


def require_data(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not found at {path} (CI always has ../shared/data)")
    return path


def read_output(out: Path, part: str) -> list[dict]:
    files = sorted(glob.glob(str(out / part / "*.parquet")))
    rows: list[dict] = []
    for f in files:
        rows.extend(pq.read_table(f).to_pylist())
    return rows


@pytest.fixture(scope="session")
def web_run(tmp_path_factory):
    """`ouroboros run` over every shard in ../shared/data/web (DirectRunner), once per session."""
    from ouroboros.pipeline.cli import execute

    require_data("web")
    out = tmp_path_factory.mktemp("web_run")
    stats = execute([str(WEB / "*")], str(out), quiet=True, overwrite=True, run_id="test-run-1")
    return out, stats

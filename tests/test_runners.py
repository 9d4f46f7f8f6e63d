"""The pipeline on Beam's portable runners: the portable Job API (local job service) and Dask.

Flink/Spark job servers and Prism cannot be downloaded here; Beam's local job service takes the
same Job API submission, and a local `distributed` cluster runs the Dask translation. Each run
must give the DirectRunner's curated/rejected/error ids and a holding accounting identity.
"""

from __future__ import annotations

import os
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam import pvalue
from ouroboros.pipeline.cli import demo_inputs, execute
from ouroboros.pipeline.runners import (
    JobServiceUnavailable,
    dask_args,
    local_job_service,
    portable_args,
)

from tests.conftest import read_output

PARTS = ("curated", "rejected", "errors")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> list[str]:
    """The demo corpus plus a JSONL shard with one broken line, so the error output is not empty."""
    extra = tmp_path_factory.mktemp("shards") / "broken.jsonl"
    extra.write_text('{"text": "A short but real note about rivers, bridges and old mills."}\n'
                     '{"text": broken\n')
    return demo_inputs() + [str(extra)]


@pytest.fixture(scope="module")
def direct_run(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("direct")
    return out, execute(inputs, str(out), quiet=True, overwrite=True, run_id="runners-test")


@pytest.fixture(scope="module")
def job_endpoint():
    """Beam's local job service in a subprocess on a free port, stopped after the module."""
    try:
        with local_job_service() as endpoint:
            yield endpoint
    except JobServiceUnavailable as exc:
        pytest.skip(f"Beam's local job service cannot start here: {exc}")


@pytest.fixture(scope="module")
def dask_cluster():
    distributed = pytest.importorskip("distributed", reason="needs the dask extra "
                                      "(pip install 'ouroboros-curate[dask]')")
    try:
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           dashboard_address=None)
    except (OSError, RuntimeError, TimeoutError) as exc:  # worker processes cannot start here
        pytest.skip(f"cannot start a local Dask cluster: {exc!r}")
    with cluster:
        yield cluster


def _ids(out: Path) -> dict[str, list[tuple]]:
    keys = {"curated": ("id",), "rejected": ("id", "reject_reason"),
            "errors": ("source_uri", "source_location", "error_type")}
    return {part: sorted(tuple(r[k] for k in keys[part]) for r in read_output(out, part))
            for part in PARTS}


def _assert_same_as_direct(out: Path, stats: dict, direct_run) -> None:
    direct_out, direct_stats = direct_run
    assert stats["accounting"]["holds"], stats["accounting"]
    counts = {part: len(read_output(out, part)) for part in PARTS}
    assert stats["input_records"] == sum(counts.values()) == direct_stats["input_records"]
    assert counts == {"curated": stats["curated"], "rejected": stats["rejected"],
                      "errors": stats["errors"]}
    assert stats["errors"] >= 1 and stats["rejected"] >= 1 and stats["curated"] >= 10
    assert _ids(out) == _ids(direct_out)
    for key in ("rejected_by_stage", "errors_by_stage", "skipped_non_documents", "per_shard"):
        assert stats[key] == direct_stats[key]
    leftovers = [p for part in PARTS for p in (out / part).iterdir() if not p.name.endswith(".parquet")]
    assert not leftovers, f"sink temp files left behind: {leftovers}"


@pytest.mark.slow
def test_portable_runner_over_the_job_api_matches_the_direct_runner(inputs, direct_run,
                                                                    job_endpoint, tmp_path):
    stats = execute(inputs, str(tmp_path), quiet=True, overwrite=True, run_id="runners-test",
                    beam_args=portable_args(job_endpoint))
    _assert_same_as_direct(tmp_path, stats, direct_run)


@pytest.mark.slow
def test_dask_runner_on_a_local_cluster_matches_the_direct_runner(inputs, direct_run, dask_cluster,
                                                                  tmp_path):
    stats = execute(inputs, str(tmp_path), quiet=True, overwrite=True, run_id="runners-test",
                    beam_args=dask_args(dask_cluster.scheduler_address))
    _assert_same_as_direct(tmp_path, stats, direct_run)


# Why our DaskRunner exists: each case below is mishandled by Beam's own Dask translation
# (apache_beam/runners/dask/transform_evaluator.py and dask_runner.py, Beam 2.77).

class _SplitParity(beam.DoFn):
    """Evens to the main output, odds tagged; also emits one record per bundle at finish_bundle."""

    def __init__(self, log_dir: str):
        self._log_dir = log_dir

    def start_bundle(self):
        self._seen = 0

    def process(self, x: int):
        with open(os.path.join(self._log_dir, "calls"), "a") as f:
            f.write(f"{x}\n")
        self._seen += 1
        yield x if x % 2 == 0 else pvalue.TaggedOutput("odd", x)

    def finish_bundle(self):
        from apache_beam.transforms.window import GlobalWindow
        from apache_beam.utils.windowed_value import WindowedValue

        yield pvalue.TaggedOutput("bundles", WindowedValue(self._seen, 0, [GlobalWindow()]))


def _write_sorted(values, path: str) -> None:
    Path(path).write_text("\n".join(str(v) for v in sorted(values)))


def _write_value(value, path: str) -> None:
    Path(path).write_text(str(value))


@pytest.mark.slow
def test_dask_runner_separates_tags_runs_every_sink_and_computes_each_step_once(dask_cluster,
                                                                                tmp_path):
    log_dir = tmp_path / "log"
    log_dir.mkdir()
    text = tmp_path / "lines.txt"
    text.write_text("".join(f"line {i}\n" for i in range(7)))
    with beam.Pipeline(argv=dask_args(dask_cluster.scheduler_address)) as p:
        split = (p | beam.Create(list(range(20))) | beam.Reshuffle()
                 | beam.ParDo(_SplitParity(str(log_dir))).with_outputs("odd", "bundles", main="even"))
        total = split.even | "SumEven" >> beam.CombineGlobally(sum)
        # The side input (`total`) is read by every bundle of this step.
        _ = (split.odd | "PlusTotal" >> beam.Map(lambda x, t: x + t, beam.pvalue.AsSingleton(total))
             | "AllOdd" >> beam.combiners.ToList()
             | "WriteOdd" >> beam.Map(_write_sorted, str(tmp_path / "odd")))
        _ = (split.bundles | "Seen" >> beam.CombineGlobally(sum)
             | "WriteSeen" >> beam.Map(_write_value, str(tmp_path / "seen")))
        _ = (p | "ReadText" >> beam.io.ReadFromText(str(text)) | "AllLines" >> beam.combiners.ToList()
             | "WriteLines" >> beam.Map(_write_sorted, str(tmp_path / "lines")))
        _ = split.even | "WriteEven" >> beam.io.WriteToText(str(tmp_path / "even"))

    even = sorted(int(v) for f in tmp_path.glob("even-*") for v in f.read_text().split())
    assert even == list(range(0, 20, 2))  # only the main output, and this sink ran
    assert (tmp_path / "odd").read_text().splitlines() == [str(x + 90) for x in range(1, 20, 2)]
    assert (tmp_path / "seen").read_text() == "20"  # finish_bundle outputs are kept
    assert (tmp_path / "lines").read_text().splitlines() == [f"line {i}" for i in range(7)]
    calls = sorted(int(v) for v in (log_dir / "calls").read_text().split())
    assert calls == list(range(20)), "a step ran more than once per element"

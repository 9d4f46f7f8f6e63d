"""Where a local run's memory goes: resident memory before, after and at peak of every fused stage.

Runs ``ouroboros run`` in this process on Beam's in-process DirectRunner (the FnApiRunner) with the
bench's shared-work settings (``pipeline_vs_datatrove.SAME_WORK``) on a corpus of
``scale_corpus.build_corpus``, and prints one line per bundle of every fused stage that took at
least ``--min-seconds`` or moved resident memory by 5 MB or more: wall seconds, RSS before -> after,
the peak in between (sampled every 50 ms), and the stage's name (Beam's fused step names: the
streaming pass is the stage that starts at ``SpreadShards``, the keyed decisions are the
``SketchBandKeys``, ``AfterExact``, ``near_dedup`` stages, the apply pass starts at
``Decisions/Join``). Last line: the process's peak RSS.

How it looks inside: it wraps ``FnApiRunner._execute_bundle``, a private method of Beam's runner
(checked against apache-beam 2.6x; if it is renamed the script says so and stops). A measurement
tool only: nothing in the product depends on it. Compare runs of the same size: the machine's other
load changes wall time, not memory.

    .venv/bin/python bench/memory_by_stage.py --size 10000 [--work DIR] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=10_000, help="documents in the corpus")
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "ouroboros-scale"))
    ap.add_argument("--min-seconds", type=float, default=0.5)
    ap.add_argument("--set", action="append", default=[], help="more config overrides")
    args = ap.parse_args()

    # Before Beam or pyarrow load: the command chooses Arrow's pool when it starts, and the corpus
    # builder must not load pyarrow first.
    from pipeline_vs_datatrove import SAME_WORK
    from scale_corpus import build_corpus

    corpus = build_corpus(Path(args.work) / str(args.size), args.size)
    out = Path(args.work) / f"out-by-stage-{args.size}"
    shutil.rmtree(out, ignore_errors=True)

    from ouroboros.pipeline import cli

    cli.choose_arrow_pool()  # as cli.main does, but before Beam (which imports pyarrow) loads
    cli.tune_malloc()
    from apache_beam.runners.portability.fn_api_runner import fn_runner

    original = getattr(fn_runner.FnApiRunner, "_execute_bundle", None)
    if original is None:
        sys.exit("this Beam's FnApiRunner has no _execute_bundle: update bench/memory_by_stage.py")
    peak = {"mb": 0.0}

    def sample() -> None:
        while True:
            peak["mb"] = max(peak["mb"], _rss_mb())
            time.sleep(0.05)

    threading.Thread(target=sample, daemon=True).start()

    def traced(self, context, bundle_manager, bundle_input):
        before, t0 = _rss_mb(), time.perf_counter()
        peak["mb"] = before
        try:
            return original(self, context, bundle_manager, bundle_input)
        finally:
            after, seconds = _rss_mb(), time.perf_counter() - t0
            top = max(peak["mb"], after)
            if seconds >= args.min_seconds or max(abs(after - before), top - before) >= 5:
                name = bundle_manager.stage.name.replace("ref_AppliedPTransform_", "")
                print(f"{seconds:8.1f} s  RSS {before:6.0f} -> {after:6.0f} MB  peak {top:6.0f}  "
                      f"{name[:160]}", flush=True)

    fn_runner.FnApiRunner._execute_bundle = traced
    argv = ["run", "--input", *corpus.shards, "--output", str(out)]
    for override in [*SAME_WORK, *args.set]:
        argv += ["--set", override]
    code = cli.main(argv)
    print(f"exit {code}; peak RSS of the process "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()

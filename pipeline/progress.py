"""A progress line for long local runs: shards and records done, records/s, elapsed, time left.

Beam's metrics cannot be queried while a DirectRunner pipeline runs, so the workers report through
a directory instead (a `ProgressChannel`): each worker process keeps its counts in memory and
rewrites its own small JSON file at most a few times a second; a thread in the driver sums the files
and redraws one line (tqdm). Files, not a queue, because the multi-process DirectRunner's workers are
separate interpreters that inherit nothing but the pickled DoFns, and a path pickles.

What is counted, and where:
- `read` (and `read_errors`): records the readers produced, `shards`/`shard_bytes` when a shard is
  finished (`pipeline/graph.py`, ReadShard);
- `started`: documents entering the per-document stages, `done`: records reaching their output
  (curated, rejected or errors): both in `pipeline/stats.py`, which keys every record anyway.
The DirectRunner runs the graph stage by stage, so a run goes through phases (reading, filtering,
finishing) and the line estimates the time left in the current one (see `estimate`). A retried
bundle counts twice: the line is an estimate, `stats.json` is exact.

The line is drawn only when standard error is a terminal and the runner is local (the workers
of Dataflow, Flink or Dask cannot write to the driver's disk).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TextIO

# Runner names (as given with --runner) that execute in this machine's processes.
LOCAL_RUNNERS = {None, "", "DirectRunner", "direct", "SwitchingDirectRunner", "BundleBasedDirectRunner",
                 "FnApiRunner"}
FLUSH_SECONDS = 0.25
POLL_SECONDS = 0.5


class _Writer:
    """One per process and channel: cumulative counts, rewritten atomically to its own file."""

    def __init__(self, path: str):
        self.pid = os.getpid()
        self.file = os.path.join(path, f"{self.pid}-{uuid.uuid4().hex[:8]}.json")
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()
        self.last = 0.0

    def add(self, counts: dict[str, int], force: bool = False) -> None:
        with self.lock:
            for key, n in counts.items():
                self.counts[key] = self.counts.get(key, 0) + n
            now = time.monotonic()
            if not force and now - self.last < FLUSH_SECONDS:
                return
            self.last = now
            data = json.dumps(self.counts)
        tmp = f"{self.file}.tmp"
        try:
            with open(tmp, "w") as f:
                f.write(data)
            os.replace(tmp, self.file)
        except OSError:  # the driver removed the channel: the run is ending, counts no longer matter
            pass


_WRITERS: dict[str, _Writer] = {}
_WRITERS_LOCK = threading.Lock()


@dataclass(frozen=True)
class ProgressChannel:
    """Where workers leave their counts (a local directory). Picklable: DoFns carry it."""

    path: str

    def _writer(self) -> _Writer:
        writer = _WRITERS.get(self.path)
        if writer is None or writer.pid != os.getpid():  # a forked child starts its own file
            with _WRITERS_LOCK:
                writer = _WRITERS.get(self.path)
                if writer is None or writer.pid != os.getpid():
                    writer = _WRITERS[self.path] = _Writer(self.path)
        return writer

    def add(self, **counts: int) -> None:
        self._writer().add(counts)

    def flush(self) -> None:
        self._writer().add({}, force=True)

    def read(self) -> dict[str, int]:
        """The sum over every worker's file (files being replaced are skipped until next time)."""
        total: dict[str, int] = {}
        try:
            names = os.listdir(self.path)
        except OSError:
            return total
        for name in names:
            if not name.endswith(".json"):
                continue
            try:
                with open(os.path.join(self.path, name)) as f:
                    counts = json.load(f)
            except (OSError, ValueError):
                continue
            for key, n in counts.items():
                total[key] = total.get(key, 0) + int(n)
        return total


@dataclass
class Estimate:
    phase: str  # starting | reading | preparing | filtering | finishing
    fraction: float | None  # of the current phase, None while unknown
    seconds_left: float | None  # for the current phase
    rate: float | None  # records per second in the current phase


def estimate(counts: dict[str, int], total_shards: int, total_bytes: int,
             phase_elapsed: float) -> Estimate:
    """Where the run is and how long the current phase still needs, from the summed counts.

    Phases, as the DirectRunner runs them: reading every shard (progress by bytes, or by shards when
    sizes are unknown), preparing (the workers load the stages' models), filtering (documents through the per-document stages, of those read), then
    finishing (dedup, scoring, sampling and writing: records written, of those read). Each estimate
    extrapolates the current phase's rate; the next phase's length is not known until it starts,
    so the line says which phase it is estimating."""
    read, started, done = counts.get("read", 0), counts.get("started", 0), counts.get("done", 0)
    shards = counts.get("shards", 0)
    if not (read or started or done or shards):
        return Estimate("starting", None, None, None)
    if shards < total_shards and started == 0:
        if total_bytes > 0:
            frac = min(counts.get("shard_bytes", 0) / total_bytes, 1.0)
        else:
            frac = shards / total_shards if total_shards else 0.0
        return Estimate("reading", frac, _left(phase_elapsed, frac), _rate(read, phase_elapsed))
    documents = read - counts.get("read_errors", 0)
    if started == 0 and documents > 0:  # workers load the models before the first document
        return Estimate("preparing", None, None, None)
    if started < documents or shards < total_shards:
        frac = started / documents if documents else 0.0
        return Estimate("filtering", frac, _left(phase_elapsed, frac), _rate(started, phase_elapsed))
    frac = min(done / read, 1.0) if read else 0.0
    return Estimate("finishing", frac, _left(phase_elapsed, frac) if done else None,
                    _rate(done, phase_elapsed) if done else None)


def _left(elapsed: float, frac: float) -> float | None:
    return elapsed * (1 - frac) / frac if frac > 0 and elapsed > 0 else None


def _rate(n: int, elapsed: float) -> float | None:
    return n / elapsed if elapsed > 0 and n else None


def format_line(counts: dict[str, int], total_shards: int, est: Estimate, elapsed: float) -> str:
    from tqdm import tqdm

    parts = [f"{counts.get('shards', 0)}/{total_shards} shards",
             f"{counts.get('read', 0):,} records read"]
    if est.phase in ("preparing", "filtering", "finishing"):
        parts.append(f"{counts.get('started', 0):,} filtered")
    if est.phase == "finishing":
        parts.append(f"{counts.get('done', 0):,} written")
    if est.rate is not None:
        parts.append(f"{est.rate:,.1f} rec/s")
    parts.append(f"{tqdm.format_interval(elapsed)} elapsed")
    if est.seconds_left is not None:
        parts.append(f"~{tqdm.format_interval(est.seconds_left)} left to {est.phase[:-3]}")
    head = est.phase if est.fraction is None else f"{est.phase} {100 * est.fraction:3.0f}%"
    if est.phase == "finishing":
        head += " (dedup, scoring, writing)"
    return f"{head} | " + " | ".join(parts)


def enabled(runner: str | None, stream: TextIO | None = None, quiet: bool = False) -> bool:
    """On only for a local runner writing to a terminal (never into a log file or a pipe)."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return not quiet and runner in LOCAL_RUNNERS and bool(isatty and isatty())


def shard_sizes(shards: list[str]) -> int:
    total = 0
    for s in shards:
        try:
            total += os.path.getsize(s)
        except OSError:
            pass  # a directory (HF dataset) or a remote path: the estimate falls back to shard counts
    return total


@contextmanager
def progress_line(shards: list[str], on: bool, stream: TextIO | None = None
                  ) -> Iterator[ProgressChannel | None]:
    """Yields the channel to hand to the pipeline (None when off) and draws the line meanwhile."""
    if not on:
        yield None
        return
    from tqdm import tqdm

    stream = sys.stderr if stream is None else stream
    path = tempfile.mkdtemp(prefix="ouroboros-progress-")
    channel = ProgressChannel(path)
    total_shards, total_bytes = len(shards), shard_sizes(shards)
    stop = threading.Event()
    bar = tqdm(total=1000, file=stream, leave=False, dynamic_ncols=True, bar_format="{desc}")
    start = time.monotonic()

    def poll() -> None:
        phase, phase_start = "", start
        while not stop.wait(POLL_SECONDS):
            counts = channel.read()
            now = time.monotonic()
            est = estimate(counts, total_shards, total_bytes, now - phase_start)
            if est.phase != phase:  # each phase's rate is measured from its own start
                phase, phase_start = est.phase, now
                est = estimate(counts, total_shards, total_bytes, 0.0)
            bar.set_description_str(format_line(counts, total_shards, est, now - start))

    thread = threading.Thread(target=poll, name="ouroboros-progress", daemon=True)
    thread.start()
    try:
        yield channel
    finally:
        stop.set()
        thread.join()
        bar.close()
        _WRITERS.pop(path, None)
        shutil.rmtree(path, ignore_errors=True)


def runner_name(options: Any) -> str | None:
    """The --runner option as given (None: Beam's default, the DirectRunner)."""
    from apache_beam.options.pipeline_options import StandardOptions

    runner = options.view_as(StandardOptions).runner
    return runner if runner is None or isinstance(runner, str) else type(runner).__name__

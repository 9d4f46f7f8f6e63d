"""A progress line for long local runs: shards and records done, records/s, elapsed, time left.

Beam's metrics cannot be queried while a DirectRunner pipeline runs, so the workers report through
a directory instead (a `ProgressChannel`): each worker process keeps its counts in memory and
rewrites its own small JSON file at most a few times a second; a thread in the driver sums the files
and redraws one line (tqdm). Files, not a queue, because the multi-process DirectRunner's workers are
separate interpreters that inherit nothing but the pickled DoFns, and a path pickles.

What is counted, and where:
- `read`: records the readers produced (documents and read errors), `shards`/`shard_bytes` when a
  shard is finished (`pipeline/graph.py`, ReadShard);
- `started`: documents entering the per-document stages, `done`: records reaching their output
  (curated, rejected or errors): both in `pipeline/stats.py`, which keys every record anyway.
Every record is started once and done once, so (started + done) / (2 x records) runs from 0 to 1;
the post-filter stages (dedup, scoring, sampling, writing) are weighted by the records that reach
them. A retried bundle counts twice: the line is an estimate, `stats.json` is exact.

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
    phase: str  # "reading" or "curating"
    fraction: float | None  # of the whole run's work, None while unknown
    seconds_left: float | None
    rate: float | None  # records per second in the current phase


def estimate(counts: dict[str, int], total_shards: int, total_bytes: int, elapsed: float,
             processing_elapsed: float | None) -> Estimate:
    """How far the run is and how long it still needs, from the summed counts.

    While shards are still being read the estimate covers only the reading (by bytes, or by shards
    when sizes are unknown); then it is (started + done) / (2 x records read), extrapolated over the
    time since processing began."""
    read, started, done = counts.get("read", 0), counts.get("started", 0), counts.get("done", 0)
    shards = counts.get("shards", 0)
    if shards < total_shards and started == 0:
        if total_bytes > 0:
            frac = min(counts.get("shard_bytes", 0) / total_bytes, 1.0)
        else:
            frac = shards / total_shards if total_shards else 0.0
        left = elapsed * (1 - frac) / frac if frac > 0 else None
        return Estimate("reading", None, left, read / elapsed if elapsed > 0 else None)
    expected = max(read, started, done, 1)
    frac = min((started + done) / (2 * expected), 1.0)
    t = processing_elapsed if processing_elapsed is not None else elapsed
    left = t * (1 - frac) / frac if frac > 0 and t > 0 else None
    rate = started / t if t > 0 else None
    return Estimate("curating", frac, left, rate)


def format_line(counts: dict[str, int], total_shards: int, est: Estimate, elapsed: float) -> str:
    from tqdm import tqdm

    parts = [f"{est.phase}: {counts.get('shards', 0)}/{total_shards} shards",
             f"{counts.get('read', 0):,} records read"]
    if est.phase == "curating":
        parts.append(f"{counts.get('started', 0):,} filtered, {counts.get('done', 0):,} written")
    if est.rate is not None:
        parts.append(f"{est.rate:,.1f} rec/s")
    parts.append(f"{tqdm.format_interval(elapsed)} elapsed")
    if est.seconds_left is not None:
        what = " left to read" if est.phase == "reading" else " left"
        parts.append(f"~{tqdm.format_interval(est.seconds_left)}{what}")
    if est.fraction is not None:
        parts.insert(0, f"{100 * est.fraction:3.0f}%")
    return " | ".join(parts)


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
    bar = tqdm(total=1000, file=stream, leave=False, dynamic_ncols=True, bar_format="{postfix}")
    start = time.monotonic()

    def poll() -> None:
        processing_start: float | None = None
        while not stop.wait(POLL_SECONDS):
            counts = channel.read()
            now = time.monotonic()
            if processing_start is None and counts.get("started", 0) > 0:
                processing_start = now
            est = estimate(counts, total_shards, total_bytes, now - start,
                           None if processing_start is None else now - processing_start)
            bar.set_postfix_str(format_line(counts, total_shards, est, now - start))

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

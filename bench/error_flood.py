"""A shard of lines that are not JSON: memory and time of a whole `ouroboros run` over it, with the
per-shard error cap (`read.max_errors_per_shard`, default 1,000) and without it, side by side.

Without a cap every bad line becomes an error record (about 1.6 kB each with its excerpt), and the
DirectRunner holds them all: issue 12 measured 1.9 GB of RSS for 1M lines. With the cap the shard
gives 1,000 error records and one summary per error type, and `stats.json` still counts every line.

    python bench/error_flood.py --lines 1000000

Prints, per setting: error rows written, errors counted in stats.json, whether the accounting holds,
the peak RSS of the `ouroboros run` process (ru_maxrss from wait4) and its wall time. Timings and
memory are noisy on a shared machine: both settings run back to back on the same file.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

UNCAPPED = 10**12


def flood(path: Path, lines: int) -> None:
    line = b"this line is not JSON, and neither is the next one; a crawler wrote logs here\n"
    with open(path, "wb") as f:
        f.write(b'{"text": "A good first record, so the shard is not all bad."}\n')
        f.writelines(line * 10000 for _ in range(lines // 10000))
        f.write(line * (lines % 10000))
        f.write(b'{"text": "A good last record after the flood."}\n')


def run(shard: Path, out: Path, cap: int) -> dict:
    cmd = [sys.executable, "-m", "ouroboros.pipeline.cli", "run", "-i", str(shard), "-o", str(out),
           "--set", f"read.max_errors_per_shard={cap}", "--set", "langid.enabled=false"]
    began = time.monotonic()
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.monotonic() - began
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"run failed: {child.stderr.read().decode()[-2000:]}")
    stats = json.loads((out / "stats.json").read_text())
    rows = sum(pq.read_metadata(f).num_rows for f in glob.glob(str(out / "errors" / "*.parquet")))
    return {"cap": "none" if cap == UNCAPPED else f"{cap:,}", "error_rows": rows,
            "errors_counted": stats["errors"], "holds": stats["accounting"]["holds"],
            "peak_rss_mib": usage.ru_maxrss / 1024, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ouroboros-flood-") as tmp:
        shard = Path(tmp, "flood.jsonl")
        flood(shard, args.lines)
        print(f"{args.lines:,} lines that are not JSON + 2 good ones "
              f"({shard.stat().st_size / 1e6:.0f} MB)")
        print("| read.max_errors_per_shard | error rows | errors counted | accounting holds "
              "| peak RSS (MiB) | wall (s) |")
        print("|---|---|---|---|---|---|")
        for cap in (1000, UNCAPPED):
            r = run(shard, Path(tmp, f"out-{cap}"), cap)
            print(f"| {r['cap']} | {r['error_rows']:,} | {r['errors_counted']:,} | {r['holds']} "
                  f"| {r['peak_rss_mib']:,.0f} | {r['seconds']:.0f} |", flush=True)


if __name__ == "__main__":
    main()

"""End to end at scale: ouroboros vs datatrove, same corpus, same work, same cores, side by side.

Corpora of 10k, 50k and 200k documents built from ../shared/data (``scale_corpus.build_corpus``:
real lines recombined, Zipf sites, 2% planted exact and 5% planted near duplicates), 8 JSONL.gz
shards each, written once under ``--work`` (default: ouroboros-scale in the system's temporary directory).

The work, on both sides: read the shards; the Gopher repetition, Gopher quality, C4 and FineWeb
quality filters (English rules for every document: ``quality.language_aware=false`` on our side);
MinHash near dedup of the survivors with datatrove's parameters (word 5-grams, 14 bands x 8 rows,
seed 1, datatrove's text simplification, no signature below 5 words); write the survivors as zstd
Parquet. Language ID, exact dedup and the synthetic scorer are off on our side (datatrove's
pipeline below has no such step; its language filter downloads its model at run time).

  ouroboros   ``ouroboros run`` on Beam's DirectRunner (in-process: one core), this checkout's graph
              (documents stream to staged files; dedup decides on keys) and, with ``--main``,
              another checkout's ``ouroboros`` (the graph before, for the memory figure)
  datatrove   datatrove 0.10.1 in its own venv (``_peer_env``), ``LocalPipelineExecutor`` with
              ``--workers`` (default 1: one core), its documented 4-stage MinHash recipe behind a
              filtering stage: JsonlReader -> 4 filters -> JsonlWriter (survivors);
              signatures -> buckets -> clusters -> filter -> ParquetWriter

Each run is a child process tree under ``nice``; CPU seconds = user + system of the whole tree;
peak RSS = the largest sum over the tree's live processes (polled every 0.2 s). Printed per run:
documents/s (wall), CPU seconds per 1,000 documents, documents per CPU second, peak RSS, curated
count; per size, ours / datatrove in documents per CPU second; and ouroboros's time per stage
(``stats.json`` ``timing.seconds_by_stage``: the per-document stages of the streaming pass, and
model loading) and its slowest Beam steps. The machine is shared: timings are noisy; compare
within one invocation.

    .venv/bin/python bench/pipeline_vs_datatrove.py [--sizes 10000 50000 200000] \
        [--main OLD_CHECKOUT/.venv/bin/ouroboros] [--workers 1] [--sides ours,main,datatrove]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _peer_env import DATATROVE_PIPELINE_REQUIREMENTS, peer_python
from scale_corpus import Measured, build_corpus, run_measured

# Our configuration for the shared work (each a `--set` override).
SAME_WORK = [
    "langid.enabled=false", "synthetic.enabled=false", "exact_dedup.enabled=false",
    "topics.enabled=false", "sampling.enabled=false", "quality.language_aware=false",
    "near_dedup.normalize_numbers=true", "near_dedup.strip_accents=true",
    "near_dedup.short_text=skip", "output.compression=zstd",
]

PEER_SCRIPT = r'''
import sys

import pyarrow as pa
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup import MinhashDedupSignature
from datatrove.pipeline.dedup.minhash import (MinhashConfig, MinhashDedupBuckets,
                                              MinhashDedupCluster, MinhashDedupFilter)
from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter,
                                        GopherQualityFilter, GopherRepetitionFilter)
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter, ParquetWriter

inp, work, shards, workers = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
cfg = MinhashConfig(n_grams=5, num_buckets=14, hashes_per_bucket=8, seed=1)
logs = f"{work}/logs"
def run(name, pipeline, tasks):
    LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=min(workers, tasks),
                          logging_dir=f"{logs}/{name}", skip_completed=False).run()
run("filter", [JsonlReader(inp, glob_pattern="*.jsonl.gz"),
               GopherRepetitionFilter(), GopherQualityFilter(), C4QualityFilter(),
               FineWebQualityFilter(),
               JsonlWriter(f"{work}/survivors", output_filename="${rank}.jsonl.gz")], shards)
run("signatures", [JsonlReader(f"{work}/survivors"),
                   MinhashDedupSignature(output_folder=f"{work}/sigs", config=cfg)], shards)
run("buckets", [MinhashDedupBuckets(input_folder=f"{work}/sigs", output_folder=f"{work}/buckets",
                                    config=cfg)], cfg.num_buckets)
run("cluster", [MinhashDedupCluster(input_folder=f"{work}/buckets", output_folder=f"{work}/remove",
                                    config=cfg)], 1)
# An explicit schema, as datatrove's ParquetWriter asks when fields can be missing: undated documents
# have no `date`, and a schema inferred from a first batch without it fails on a later batch.
schema = pa.schema([("text", pa.string()), ("id", pa.string()),
                    ("metadata", pa.struct([("url", pa.string()), ("date", pa.string()),
                                            ("file_path", pa.string())]))])
run("dedup", [JsonlReader(f"{work}/survivors"),
              MinhashDedupFilter(input_folder=f"{work}/remove"),
              ParquetWriter(f"{work}/curated", compression="zstd", schema=schema)], shards)
'''


def _parquet_rows(directory: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(p).metadata.num_rows for p in sorted(directory.rglob("*.parquet")))


def run_ouroboros(command: str, shards: list[str], out: Path) -> tuple[Measured, dict]:
    shutil.rmtree(out, ignore_errors=True)
    cmd = [command, "run", "--input", *shards, "--output", str(out)]
    for override in SAME_WORK:
        cmd += ["--set", override]
    measured = run_measured(cmd)
    stats = json.loads((out / "stats.json").read_text()) if (out / "stats.json").exists() else {}
    return measured, stats


def run_datatrove(corpus: Path, shards: int, work: Path, workers: int) -> tuple[Measured, int]:
    python = peer_python("datatrove-pipeline", DATATROVE_PIPELINE_REQUIREMENTS)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    script = work / "peer.py"
    script.write_text(PEER_SCRIPT)
    measured = run_measured([str(python), str(script), str(corpus), str(work), str(shards),
                             str(workers)], env={**os.environ, "DATATROVE_COLORIZE_LOGS": "0"})
    curated = _parquet_rows(work / "curated") if measured.returncode == 0 else -1
    return measured, curated


def _row(name: str, n: int, m: Measured, curated: int) -> str:
    return (f"  {name:<22} {n:>8,} {n / m.wall_s:>8.0f} {1000 * m.cpu_s / n:>10.2f} "
            f"{n / m.cpu_s:>9.0f} {m.peak_rss_mb:>9.0f} {m.peak_processes:>5} {curated:>8,} "
            f"{m.wall_s:>7.0f} {m.cpu_s:>7.0f} {m.load_before:>5.1f}")


HEADER = (f"  {'side':<22} {'docs':>8} {'docs/s':>8} {'CPU s/1k':>10} {'docs/CPUs':>9} "
          f"{'peak MB':>9} {'procs':>5} {'curated':>8} {'wall s':>7} {'CPU s':>7} {'load':>5}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 200_000])
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "ouroboros-scale"))
    ap.add_argument("--sides", default="ours,datatrove",
                    help="comma-separated: ours, main (needs --main), datatrove")
    ap.add_argument("--main", help="another checkout's `ouroboros` command (the graph before)")
    ap.add_argument("--ours", default=str(Path(sys.executable).parent / "ouroboros"))
    ap.add_argument("--workers", type=int, default=1, help="datatrove's worker processes")
    ap.add_argument("--shards", type=int, default=8)
    args = ap.parse_args()
    sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    unknown = set(sides) - {"ours", "main", "datatrove"}
    if unknown or ("main" in sides and not args.main):
        ap.error(f"bad --sides {sorted(unknown)} (or 'main' without --main)")
    work = Path(args.work)

    table: list[str] = []
    for n in args.sizes:
        corpus = build_corpus(work / str(n), n, shards=args.shards)
        print(f"\n== {n:,} documents ({corpus.text_bytes / 2**20:.0f} MiB of text, "
              f"{corpus.planted_exact} exact and {corpus.planted_near} near copies planted)",
              flush=True)
        per_cpu: dict[str, float] = {}
        for side in sides:
            if side in ("ours", "main"):
                command = args.ours if side == "ours" else args.main
                m, stats = run_ouroboros(command, corpus.shards, work / f"out-{side}-{n}")
                curated = stats.get("curated", -1)
                name = "ouroboros" if side == "ours" else "ouroboros (main graph)"
                if m.returncode != 0:
                    print(f"  {name} failed ({m.returncode}):\n{m.output[-3000:]}")
                    continue
                timing = stats.get("timing", {})
                stages = timing.get("seconds_by_stage") or {}
                steps = list((timing.get("seconds_by_step") or {}).items())[:8]
                print(f"  {name}: per stage (s) {json.dumps(stages)}")
                print(f"  {name}: slowest steps (s) {json.dumps(dict(steps))}")
                print(f"  {name}: {stats.get('input_records')} input = {curated} curated + "
                      f"{stats.get('rejected')} rejected + {stats.get('errors')} errors "
                      f"(holds: {stats.get('accounting', {}).get('holds')}); rejected by stage "
                      f"{json.dumps({k: sum(v.values()) for k, v in stats.get('rejected_by_stage', {}).items()})}")
            else:
                name = f"datatrove ({args.workers} worker{'s' if args.workers > 1 else ''})"
                m, curated = run_datatrove(corpus.path, args.shards, work / f"dt-{n}",
                                           args.workers)
                if m.returncode != 0:
                    print(f"  {name} failed ({m.returncode}):\n{m.output[-3000:]}")
                    continue
            per_cpu[side] = n / m.cpu_s
            table.append(_row(name, n, m, curated))
            print(HEADER + "\n" + table[-1], flush=True)
        if "ours" in per_cpu and "datatrove" in per_cpu:
            ratio = per_cpu["ours"] / per_cpu["datatrove"]
            table.append(f"  {'ours / datatrove':<22} {n:>8,} documents per CPU second: "
                         f"{ratio:.2f}x")
            print(table[-1], flush=True)

    print("\n== summary\n" + HEADER)
    print("\n".join(table))


if __name__ == "__main__":
    main()

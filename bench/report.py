"""Time and peak memory of `ouroboros report` on a large output, beside loading the same output whole.

Builds an output directory of N records (30% curated, 70% rejected, every schema column filled,
texts of ~4 kB made of random words, Parquet row groups of 8,192 rows, as the pipeline writes them)
and then, each in a fresh subprocess:

- `report`: what `ouroboros report OUT` does (profile the outputs, render report.html and README.md);
- `load whole`: `pyarrow.parquet.read_table` of curated/ and rejected/ with every column, which is
  what a report built on one in-memory table (e.g. pandas) would need before computing anything.

The figure is the growth of peak RSS (VmHWM, reset after imports through /proc/self/clear_refs) over
the resident set after imports.

    python bench/report.py [--records 200000] [--text-bytes 4000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROBE = r"""
import json, sys, time
out, what = sys.argv[1], sys.argv[2]
import pyarrow.parquet as pq
from ouroboros.pipeline.finish import write_documents
import matplotlib.pyplot
def kib(key):
    with open("/proc/self/status") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith(key + ":"))
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
base = kib("VmRSS")
t = time.perf_counter()
if what == "report":
    written = write_documents(out)
    assert len(written) == 2, written
else:
    rows = sum(pq.read_table(f"{out}/{part}").num_rows for part in ("curated", "rejected"))
print(json.dumps({"peak_mib": (kib("VmHWM") - base) / 1024, "seconds": time.perf_counter() - t}))
"""


def build(out: Path, n: int, text_bytes: int, seed: int = 0) -> int:
    """Writes curated/ and rejected/ with every column of the schema, and a stats.json."""
    from ouroboros.schemas.record import QUALITY_SIGNALS, RECORD_SCHEMA, REJECTED_SCHEMA

    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(20000)])
    langs = np.array(["en", "de", "fr", "es", "ja", "zh", "sw", "pt"])
    stages = np.array(["quality", "normalize", "exact_dedup", "near_dedup", "language_id"])
    words_per_text = max(text_bytes // 6, 1)
    counts = {"curated": int(n * 0.3), "rejected": n - int(n * 0.3)}
    by_stage: dict[str, int] = {}
    chunk = 8192
    for part, schema in (("curated", RECORD_SCHEMA), ("rejected", REJECTED_SCHEMA)):
        (out / part).mkdir(parents=True)
        writer = pq.ParquetWriter(out / part / "part-00000-of-00001.parquet", schema,
                                  compression="zstd")
        for start in range(0, counts[part], chunk):
            m = min(chunk, counts[part] - start)
            ids = [f"{part[0]}{start + i:031x}" for i in range(m)]
            cols = {f.name: pa.nulls(m, f.type) for f in schema}
            cols["id"] = pa.array(ids)
            cols["text"] = pa.array([" ".join(rng.choice(vocab, words_per_text)) for _ in range(m)])
            cols["source_uri"] = pa.array([f"/data/shard-{(start + i) % 50:03d}.warc.gz" for i in range(m)])
            cols["url"] = pa.array([f"https://site{rng.zipf(1.3) % 100000}.example/p{i}" for i in range(m)])
            cols["domain"] = pa.array([u.split("/")[2] for u in cols["url"].to_pylist()])
            cols["language"] = pa.array(langs[rng.zipf(1.5, m) % len(langs)])
            cols["synthetic_score"] = pa.array(rng.random(m), pa.float32())
            cols["provenance_class"] = pa.array(np.where(rng.random(m) < 0.8, "human", "synthetic"))
            sizes = np.where(rng.random(m) < 0.05, rng.integers(2, 30, m), 1)
            cols["dup_cluster_size"] = pa.array(sizes, pa.int64())
            cols["dup_cluster_id"] = pa.array([f"c{(start + i) // 7}" if s > 1 else ids[i]
                                               for i, s in enumerate(sizes)])
            cols["dup_representative"] = pa.array(sizes == 1)
            cols["quality_signals"] = pa.array(
                [{name: float(v) for (name, _), v in zip(QUALITY_SIGNALS, row)}
                 for row in rng.random((m, len(QUALITY_SIGNALS))) * 100],
                schema.field("quality_signals").type)
            if part == "rejected":
                st = stages[rng.integers(0, len(stages), m)]
                cols["reject_stage"] = pa.array(st)
                cols["reject_reason"] = pa.array([f"{s}_rule:x=1" for s in st])
                for s in st:
                    by_stage[s] = by_stage.get(s, 0) + 1
            writer.write_table(pa.table(cols, schema=schema))
        writer.close()
    stats = {"run_id": "bench", "pipeline_version": "bench", "config_sha256": "-", "shards": 50,
             "input_records": n, "curated": counts["curated"], "rejected": counts["rejected"],
             "errors": 0, "accounting": {"identity": "input_records = curated + rejected + errors",
                                         "holds": True, "documents_read": n, "read_errors": 0},
             "rejected_by_stage": {s: {f"{s}_rule": c} for s, c in by_stage.items()},
             "errors_by_stage": {}}
    (out / "stats.json").write_text(json.dumps(stats))
    return sum(f.stat().st_size for f in out.rglob("*.parquet"))


def probe(out: Path, what: str) -> dict:
    res = subprocess.run([sys.executable, "-c", PROBE, str(out), what], capture_output=True,
                         text=True, cwd=ROOT, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--text-bytes", type=int, default=4000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ouroboros-bench-report-") as tmp:
        out = Path(tmp) / "out"
        t = time.perf_counter()
        size = build(out, args.records, args.text_bytes)
        print(f"built {args.records:,} records (~{args.text_bytes:,} B of text each), "
              f"{size / 2**20:,.0f} MiB of Parquet, in {time.perf_counter() - t:.0f} s")
        print(f"{'what':<12} {'seconds':>8} {'peak RSS growth (MiB)':>22}")
        for what in ("report", "load whole"):
            r = probe(out, "report" if what == "report" else "load")
            print(f"{what:<12} {r['seconds']:>8.1f} {r['peak_mib']:>22,.0f}")


if __name__ == "__main__":
    main()

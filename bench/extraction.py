"""HTML-to-text extraction: token F1 against ground truth and pages/s, per engine, side by side.

Data: ../shared/data/extraction/ (scrapinghub article-extraction-benchmark: 181 news pages with the
article body as ground truth). Scoring follows that benchmark's method: texts are split into word
tokens, compared as multisets of 4-token shingles (a shingle per token position), true/false
positives and negatives summed over all pages (micro average), F1 from the summed counts.
Each engine runs through ouroboros's own code path (transforms/io/extract.py: decode + extract).

    python bench/extraction.py [--repeat 2]
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import time
from collections import Counter
from pathlib import Path

from ouroboros.transforms.io.extract import ExtractConfig, decode_html, extract_text

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "extraction"
_TOKEN = re.compile(r"\w+", re.UNICODE)


def shingles(text: str, n: int = 4) -> Counter:
    tokens = _TOKEN.findall(text.lower())
    if len(tokens) < n:
        return Counter([tuple(tokens)]) if tokens else Counter()
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def score(pairs: list[tuple[str, str]]) -> tuple[float, float, float]:
    tp = fp = fn = 0
    for predicted, truth in pairs:
        p, t = shingles(predicted), shingles(truth)
        common = sum((p & t).values())
        tp += common
        fp += sum(p.values()) - common
        fn += sum(t.values()) - common
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=2, help="timed passes per engine (best is kept)")
    args = parser.parse_args()
    truth = json.loads((DATA / "ground-truth.json").read_text())
    pages = []
    for key, item in sorted(truth.items()):
        raw = gzip.decompress((DATA / "html" / f"{key}.html.gz").read_bytes())
        pages.append((decode_html(raw), item["articleBody"]))
    print(f"{len(pages)} pages, {sum(len(h) for h, _ in pages) / len(pages) / 1000:.0f} kB HTML each")
    print(f"{'engine':<14}{'precision':>10}{'recall':>8}{'F1':>8}{'pages/s':>10}")
    for engine in ("trafilatura", "resiliparse"):
        config = ExtractConfig(engine=engine)
        extract_text(pages[0][0], config)  # warm-up (imports)
        best = float("inf")
        for _ in range(args.repeat):
            start = time.perf_counter()
            outputs = [extract_text(html, config) for html, _ in pages]
            best = min(best, time.perf_counter() - start)
        p, r, f1 = score([(out, gt) for out, (_, gt) in zip(outputs, pages)])
        print(f"{engine:<14}{p:>10.3f}{r:>8.3f}{f1:>8.3f}{len(pages) / best:>10.1f}")


if __name__ == "__main__":
    main()

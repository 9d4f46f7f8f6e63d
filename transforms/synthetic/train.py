"""Training the default synthetic-content scorer, calibrated on sources it never saw.

Recipe (fixed seed, single-threaded, so the same data gives byte-identical model files):

1. Features: hashed word 1-2-grams and character 3-5-grams of the formatting-blind view, and word
   1-3-grams of its topic-masked view (words outside the 500 commonest replaced by their frequency
   class; ``synthetic/ngrams.py``), two blocks of 2**20 columns.
2. Weights: every (source, label) cell gets the same total weight within its class, and the two
   classes the same total, so no corpus, domain or class share becomes the label (a corpus of
   9,000 rewrites counts as much as 60 web pages).
3. Out-of-source scores: for every source, a model trained on all the other sources scores it.
   (With fewer than three sources, e.g. one JSONL file, five folds by ``group`` instead.)
4. Calibration: a Platt fit on those out-of-source log-odds, class-balanced, so the calibrated
   log-odds are a likelihood ratio; the scorer adds the log-odds of ``synthetic.prior``.
5. Operating points: the class thresholds at which at most 1% / 0.1% of the held-out human web
   texts (out-of-source scores at the default prior, each web source weighing the same) reach
   ``ai_assisted`` / ``synthetic`` (``operating_points``); the config's defaults are these.
6. The shipped model is trained on everything; the printed metrics are the out-of-source ones.

Linear model: logistic regression by stochastic gradient descent (scikit-learn's
``SGDClassifier``), stored as a float32 weight vector (``weights.npy``) and JSON, never pickled.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ouroboros.transforms.synthetic.calibrate import (
    AI_ASSISTED_MAX_FPR,
    HUMAN_WEB_SOURCES,
    SYNTHETIC_MAX_FPR,
    balanced_weights,
    calibrated,
    false_positive_rate,
    fit_platt,
    operating_threshold,
)
from ouroboros.transforms.synthetic.data import load_training_data, read_labelled_jsonl
from ouroboros.transforms.synthetic.metrics import (
    auroc,
    expected_calibration_error,
    prior_weights,
    reliability,
    tpr_at_fpr,
)
from ouroboros.transforms.synthetic.ngrams import (
    CHAR_N,
    KEEP_WORDS,
    MASK_N,
    VIEW_CHARS,
    Vocabulary,
    default_vocabulary,
    feature_matrix,
)
from ouroboros.transforms.synthetic.score import MODEL_FILES, MODEL_FORMAT

BITS = 20  # 2 x 2**20 float32 weights (two views) = 8 MiB
SGD_PARAMS: dict[str, Any] = {"loss": "log_loss", "penalty": "l2", "alpha": 1e-5, "max_iter": 30,
                              "tol": 1e-4}
MIN_SOURCES = 3
GROUP_FOLDS = 5
REPORT_PRIOR = 0.05  # the default synthetic.prior: the reliability table is also shown at it


def cell_weights(sources: Sequence[str], labels: Sequence[int]) -> np.ndarray:
    """Equal total weight per (source, label) cell within a class, equal total per class."""
    return balanced_weights(np.asarray(labels), np.asarray(sources))


def fit_linear(X, y: np.ndarray, weights: np.ndarray, seed: int) -> tuple[np.ndarray, float]:
    """Logistic regression weights (float32, as shipped) and bias."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import SGDClassifier

    model = SGDClassifier(**SGD_PARAMS, random_state=seed)
    with warnings.catch_warnings():
        # 30 epochs is the recipe's fixed budget, chosen on held-out folds; SGD's own tolerance is
        # often not reached by then, and its warning would say nothing about held-out quality.
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y, sample_weight=weights)
    return model.coef_.ravel().astype(np.float32), float(model.intercept_[0])


def raw_scores(X, coef: np.ndarray, bias: float) -> np.ndarray:
    return X @ coef.astype(np.float64) + bias


def held_out_folds(sources: Sequence[str], groups: Sequence[str], seed: int) -> np.ndarray:
    """Fold id per text: its source when there are >= MIN_SOURCES sources, else a group hash."""
    names = sorted(set(sources))
    if len(names) >= MIN_SOURCES:
        index = {s: i for i, s in enumerate(names)}
        return np.array([index[s] for s in sources])
    return np.array([int(hashlib.sha256(f"{seed}:{g}".encode()).hexdigest(), 16) % GROUP_FOLDS
                     for g in groups])


def out_of_fold_scores(X, y: np.ndarray, sources: Sequence[str], folds: np.ndarray,
                       seed: int) -> np.ndarray:
    """Raw log-odds of every text from a model trained without its fold."""
    oof = np.zeros(len(y))
    src = np.asarray(sources)
    for k in np.unique(folds):
        test = folds == k
        train = ~test
        coef, bias = fit_linear(X[train], y[train], cell_weights(src[train], y[train]), seed)
        oof[test] = raw_scores(X[test], coef, bias)
    return oof


def calibration_report(oof: np.ndarray, y: np.ndarray, folds: np.ndarray,
                       strata: Sequence[str]) -> dict[str, Any]:
    """Metrics of out-of-fold scores, each fold calibrated by a Platt map fitted on the others."""
    strata = np.asarray(strata)
    probs = np.zeros(len(y))
    at_prior = np.zeros(len(y))
    for k in np.unique(folds):
        test = folds == k
        if len(set(y[~test].tolist())) < 2:
            a, b = fit_platt(oof, y, balanced_weights(y, strata))
        else:
            a, b = fit_platt(oof[~test], y[~test], balanced_weights(y[~test], strata[~test]))
        probs[test] = calibrated(oof[test], a, b, 0.5)
        at_prior[test] = calibrated(oof[test], a, b, REPORT_PRIOR)
    balanced = balanced_weights(y, strata)
    per_fold = {}
    for k in np.unique(folds):
        m = folds == k
        if len(set(y[m].tolist())) == 2:
            per_fold[str(k)] = auroc(oof[m], y[m])
    return {
        "auroc": auroc(oof, y), "tpr_at_1pct_fpr": tpr_at_fpr(oof, y, 0.01),
        "auroc_per_fold": per_fold,
        "ece_balanced": expected_calibration_error(probs, y, weights=balanced),
        "reliability_balanced": reliability(probs, y, weights=balanced),
        "ece_at_prior": expected_calibration_error(at_prior, y,
                                                   weights=prior_weights(y, REPORT_PRIOR)),
        "reliability_at_prior": reliability(at_prior, y, weights=prior_weights(y, REPORT_PRIOR)),
    }


def operating_points(oof: np.ndarray, y: np.ndarray, sources: Sequence[str], a: float, b: float,
                     prior: float = REPORT_PRIOR) -> dict[str, Any]:
    """The class thresholds by the operating-point rule (``calibrate.operating_threshold``) on the
    out-of-source scores, calibrated at ``prior``, of the held-out human web texts (every human
    text when the data has no human web source), and what they flag in every source."""
    src = np.asarray(sources)
    human = y == 0
    web = human & np.isin(src, HUMAN_WEB_SOURCES)
    pool = web if web.any() else human
    p = calibrated(oof, a, b, prior)
    w = balanced_weights(np.zeros(int(pool.sum()), dtype=int), src[pool])  # equal total per source
    ai = operating_threshold(p[pool], AI_ASSISTED_MAX_FPR, w)
    syn = max(operating_threshold(p[pool], SYNTHETIC_MAX_FPR, w), ai)
    per_source = {}
    for s in sorted(set(src.tolist())):
        m = src == s
        row = {}
        for name, cls in (("machine_flagged", 1), ("human_flagged", 0)):
            if (m & (y == cls)).any():
                row[name] = float(np.mean(p[m & (y == cls)] >= ai))
        per_source[s] = row
    return {
        "rule": (f"lowest threshold (0.01 grid) that <= {AI_ASSISTED_MAX_FPR:.1%} (ai_assisted) / "
                 f"<= {SYNTHETIC_MAX_FPR:.1%} (synthetic) of the held-out human "
                 f"{'web ' if web.any() else ''}texts reach, each source weighing the same, "
                 f"out-of-source scores at prior {prior:g}"),
        "prior": prior, "held_out_human_texts": int(pool.sum()),
        "sources": sorted(set(src[pool].tolist())),
        "ai_assisted_threshold": ai, "synthetic_threshold": syn,
        "human_fpr_ai_assisted": false_positive_rate(p[pool], ai, w),
        "human_fpr_synthetic": false_positive_rate(p[pool], syn, w),
        "flagged_ai_assisted_or_above_per_source": per_source,
    }


def default_features(texts: Sequence[str], bits: int = BITS):
    """The shipped recipe's feature matrix of ``texts`` (both views)."""
    return feature_matrix(texts, bits, Vocabulary(default_vocabulary(), KEEP_WORDS))


def fit_detector(records: list[dict[str, Any]], output_dir: str | Path, seed: int = 0,
                 bits: int = BITS, X=None) -> dict[str, Any]:
    """Train, calibrate out of source and write ``MODEL_FILES``; returns the out-of-source metrics.

    ``X`` (the :func:`default_features` of the records' texts) can be passed to skip featurising."""
    y = np.array([int(r["label"]) for r in records])
    if len(set(y.tolist())) < 2:
        raise ValueError("training data needs both human (0) and machine (1) texts")
    sources = [str(r.get("source") or "") for r in records]
    groups = [str(r.get("group") or r["text"]) for r in records]
    vocab = default_vocabulary()
    if X is None:
        X = feature_matrix([r["text"] for r in records], bits, Vocabulary(vocab, KEEP_WORDS))
    folds = held_out_folds(sources, groups, seed)
    fold_names = {int(k): (sources[int(np.flatnonzero(folds == k)[0])] if len(set(sources)) >= MIN_SOURCES
                           else f"group-fold-{k}") for k in np.unique(folds)}
    oof = out_of_fold_scores(X, y, sources, folds, seed)
    strata = np.array(sources)
    a, b = fit_platt(oof, y, balanced_weights(y, strata))
    report = calibration_report(oof, y, folds, strata)
    report["auroc_per_fold"] = {fold_names[int(k)]: v for k, v in report["auroc_per_fold"].items()}
    report["operating_points"] = operating_points(oof, y, sources, a, b)
    coef, bias = fit_linear(X, y, cell_weights(sources, y), seed)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    np.save(output_dir / MODEL_FILES[0], coef, allow_pickle=False)
    (output_dir / MODEL_FILES[2]).write_text("".join(w + "\n" for w in vocab), encoding="utf-8")
    counts: dict[str, list[int]] = {}
    for s, label in zip(sources, y.tolist()):
        counts.setdefault(s, [0, 0])[label] += 1
    metrics = {
        "n_train": len(y), "n_machine": int(y.sum()), "n_human": int((1 - y).sum()),
        "held_out": "source" if len(set(sources)) >= MIN_SOURCES else f"{GROUP_FOLDS} group folds",
        "seed": seed, **report,
    }
    meta = {
        "format": MODEL_FORMAT, "bits": bits, "view_chars": VIEW_CHARS, "char_n": list(CHAR_N),
        "word_n": [1, 2], "bias": bias,
        "masked_view": {"keep": KEEP_WORDS, "word_n": list(MASK_N), "vocab": MODEL_FILES[2],
                        "vocab_words": len(vocab), "vocab_source": "wordfreq top_n_list('en')"},
        "calibration": {"method": "platt, class-balanced, on out-of-source log-odds", "a": a, "b": b},
        "training": {"sgd": SGD_PARAMS, "seed": seed,
                     "texts_per_source_human_machine": dict(sorted(counts.items()))},
        "metrics": metrics,
    }
    (output_dir / MODEL_FILES[1]).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n",
                                             encoding="utf-8")
    return metrics


def train_synthetic(data_jsonl_paths: Sequence[str | Path], output_path: str | Path,
                    seed: int = 0) -> dict[str, Any]:
    """``ouroboros train-synthetic --data ... --output DIR``: train from labelled JSONL."""
    return fit_detector(read_labelled_jsonl(data_jsonl_paths), output_path, seed=seed)


def format_metrics(metrics: dict[str, Any]) -> str:
    """The summary ``train-synthetic`` prints."""
    lines = [(f"trained on {metrics['n_train']} texts ({metrics['n_machine']} machine, "
              f"{metrics['n_human']} human); held out by {metrics['held_out']}:"),
             (f"  pooled AUROC {metrics['auroc']:.4f}  TPR@1%FPR {metrics['tpr_at_1pct_fpr']:.3f}  "
              f"ECE balanced {metrics['ece_balanced']:.4f}  ECE at prior {REPORT_PRIOR} "
              f"{metrics['ece_at_prior']:.4f}")]
    lines += [f"  held-out {name}: AUROC {v:.4f}" for name, v in metrics["auroc_per_fold"].items()]
    ops = metrics["operating_points"]
    lines.append(f"  operating points ({ops['rule']}): ai_assisted >= {ops['ai_assisted_threshold']:.2f} "
                 f"(human FPR {ops['human_fpr_ai_assisted']:.4f}), synthetic >= "
                 f"{ops['synthetic_threshold']:.2f} (human FPR {ops['human_fpr_synthetic']:.4f}); "
                 "share of each source flagged ai_assisted or above:")
    lines += [f"    {s}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items())
              for s, row in ops["flagged_ai_assisted_or_above_per_source"].items()]
    for key, title in (("reliability_balanced", "classes balanced"),
                       ("reliability_at_prior", f"classes weighted to prior {REPORT_PRIOR}")):
        lines.append(f"  reliability ({title}): bin  n  machine  predicted  observed")
        lines += [f"    {r['bin']}  {r['n']:6d}  {r['n_machine']:6d}  {r['predicted']:.3f}  "
                  f"{r['observed']:.3f}" for r in metrics[key]]
    return "\n".join(lines)


def build_default_model(shared_root: str | Path, output_dir: str | Path | None = None,
                        seed: int = 0) -> dict[str, Any]:
    """Rebuild the model shipped in ``transforms/models/synthetic`` from ``shared/data``."""
    output_dir = output_dir or Path(__file__).resolve().parents[1] / "models" / "synthetic"
    return fit_detector(load_training_data(shared_root), output_dir, seed=seed)


if __name__ == "__main__":  # python -m ouroboros.transforms.synthetic.train ../shared/data [DIR]
    import sys

    print(format_metrics(build_default_model(sys.argv[1], *(sys.argv[2:3] or [None]))))

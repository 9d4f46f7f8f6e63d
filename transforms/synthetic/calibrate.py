"""From a classifier's raw log-odds to a probability for the base rate curation sees.

The classifier is trained on data that is ~80% machine-written and scores texts unlike its training
data over-confidently. So (1) its raw log-odds are mapped to *class-balanced* log-odds (the
log-likelihood ratio) by a Platt fit on **out-of-source** predictions (each training source scored
by a model that never saw it), and (2) the log-odds of the assumed prior are added at scoring time:
``P = sigmoid(a * raw + b + logit(prior))`` (Bayes' rule in log-odds form; Saerens et al. 2002 for
adjusting a classifier to new priors).
"""

from __future__ import annotations

import math

import numpy as np


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def balanced_weights(labels: np.ndarray, strata: np.ndarray | None = None) -> np.ndarray:
    """Weights that give both classes (and, within a class, every stratum) equal total mass."""
    y = np.asarray(labels)
    s = np.zeros(len(y), dtype=int) if strata is None else np.unique(strata, return_inverse=True)[1]
    w = np.zeros(len(y))
    for label in (0, 1):
        cls = y == label
        cells = np.unique(s[cls])
        for c in cells:
            m = cls & (s == c)
            w[m] = 1.0 / (m.sum() * len(cells))
    return w * len(y) / w.sum()


def fit_platt(raw: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None
              ) -> tuple[float, float]:
    """(a, b) of ``sigmoid(a * raw + b)``, a weighted logistic fit (scikit-learn, lbfgs, lightly
    regularised so separable scores stay finite); weights default to balanced, so ``a * raw + b``
    is a log-likelihood ratio (prior 0.5)."""
    from sklearn.linear_model import LogisticRegression

    x = np.asarray(raw, dtype=float).reshape(-1, 1)
    y = np.asarray(labels, dtype=int)
    w = balanced_weights(y) if weights is None else np.asarray(weights, dtype=float)
    model = LogisticRegression(C=100.0, solver="lbfgs", max_iter=1000)
    model.fit(x, y, sample_weight=w)
    return float(model.coef_[0, 0]), float(model.intercept_[0])


def calibrated(raw: np.ndarray, a: float, b: float, prior: float) -> np.ndarray:
    """P(machine) at base rate ``prior`` from raw classifier log-odds."""
    return sigmoid(a * np.asarray(raw, dtype=float) + b + logit(prior))


HUMAN_WEB_SOURCES = ("web_human", "web_human_more", "warc")  # held-out human web text
AI_ASSISTED_MAX_FPR = 0.01  # operating point of `ai_assisted`: <= 1% of held-out human web pages
SYNTHETIC_MAX_FPR = 0.001  # of `synthetic`: <= 0.1%


def false_positive_rate(human_scores: np.ndarray, threshold: float,
                        weights: np.ndarray | None = None) -> float:
    """(Weighted) share of human texts whose calibrated score reaches ``threshold``."""
    s = np.asarray(human_scores, dtype=float)
    if not len(s):
        return float("nan")
    w = np.ones(len(s)) if weights is None else np.asarray(weights, dtype=float)
    return float(w[s >= threshold].sum() / w.sum())


def operating_threshold(human_scores: np.ndarray, max_fpr: float,
                        weights: np.ndarray | None = None, step: float = 0.01) -> float:
    """The operating-point rule: the lowest threshold on a ``step`` grid that at most ``max_fpr``
    of the held-out human texts (each scored by a model that never saw its source; ``weights``,
    e.g. equal total per source, so a small kind of page counts as much as a large one) reach.

    Why a threshold and not a larger prior: the score stays a calibrated probability at the
    assumed base rate; the class is the decision, set where its false alarms on human web text are
    known. 1.0 if no grid value qualifies."""
    if not len(np.asarray(human_scores)):
        raise ValueError("no held-out human scores to set an operating point on")
    for k in range(1, round(1 / step) + 1):
        threshold = round(k * step, 6)
        if false_positive_rate(human_scores, threshold, weights) <= max_fpr:
            return threshold
    return 1.0

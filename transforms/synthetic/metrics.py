"""How well a detector separates and how honest its probabilities are: pure functions of scores."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def auroc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """Area under the ROC curve (Mann-Whitney U with ties counted half)."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=int)
    pos, neg = s[y == 1], s[y == 0]
    if not len(pos) or not len(neg):
        return float("nan")
    allv = np.concatenate([pos, neg])
    _, inverse, counts = np.unique(allv, return_inverse=True, return_counts=True)
    # average rank of each distinct value (ties share the mean of their ranks)
    ends = np.cumsum(counts)
    ranks = (ends - (counts - 1) / 2.0)[inverse]
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


def reliability(probs: Sequence[float], labels: Sequence[int], bins: int = 10,
                weights: Sequence[float] | None = None) -> list[dict[str, float]]:
    """Predicted vs observed machine rate per probability bin (the calibration table).

    ``weights`` re-weight the texts, e.g. so the classes have the shares of the assumed prior."""
    p = np.asarray(probs, dtype=float)
    y = np.asarray(labels, dtype=float)
    w = np.ones_like(p) if weights is None else np.asarray(weights, dtype=float)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    table = []
    for b in range(bins):
        mask = idx == b
        if mask.any():
            table.append({"bin": f"{b / bins:.1f}-{(b + 1) / bins:.1f}", "n": int(mask.sum()),
                          "n_machine": int(y[mask].sum()),
                          "predicted": float(np.average(p[mask], weights=w[mask])),
                          "observed": float(np.average(y[mask], weights=w[mask]))})
    return table


def expected_calibration_error(probs: Sequence[float], labels: Sequence[int], bins: int = 10,
                               weights: Sequence[float] | None = None) -> float:
    """Weighted mean |predicted - observed| over the bins of :func:`reliability`."""
    p = np.asarray(probs, dtype=float)
    y = np.asarray(labels, dtype=float)
    w = np.ones_like(p) if weights is None else np.asarray(weights, dtype=float)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    mass = np.bincount(idx, weights=w, minlength=bins)
    gap = np.abs(np.bincount(idx, weights=w * p, minlength=bins)
                 - np.bincount(idx, weights=w * y, minlength=bins))
    return float(gap.sum() / mass.sum())


def prior_weights(labels: Sequence[int], prior: float) -> np.ndarray:
    """Per-text weights that give the machine class the share ``prior`` (the crawl's base rate)."""
    y = np.asarray(labels, dtype=int)
    n1, n0 = max(int(y.sum()), 1), max(int((1 - y).sum()), 1)
    return np.where(y == 1, prior / n1, (1 - prior) / n0)

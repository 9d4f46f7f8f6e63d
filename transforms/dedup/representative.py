"""Which member of a duplicate cluster is kept: one rule for exact and near dedup.

The most trustworthy member represents the cluster (DESIGN.md), in this order:

1. a document an earlier run kept (near dedup against the band index: tier 0; with --reprocess,
   such a document read again, marked ``_kept_before`` by ``earlier.py``) before any new one;
2. the earliest ``crawl_date`` (ISO 8601 strings compare in time order); an undated document (no
   date, or an empty one) sorts after every dated one;
3. the lowest ``synthetic_score``; an unscored document (null, NaN or not a number) sorts after
   every scored one;
4. the smallest ``id``, so the choice never depends on the order a runner delivers documents.

A smaller key is preferred. Deterministic, so reruns keep the same record.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

NEW_TIER, PRIOR_TIER = 1, 0
_NO_DATE = "\U0010ffff"  # sorts after every real date string

Rank = tuple[int, str, float, str]


def score_value(value: Any) -> float:
    """A synthetic score as a sortable number: +inf when unscored."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return math.inf
    return math.inf if math.isnan(v) else v


def representative_key(doc_id: str, crawl_date: Any, synthetic_score: Any,
                       tier: int = NEW_TIER) -> Rank:
    """Sort key of the representative policy: the smallest key is kept."""
    date = crawl_date if isinstance(crawl_date, str) and crawl_date else _NO_DATE
    return (tier, date, score_value(synthetic_score), doc_id or "")


def doc_key(doc: Mapping[str, Any], tier: int = NEW_TIER) -> Rank:
    """``representative_key`` of a document record; one an earlier run kept is in its tier."""
    if doc.get("_kept_before"):
        tier = PRIOR_TIER
    return representative_key(doc.get("id") or "", doc.get("crawl_date"),
                              doc.get("synthetic_score"), tier)


def pick_representative(docs: Iterable[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The member of a cluster that represents it."""
    return min(docs, key=doc_key)

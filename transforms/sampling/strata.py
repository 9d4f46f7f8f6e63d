"""Stratum keys of a document: the groups the tail-preserving sampler gives quotas to.

Each key is a pure function of the document's columns, so a stratum can be recomputed from the
stored record. A composite stratum (say language x topic) is the keys joined in a fixed order:
``language=sw|topic=t07``. Missing values become ``unknown`` instead of dropping the document: an
unlabelled document is part of the corpus too, and it gets a quota like any other group.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from typing import Any

from ouroboros.transforms.io.domains import registered_domain

UNKNOWN = "unknown"

# Length buckets in characters: edges at powers of four from 256 to 64 Ki, so a web page, a forum
# post and a short snippet fall in different buckets while each bucket still holds many documents.
DEFAULT_LENGTH_EDGES: tuple[int, ...] = (256, 1024, 4096, 16384, 65536)

# Quality buckets of the optional trained quality classifier's score (quartiles of [0, 1]).
DEFAULT_QUALITY_EDGES: tuple[float, ...] = (0.25, 0.5, 0.75)


def _edge_label(edges: Sequence[float], value: float) -> str:
    """`value` placed between sorted `edges`: `<256`, `256-1024`, ..., `>=65536`."""
    i = bisect.bisect_right(edges, value)
    if i == 0:
        return f"<{edges[0]:g}"
    if i == len(edges):
        return f">={edges[-1]:g}"
    return f"{edges[i - 1]:g}-{edges[i]:g}"


def language_key(doc: dict[str, Any]) -> str:
    return doc.get("language") or UNKNOWN


def domain_key(doc: dict[str, Any]) -> str:
    """The reader's `domain` column, else the registered domain of `url` (offline suffix list)."""
    domain = doc.get("domain")
    if not domain and doc.get("url"):
        domain = registered_domain(doc["url"])
    return domain or UNKNOWN


def length_key(doc: dict[str, Any], edges: Sequence[int] = DEFAULT_LENGTH_EDGES) -> str:
    return _edge_label(edges, len(doc.get("text") or ""))


def provenance_key(doc: dict[str, Any]) -> str:
    return doc.get("provenance_class") or UNKNOWN


def quality_key(doc: dict[str, Any], edges: Sequence[float] = DEFAULT_QUALITY_EDGES) -> str:
    """The classifier score's bucket when a classifier ran, else the rule verdict (pass | fail)."""
    score = doc.get("quality_model_score")
    if score is not None:
        return "score" + _edge_label(edges, float(score))
    verdict = doc.get("quality_pass")
    if verdict is None:
        return UNKNOWN
    return "pass" if verdict else "fail"


def topic_key(doc: dict[str, Any]) -> str:
    """The label `transforms/sampling/topics.py` assigned (`AssignTopics` must run before the sampler)."""
    return doc.get("topic") or UNKNOWN


KEY_FUNCTIONS: dict[str, Callable[[dict[str, Any]], str]] = {
    "language": language_key,
    "domain": domain_key,
    "length": length_key,
    "provenance": provenance_key,
    "quality": quality_key,
    "topic": topic_key,
}


def validate_keys(keys: Sequence[str]) -> tuple[str, ...]:
    unknown = [k for k in keys if k not in KEY_FUNCTIONS]
    if unknown:
        raise ValueError(f"unknown stratum key(s) {unknown}; choose from {sorted(KEY_FUNCTIONS)}")
    if len(set(keys)) != len(keys):
        raise ValueError(f"stratum keys repeat: {list(keys)}")
    return tuple(keys)


def stratum_key(doc: dict[str, Any], keys: Sequence[str]) -> str:
    """The composite stratum of `doc`, e.g. `language=en|length=1024-4096`; `all` for no keys."""
    if not keys:
        return "all"
    # `|` and `=` inside a value (odd domains, labels) would make the key ambiguous to parse back.
    return "|".join(
        f"{k}={KEY_FUNCTIONS[k](doc).replace('|', '/').replace('=', ':')}" for k in keys
    )


def parse_stratum(stratum: str) -> dict[str, str]:
    """`language=en|topic=t03` -> {"language": "en", "topic": "t03"} (inverse of `stratum_key`)."""
    if stratum == "all":
        return {}
    return dict(part.split("=", 1) for part in stratum.split("|"))

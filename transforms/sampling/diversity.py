"""Diversity of a document collection, measured in the pipeline before and after sampling.

Two views. Over strata (the sampler's groups): coverage (share of the reference strata that keep at
least one record), Shannon entropy and Simpson's index of the stratum distribution, and tail mass
(share of records from the reference's small strata). Over the text itself: distinct-n (Li et al.
2016: distinct word n-grams / n-grams, from a k-minimum-values sketch, Bar-Yossef et al. 2002, so it
merges across workers in bounded memory) and vocabulary tail mass (share of word tokens that are
rare in their language: absent from wordfreq's `small` list, below 1 per million words, Zipf 3).

Reference: the output of a sampler is judged against the strata of its input, so `DiversityStats`
takes the input's stratum counts as `reference`; without one a collection is its own reference.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam import pvalue
from ouroboros.transforms.sampling.strata import stratum_key

NGRAM_ORDERS: tuple[int, ...] = (1, 2)
KMV_K = 4096  # sketch size: relative error of a distinct count about 1 / sqrt(k) = 1.6%
TAIL_PERCENTILE = 50.0

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)
_WORDS = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff\uac00-\ud7af]|[^\W_]+")
_LETTERS = re.compile(r"[^\W\d_]")
# wordfreq list names for languages it files under another code (Norwegian, Serbo-Croatian).
_WORDFREQ_ALIAS = {"nn": "nb", "no": "nb", "sr": "sh", "hr": "sh", "bs": "sh", "tl": "fil"}
# Chinese, Japanese and Korean need a word segmenter (jieba, MeCab) that is not installed.
_WORDFREQ_SKIP = frozenset({"zh", "ja", "ko"})


# ---------------------------------------------------------------------------------------------
# Over strata.


def stratum_metrics(counts: Mapping[str, int]) -> dict[str, float | int]:
    """Shannon H = -sum p ln p (nats) and exp(H); Gini-Simpson 1 - sum p^2 and inverse Simpson."""
    n = np.array([c for c in counts.values() if c > 0], dtype=np.float64)
    total = float(n.sum())
    if total == 0:
        return {
            "records": 0,
            "strata": 0,
            "shannon": 0.0,
            "shannon_effective": 0.0,
            "gini_simpson": 0.0,
            "inverse_simpson": 0.0,
        }
    p = n / total
    h = float(-(p * np.log(p)).sum())
    d = float((p * p).sum())
    return {
        "records": int(total),
        "strata": int(n.size),
        "shannon": h,
        "shannon_effective": math.exp(h),
        "gini_simpson": 1.0 - d,
        "inverse_simpson": 1.0 / d,
    }


def coverage(reference: Mapping[str, int], counts: Mapping[str, int]) -> float:
    """Share of the reference's non-empty strata that hold at least one record in `counts`."""
    ref = [s for s, c in reference.items() if c > 0]
    return sum(1 for s in ref if counts.get(s, 0) > 0) / len(ref) if ref else 1.0


def tail_strata(
    reference: Mapping[str, int], percentile: float = TAIL_PERCENTILE
) -> tuple[set[str], float]:
    """Strata whose reference size is at most the `percentile`-th percentile of stratum sizes."""
    sizes = {s: c for s, c in reference.items() if c > 0}
    if not sizes:
        return set(), 0.0
    threshold = float(np.percentile(np.array(list(sizes.values()), dtype=np.float64), percentile))
    return {s for s, c in sizes.items() if c <= threshold}, threshold


def tail_mass(counts: Mapping[str, int], tail: set[str]) -> float:
    total = sum(counts.values())
    return sum(c for s, c in counts.items() if s in tail) / total if total else 0.0


# ---------------------------------------------------------------------------------------------
# Over text.


def diversity_words(text: str) -> list[str]:
    """The words of the distinct-n and vocabulary statistics: lower-cased letter/digit runs; each
    CJK character is a word of its own."""
    return _WORDS.findall(text.lower())


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: spreads combined word hashes uniformly over 64 bits."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


_TOKEN_HASHES: dict[str, int] = {}  # per process; words repeat across documents
# ~16 MB when full. A web corpus meets a new word every few documents for ever (103,000
# distinct words in 10,000 documents, 191,000 in 200,000), so a larger cap only grows a long
# run's memory; Zipf's law keeps the common words, which make most tokens, in a cache this size.
_TOKEN_CACHE_MAX = 1 << 17
_LETTERED: dict[str, bool] = {}


def _token_hash(token: str) -> int:
    if len(_TOKEN_HASHES) >= _TOKEN_CACHE_MAX:
        _TOKEN_HASHES.clear()
    h = _TOKEN_HASHES[token] = int.from_bytes(
        hashlib.blake2b(token.encode(), digest_size=8).digest(), "big")
    return h


def token_hashes(tokens: Sequence[str]) -> np.ndarray:
    """Stable 64-bit hashes of the tokens (blake2b, cached per process)."""
    get = _TOKEN_HASHES.get  # get, not `in` then [ ]: another thread may clear the cache between
    return np.fromiter((h if (h := get(t)) is not None else _token_hash(t) for t in tokens),
                       np.uint64, len(tokens))


def ngram_hashes_of(h: np.ndarray, n: int) -> np.ndarray:
    """Hashes of the word n-grams of a document, given its tokens' hashes."""
    if len(h) < n:
        return np.zeros(0, np.uint64)
    acc = h[: len(h) - n + 1].copy()
    with np.errstate(over="ignore"):
        for i in range(1, n):
            acc = _mix(acc * np.uint64(0x9E3779B97F4A7C15) + h[i : len(h) - n + 1 + i])
    return _mix(acc)


def ngram_hashes(tokens: Sequence[str], n: int) -> np.ndarray:
    """Stable 64-bit hashes of the word n-grams (the same in every process)."""
    return ngram_hashes_of(token_hashes(tokens), n)


def _smallest_distinct(values: np.ndarray, k: int) -> np.ndarray:
    """The k smallest distinct values, sorted (sort-based: faster than hashing for uint64)."""
    v = np.sort(values)
    if v.size:
        v = v[np.concatenate(([True], v[1:] != v[:-1]))]
    return v[:k]


def kmv_merge(a: np.ndarray, b: np.ndarray, k: int = KMV_K) -> np.ndarray:
    """The k smallest distinct hashes of a and b (a k-minimum-values sketch of their union)."""
    return _smallest_distinct(np.concatenate((a, b)), k)


def kmv_distinct(sketch: np.ndarray, k: int = KMV_K) -> float:
    """Distinct count: exact below k values, else (k - 1) / (k-th smallest hash / 2^64)."""
    if sketch.size < k:
        return float(sketch.size)
    return (k - 1) / (float(sketch[k - 1]) / 2.0**64)


@lru_cache(maxsize=64)
def _frequent_words(language: str) -> frozenset[str] | None:
    """wordfreq's `small` list of `language` (words at or above 1 per million), None if absent."""
    import wordfreq

    lang = _WORDFREQ_ALIAS.get(language, language)
    if lang in _WORDFREQ_SKIP or lang not in wordfreq.available_languages("small"):
        return None
    words = frozenset(wordfreq.get_frequency_dict(lang, "small"))
    wordfreq.get_frequency_dict.cache_clear()  # wordfreq's own caches never empty; keep one copy
    wordfreq.get_frequency_list.cache_clear()
    return words


def vocab_tail_counts(text: str, language: str | None,
                      tokens: Sequence[str] | None = None) -> tuple[int, int]:
    """(rare word tokens, word tokens checked) for a text (or its :func:`diversity_words`, when
    already split); (0, 0) for an unsupported language."""
    frequent = _frequent_words(language) if language else None
    if frequent is None:
        return 0, 0
    if len(_LETTERED) >= _TOKEN_CACHE_MAX:
        _LETTERED.clear()
    lettered = _LETTERED
    rare = checked = 0
    for w in diversity_words(text) if tokens is None else tokens:
        has = lettered.get(w)
        if has is None:
            has = lettered[w] = _LETTERS.search(w) is not None
        if has:
            checked += 1
            rare += w not in frequent
    return rare, checked


class TextDiversityFn(beam.CombineFn):
    """Accumulator: [docs, tokens, rare tokens, checked tokens, {n: [n-grams, KMV sketch]}]."""

    def __init__(self, orders: Sequence[int] = NGRAM_ORDERS, k: int = KMV_K):
        self._orders = tuple(orders)
        self._k = k

    def create_accumulator(self):
        # per n-gram order: [n-grams seen, sketch, hashes pending a merge, how many are pending]
        return [0, 0, 0, 0, {n: [0, np.zeros(0, np.uint64), [], 0] for n in self._orders}]

    def _compact(self, entry: list) -> None:
        if entry[2]:
            entry[1] = _smallest_distinct(np.concatenate([entry[1], *entry[2]]), self._k)
            entry[2], entry[3] = [], 0

    def add_input(self, acc, doc: dict[str, Any]):
        text = doc.get("text") or ""
        toks = diversity_words(text)
        rare, checked = vocab_tail_counts(text, doc.get("language"), toks)
        token_h = token_hashes(toks)
        acc[0] += 1
        acc[1] += len(toks)
        acc[2] += rare
        acc[3] += checked
        for n in self._orders:
            entry = acc[4][n]
            entry[0] += max(len(toks) - n + 1, 0)
            hashes = ngram_hashes_of(token_h, n)
            if entry[1].size == self._k:  # a full sketch only takes hashes below its largest
                hashes = hashes[hashes < entry[1][-1]]
            if hashes.size:
                entry[2].append(hashes)
                entry[3] += hashes.size
                if entry[3] >= 4 * self._k:  # merge in batches, not once per document
                    self._compact(entry)
        return acc

    def merge_accumulators(self, accs: Iterable[list]):
        out = self.create_accumulator()
        for a in accs:
            for i in range(4):
                out[i] += a[i]
            for n in self._orders:
                self._compact(a[4][n])
                out[4][n][0] += a[4][n][0]
                out[4][n][1] = kmv_merge(out[4][n][1], a[4][n][1], self._k)
        return out

    def extract_output(self, acc) -> dict[str, float | int]:
        out: dict[str, float | int] = {"docs": acc[0], "word_tokens": acc[1]}
        for n in self._orders:
            self._compact(acc[4][n])
            total, sketch = acc[4][n][0], acc[4][n][1]
            out[f"distinct_{n}"] = min(1.0, kmv_distinct(sketch, self._k) / total) if total else 0.0
        out["vocab_tail_mass"] = acc[2] / acc[3] if acc[3] else 0.0
        out["vocab_tail_checked_share"] = acc[3] / acc[1] if acc[1] else 0.0
        return out


# ---------------------------------------------------------------------------------------------
# Beam.


def diversity_report(
    counts: Mapping[str, int],
    text: Mapping[str, Any],
    reference: Mapping[str, int] | None = None,
    percentile: float = TAIL_PERCENTILE,
) -> dict[str, Any]:
    """All metrics as one JSON-ready dict (what stats.json holds under `diversity.*`)."""
    ref = counts if reference is None else reference
    tail, threshold = tail_strata(ref, percentile)
    report: dict[str, Any] = dict(stratum_metrics(counts))
    report.update(
        {
            "reference_strata": sum(1 for c in ref.values() if c > 0),
            "coverage": coverage(ref, counts),
            "tail_percentile": percentile,
            "tail_threshold": threshold,
            "tail_strata": len(tail),
            "tail_strata_kept": sum(1 for s in tail if counts.get(s, 0) > 0),
            "tail_mass": tail_mass(counts, tail),
        }
    )
    report.update(text)
    return report


class StratumCounts(beam.PTransform):
    """docs -> one dict {stratum: records}, from the `stratum` column or else from `keys`."""

    def __init__(self, keys: Sequence[str], label: str | None = None):
        super().__init__(label)
        self._keys = tuple(keys)

    def expand(self, docs):
        keys = self._keys
        return (
            docs
            | "Stratum" >> beam.Map(lambda d: d.get("stratum") or stratum_key(d, keys))
            | "Count" >> beam.combiners.Count.PerElement()
            | "ToDict" >> beam.combiners.ToDict()
        )


class DiversityStats(beam.PTransform):
    """docs -> one dict of diversity metrics; `reference`: a PCollection of one {stratum: count};
    `counts`: the same for `docs` when the caller has already computed it (else counted here)."""

    def __init__(
        self,
        keys: Sequence[str],
        reference=None,
        percentile: float = TAIL_PERCENTILE,
        label: str | None = None,
        counts=None,
    ):
        super().__init__(label)
        self._keys = tuple(keys)
        self._reference = reference
        self._percentile = percentile
        self._counts = counts

    def expand(self, docs):
        counts = self._counts
        if counts is None:
            counts = docs | "StratumCounts" >> StratumCounts(self._keys)
        text = docs | "TextDiversity" >> beam.CombineGlobally(TextDiversityFn())
        reference = counts if self._reference is None else self._reference
        return counts | "Report" >> beam.Map(
            diversity_report,
            pvalue.AsSingleton(text),
            pvalue.AsSingleton(reference),
            self._percentile,
        )

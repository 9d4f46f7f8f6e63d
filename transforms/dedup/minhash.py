"""MinHash signatures and LSH band keys, computed over numpy for whole batches of documents.

Pure functions and one config object; the Beam wiring is in ``near_dedup.py``. The signature is
datasketch's own: the permutation parameters come from ``datasketch.MinHash(num_perm, seed)`` and the
"affine32" scheme is applied as datasketch applies it (MurmurHash3 fmix32 of the 32-bit shingle hash,
then ``a * h + b mod 2**32``, minimum per permutation). What is ours is the shingle hash: instead of
SHA-1 per shingle in a Python loop, every shingle of a batch is hashed at once with a polynomial
hash over Unicode code points. ``shingle_hash32`` is the same function written plainly for one
shingle, so that ``datasketch.MinHash(hashfunc=shingle_hash32).update_batch(shingles)`` gives
exactly the vectorised signature (tests check this).

Shingle hash, in uint64 arithmetic (wrapping modulo 2**64):
  word hash   w = fmix64(len + sum_i cp_i * R**i)                  over the word's code points
  shingle     s = fmix64(sum_j u_j * P**(k-1-j))                    u = word hashes (word shingles)
                                                                    or code points (char shingles)
  32-bit input  = s >> 32
"""

from __future__ import annotations

import json
import re
import sys
import unicodedata
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Literal

import numpy as np
from datasketch import MinHash
from datasketch.lsh import _optimal_param
from ouroboros.transforms.base import StrictModel
from pydantic import Field, model_validator

HASH_VERSION = "ouroboros-minhash-1"  # bump when any hash below changes: old indexes become unreadable

_U64 = np.uint64
_R = _U64(0x9E3779B97F4A7C15)  # golden-ratio constant (odd): base of the word hash
_P = _U64(0xC2B2AE3D27D4EB4F)  # xxhash64 prime 2 (odd): base of the shingle and band hash
_DOC_SEP = "\x01"  # joins a batch's texts; normalize() guarantees it never occurs inside a text
_SPACE = 32
_SEP = 1
_BLOCK_CODEPOINTS = 1 << 20  # hash a batch in slices of ~1M code points: bounded memory on huge texts
_CHUNK_SHINGLES = 2048  # shingles permuted at once: 2048 x num_perm x 4 bytes (fits L2)
_MAX32 = np.uint32(0xFFFFFFFF)


class MinHashConfig(StrictModel):
    """Near-duplicate detection parameters.

    Defaults are FineWeb's (Penedo et al. 2024, "The FineWeb Datasets", and datatrove's
    ``MinhashConfig``): word 5-grams, 112 permutations as 14 bands x 8 rows, which puts the 50%
    detection point near Jaccard (1/14)**(1/8) ~ 0.72 and detects pairs at 0.8 with p ~ 0.92.
    """

    enabled: bool = Field(True, description="run MinHash near-duplicate removal")
    num_perm: int = Field(112, ge=2, le=4096, description="MinHash permutations (signature length)")
    bands: int | None = Field(14, ge=1, description="LSH bands; None with `threshold` derives it")
    rows: int | None = Field(8, ge=1, description="rows (permutations) per band; None with `threshold`")
    threshold: float | None = Field(
        None, gt=0.0, lt=1.0,
        description="Jaccard threshold from which bands x rows are derived when bands/rows are None, "
                    "minimising weighted false positive + negative mass (datasketch MinHashLSH)")
    false_positive_weight: float = Field(0.5, ge=0.0, le=1.0, description="weight of FP mass (datasketch)")
    false_negative_weight: float = Field(0.5, ge=0.0, le=1.0, description="weight of FN mass (datasketch)")
    seed: int = Field(1, ge=0, description="seed of datasketch's permutation parameters (datatrove: 1)")
    shingle: Literal["word", "char"] = Field("word", description="shingle unit: words or characters")
    ngram: int = Field(5, ge=1, le=64, description="shingle size in units (FineWeb: 5 words)")
    nfkc: bool = Field(True, description="Unicode NFKC before shingling (folds width/compat forms)")
    lowercase: bool = Field(True, description="case-fold (datatrove TextNormConfig.lowercase)")
    remove_punctuation: bool = Field(True, description="punctuation and symbols become spaces (datatrove)")
    normalize_numbers: bool = Field(False, description="every number becomes 0 (datatrove's default: on)")
    strip_accents: bool = Field(False, description="drop combining marks after NFD (datatrove: on)")
    short_text: Literal["single_shingle", "skip"] = Field(
        "single_shingle",
        description="texts with 1..ngram-1 units: one shingle of all of them (so equal short texts "
                    "still match), or no signature (datatrove's behaviour). Empty texts never match.")
    verify_threshold: float | None = Field(
        None, gt=0.0, le=1.0,
        description="drop candidate pairs whose estimated Jaccard (signature agreement) is below this; "
                    "None keeps every LSH candidate, as FineWeb/datatrove do")
    max_bucket_verify: int = Field(
        256, ge=1,
        description="with verification, at most this many members of one band bucket that failed "
                    "against the bucket's representative are compared among themselves")

    @model_validator(mode="after")
    def _check_bands(self) -> MinHashConfig:
        if (self.bands is None) != (self.rows is None):
            raise ValueError("give both bands and rows, or neither (then threshold derives them)")
        if self.bands is None and self.threshold is None:
            raise ValueError("bands/rows are None: give a threshold to derive them from")
        if self.bands is not None and self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands*rows={self.bands * self.rows} exceeds num_perm={self.num_perm}")
        return self

    @property
    def band_rows(self) -> tuple[int, int]:
        """(bands, rows): as given, or derived from `threshold` like datasketch's MinHashLSH."""
        if self.bands is not None:
            return self.bands, self.rows  # type: ignore[return-value]
        return optimal_bands_rows(self.threshold, self.num_perm,  # type: ignore[arg-type]
                                  self.false_positive_weight, self.false_negative_weight)

    def index_params(self) -> str:
        """Everything that changes a band hash: an index written under other params cannot be read."""
        b, r = self.band_rows
        keys = ("num_perm", "seed", "shingle", "ngram", "nfkc", "lowercase", "remove_punctuation",
                "normalize_numbers", "strip_accents", "short_text")
        d = {k: getattr(self, k) for k in keys} | {"bands": b, "rows": r, "hash": HASH_VERSION}
        return json.dumps(d, sort_keys=True)


@lru_cache(maxsize=64)
def optimal_bands_rows(threshold: float, num_perm: int, fp_weight: float = 0.5,
                       fn_weight: float = 0.5) -> tuple[int, int]:
    """datasketch's choice of (b, r), b*r <= num_perm, minimising fp_w*FP + fn_w*FN mass."""
    return tuple(_optimal_param(threshold, num_perm, fp_weight, fn_weight))  # type: ignore[return-value]


def detection_probability(s: float | np.ndarray, bands: int, rows: int) -> float | np.ndarray:
    """The LSH S-curve: P(a pair of Jaccard s shares at least one band) = 1 - (1 - s^r)^b."""
    return 1.0 - (1.0 - np.asarray(s, dtype=float) ** rows) ** bands


# ---------------------------------------------------------------- normalization

_PUNCT = re.compile(r"[^\w\s]|_")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")


@lru_cache(maxsize=1)
def _combining_mark_table() -> np.ndarray:
    """For every code point: is it a nonspacing combining mark (category Mn)?"""
    return np.array([unicodedata.category(chr(c)) == "Mn" for c in range(sys.maxunicode + 1)])


def _strip_accents(text: str) -> str:
    """NFD, then drop combining marks (datatrove's diacritics step), in numpy: a regex is slow."""
    if text.isascii():
        return text
    cp = np.frombuffer(unicodedata.normalize("NFD", text).encode("utf-32-le", "surrogatepass"),
                       dtype=np.uint32)
    return cp[~_combining_mark_table()[cp]].tobytes().decode("utf-32-le", "surrogatepass")


@lru_cache(maxsize=2)
def _word_char_table(remove_punctuation: bool) -> np.ndarray:
    """For every code point: is it part of a word? (Else it separates words.) Mirrors `normalize`."""
    pattern = re.compile(r"[^\w\s]|_|\s") if remove_punctuation else re.compile(r"\s")
    table = np.ones(sys.maxunicode + 1, dtype=bool)
    for m in pattern.finditer("".join(map(chr, range(sys.maxunicode + 1)))):
        table[ord(m.group())] = False
    table[_SEP] = False
    return table


def _prenormalize(text: str | None, cfg: MinHashConfig) -> str:
    """The character-level steps of `normalize` (everything but punctuation and whitespace)."""
    if not text:
        return ""
    if cfg.nfkc and not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    if cfg.lowercase:
        text = text.lower()
    if cfg.normalize_numbers:
        text = _NUMBER.sub("0", text)
    if cfg.strip_accents:
        text = _strip_accents(text)
    if _DOC_SEP in text:
        text = text.replace(_DOC_SEP, " ")
    return text


def normalize(text: str | None, cfg: MinHashConfig) -> str:
    """The text shingles are taken from: words separated by single spaces, no leading/trailing.

    NFKC, case, numbers, accents (each optional), then punctuation/symbols/underscore become
    spaces and whitespace runs collapse. Word shingling does the last two steps in numpy instead.
    """
    text = _prenormalize(text, cfg)
    if cfg.remove_punctuation:
        text = _PUNCT.sub(" ", text)
    return " ".join(text.split())


def shingles(norm_text: str, cfg: MinHashConfig) -> list[tuple[str, ...]] | list[str]:
    """Shingles of a normalized text, plainly (reference for tests; the pipeline hashes in bulk)."""
    units: Sequence[str] = norm_text.split(" ") if cfg.shingle == "word" else norm_text
    if norm_text == "":
        return []
    n = cfg.ngram
    if len(units) < n:
        if cfg.short_text == "skip":
            return []
        return [tuple(units)] if cfg.shingle == "word" else [norm_text]
    if cfg.shingle == "word":
        return [tuple(units[i:i + n]) for i in range(len(units) - n + 1)]
    return [norm_text[i:i + n] for i in range(len(norm_text) - n + 1)]


# ---------------------------------------------------------------- hashing (reference, one shingle)

_M64 = (1 << 64) - 1


def _fmix64_int(h: int) -> int:
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & _M64
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & _M64
    return h ^ (h >> 33)


def _word_hash_int(word: str) -> int:
    acc, power, r = len(word), 1, int(_R)
    for ch in word:
        acc = (acc + ord(ch) * power) & _M64
        power = (power * r) & _M64
    return _fmix64_int(acc)


def shingle_hash32(shingle: tuple[str, ...] | str) -> int:
    """32-bit hash of one shingle (a tuple of words, or a string for char shingles), plainly.

    Usable as ``datasketch.MinHash(hashfunc=...)``; identical to what ``signatures`` computes.
    """
    units = [_word_hash_int(w) for w in shingle] if isinstance(shingle, tuple) else [ord(c) for c in shingle]
    acc, p = 0, int(_P)
    for u in units:
        acc = (acc * p + u) & _M64
    return _fmix64_int(acc) >> 32


# ---------------------------------------------------------------- hashing (vectorised, a batch)

def _fmix64(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> _U64(33))
    h = h * _U64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> _U64(33))
    h = h * _U64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> _U64(33))


def _fmix32(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


_R_INV = _U64(pow(int(_R), -1, 1 << 64))


@lru_cache(maxsize=1)
def _powers() -> tuple[np.ndarray, np.ndarray]:
    """R**i and R**-i mod 2**64 for i < one slice: 2 x 8 MB, built once per process."""
    n = _BLOCK_CODEPOINTS + 1
    fwd = np.cumprod(np.concatenate(([_U64(1)], np.full(n - 1, _R, dtype=_U64))), dtype=_U64)
    inv = np.cumprod(np.concatenate(([_U64(1)], np.full(n - 1, _R_INV, dtype=_U64))), dtype=_U64)
    return fwd, inv


def _word_units(cp: np.ndarray, is_word: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Word hashes of a code-point slice, and the number of doc separators before each word.

    A word's polynomial is a difference of prefix sums G[i] = sum_{k<i} cp_k R^k, rescaled by
    R^-start: sum_k cp_k R^(k-start). Every step is one pass over the slice, no Python per word.
    """
    edges = np.diff(is_word.view(np.int8), prepend=np.int8(0), append=np.int8(0))
    starts = np.flatnonzero(edges == 1)
    if starts.size == 0:
        return np.empty(0, _U64), np.empty(0, np.int64)
    ends = np.flatnonzero(edges == -1)
    fwd, inv = _powers()
    prefix = np.empty(cp.size + 1, dtype=_U64)
    prefix[0] = 0
    np.cumsum(cp.astype(_U64) * fwd[:cp.size], out=prefix[1:])
    sums = (prefix[ends] - prefix[starts]) * inv[starts]
    doc_rel = np.searchsorted(np.flatnonzero(cp == _SEP), starts)
    return _fmix64(sums + (ends - starts).astype(_U64)), doc_rel


def _units(texts: list[str], cfg: MinHashConfig) -> tuple[np.ndarray, np.ndarray]:
    """All shingle units of a batch in order (word hashes or code points) and each one's doc index.

    Word mode takes pre-normalized texts and does punctuation and whitespace with a code-point
    table; char mode takes fully normalized texts.
    """
    joined = _DOC_SEP.join(texts)
    cp = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    if cfg.shingle == "char":
        doc = np.cumsum(cp == _SEP)
        keep = cp != _SEP
        return cp[keep].astype(_U64), doc[keep]
    table = _word_char_table(cfg.remove_punctuation)
    units, docs = [np.empty(0, _U64)], [np.empty(0, np.int64)]
    start, n, doc_base = 0, cp.size, 0
    while start < n:  # slices end on a non-word code point, so no word straddles two slices
        end = min(start + _BLOCK_CODEPOINTS, n)
        is_word = table[cp[start:end]]
        if end < n:
            cut = np.flatnonzero(~is_word)
            if cut.size:  # else a giant token: cut it (documented: it becomes two words)
                end = start + int(cut[-1]) + 1
                is_word = is_word[:end - start]
        block = cp[start:end]
        u, d = _word_units(block, is_word)
        units.append(u)
        docs.append(d + doc_base)
        doc_base += int(np.count_nonzero(block == _SEP))
        start = end
    return np.concatenate(units), np.concatenate(docs)


def _windows(doc_of_unit: np.ndarray, n_docs: int, cfg: MinHashConfig
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start unit, length, doc) of every shingle, sorted by doc."""
    counts = np.bincount(doc_of_unit, minlength=n_docs)
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))
    n = cfg.ngram
    per_doc = np.maximum(counts - n + 1, 0)
    if cfg.short_text == "single_shingle":
        per_doc = np.where((counts > 0) & (counts < n), 1, per_doc)
    total = int(per_doc.sum())
    doc = np.repeat(np.arange(n_docs), per_doc)
    offset = np.arange(total) - np.repeat(np.cumsum(per_doc) - per_doc, per_doc)
    return first[doc] + offset, np.minimum(counts[doc], n), doc


def _shingle_hashes(units: np.ndarray, start: np.ndarray, length: np.ndarray, n: int) -> np.ndarray:
    acc = np.zeros(start.size, dtype=_U64)
    last = units.size - 1
    for j in range(n):
        val = units[np.minimum(start + j, last)] if units.size else np.zeros(start.size, _U64)
        stepped = acc * _P + val
        acc = np.where(j < length, stepped, acc) if j else stepped
    return (_fmix64(acc) >> _U64(32)).astype(np.uint32)


@lru_cache(maxsize=16)
def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's affine32 permutation parameters (a odd, b), uint32."""
    a, b = MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations
    return a.astype(np.uint32), b.astype(np.uint32)


def signatures(texts: Iterable[str | None], cfg: MinHashConfig) -> tuple[np.ndarray, np.ndarray]:
    """MinHash signatures (n_docs x num_perm, uint32) of a batch, and which docs have one.

    A doc without shingles (empty, or short with ``short_text="skip"``) keeps datasketch's empty
    signature (all 2**32-1) and ``has_sig`` False: it must never be bucketed.
    """
    prep = _prenormalize if cfg.shingle == "word" else normalize
    norm = [prep(t, cfg) for t in texts]
    n_docs = len(norm)
    sig = np.full((n_docs, cfg.num_perm), _MAX32, dtype=np.uint32)
    if n_docs == 0:
        return sig, np.zeros(0, dtype=bool)
    units, doc_of_unit = _units(norm, cfg)
    start, length, doc = _windows(doc_of_unit, n_docs, cfg)
    a, b = permutations(cfg.num_perm, cfg.seed)
    for lo in range(0, start.size, _CHUNK_SHINGLES):
        hi = min(lo + _CHUNK_SHINGLES, start.size)
        h = _fmix32(_shingle_hashes(units, start[lo:hi], length[lo:hi], cfg.ngram))
        phv = np.multiply(h[:, None], a[None, :])
        phv += b
        d = doc[lo:hi]
        seg = np.flatnonzero(np.concatenate(([True], d[1:] != d[:-1])))
        ids = d[seg]
        sig[ids] = np.minimum(sig[ids], np.minimum.reduceat(phv, seg, axis=0))
    has_sig = np.zeros(n_docs, dtype=bool)
    has_sig[doc] = True
    return sig, has_sig


def band_hashes(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One 64-bit hash per (doc, band) of the band's `rows` signature values (n_docs x bands)."""
    sig = np.atleast_2d(sig)
    out = np.empty((sig.shape[0], bands), dtype=_U64)
    for i in range(bands):
        acc = np.full(sig.shape[0], _U64(i + 1), dtype=_U64)
        for v in sig[:, i * rows:(i + 1) * rows].T:
            acc = acc * _P + v.astype(_U64)
        out[:, i] = _fmix64(acc)
    return out


def estimated_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    """Fraction of agreeing permutations: the unbiased MinHash estimate of Jaccard similarity."""
    return float(np.count_nonzero(sig_a == sig_b)) / sig_a.size


def jaccard(a: Iterable, b: Iterable) -> float:
    """Exact Jaccard similarity of two shingle sets (benchmarks and tests)."""
    sa, sb = set(a), set(b)
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)

"""Hashed word and character n-grams of a batch of texts, computed with array operations.

The default scorer is a linear model over these features: word 1-2-grams (tokens are runs of
letters/digits, and every punctuation mark on its own) and byte 3-5-grams, each block
``log(1 + count)`` and L2-normalised, hashed into ``2**bits`` buckets (the hashing trick of
Weinberger et al. 2009, as in scikit-learn's ``HashingVectorizer``; char n-grams across word
boundaries because how words meet, punctuation and spacing included, is style, not topic).

Why not ``HashingVectorizer`` itself: its character analyzer runs in Python, about 250 documents
per second here, a quarter of the scorer's budget. Here every n-gram of the whole batch is hashed
at once from one prefix array (a polynomial rolling hash, ``hash(s[a:e]) = (C[e] - C[a]) * M**(e-1)``
with ``C`` the cumulative sum of ``byte_j * M**-j`` modulo 2**64, then a splitmix64 finaliser), so
the cost is a few dozen NumPy calls per batch. A document's features depend on its own bytes only:
the same text gets the same features in any batch.

All texts go through :func:`view` first: Markdown and list markup stripped, typography folded,
whitespace collapsed, lower-cased, digits folded to ``0``, cut to ``VIEW_CHARS`` characters.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from ouroboros.transforms.synthetic.features import normalize, strip_markup

VIEW_CHARS = 3000
CHAR_N = (3, 4, 5)
_DIGITS = re.compile(r"\d")
_M = 0x100000001B3  # odd, so invertible modulo 2**64
_M_INV = pow(_M, -1, 1 << 64)
_SALT = {("c", 3): 0x9E3779B97F4A7C15, ("c", 4): 0xC2B2AE3D27D4EB4F, ("c", 5): 0x165667B19E3779F9,
         ("w", 1): 0x27D4EB2F165667C5, ("w", 2): 0xD6E8FEB86659FD93}
_SEP = 0x0A  # between documents of a batch; never inside a view (whitespace is collapsed)


def view(text: str) -> str:
    """What the n-grams are taken from: the formatting-blind, case- and digit-folded opening."""
    return _DIGITS.sub("0", normalize(strip_markup(text), VIEW_CHARS).lower())


@lru_cache(maxsize=1)
def _byte_classes() -> tuple[np.ndarray, np.ndarray]:
    """Per byte value: part of a word (letters, digits, any non-ASCII byte), whitespace."""
    word = np.zeros(256, dtype=bool)
    for c in b"abcdefghijklmnopqrstuvwxyz0123456789":
        word[c] = True
    word[128:] = True
    space = np.zeros(256, dtype=bool)
    for c in b" \t\n\r\f\v":
        space[c] = True
    return word, space


_POWERS: list[np.ndarray] = [np.ones(1, dtype=np.uint64), np.ones(1, dtype=np.uint64)]


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """M**k and M**-k modulo 2**64 for k < n (grown on demand, shared by every call)."""
    if len(_POWERS[0]) < n:
        size = max(n, 2 * len(_POWERS[0]))
        with np.errstate(over="ignore"):
            for i, base in enumerate((_M, _M_INV)):
                steps = np.full(size, base, dtype=np.uint64)
                steps[0] = 1
                _POWERS[i] = np.cumprod(steps, dtype=np.uint64)
    return _POWERS[0][:n], _POWERS[1][:n]


def _finalise(h: np.ndarray, salt: int, bits: int) -> np.ndarray:
    """splitmix64's mixer on the salted polynomial hash; the top ``bits`` bits are the bucket."""
    with np.errstate(over="ignore"):
        h = h ^ np.uint64(salt)
        h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        h = h ^ (h >> np.uint64(31))
    return (h >> np.uint64(64 - bits)).astype(np.int64)


def hashed_ngrams(texts: Sequence[str], bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, column, value) triples of the feature matrix of ``texts`` (already :func:`view`-ed):
    one triple per distinct (row, column) and block, the char block first, each sorted by (row,
    column). A row's triples come in the same order whatever else is in the batch."""
    data = bytearray()
    starts = []
    for t in texts:
        starts.append(len(data))
        data += t.encode("utf-8")
        data.append(_SEP)
    n = len(data)
    b = np.frombuffer(bytes(data), dtype=np.uint8)
    doc = np.repeat(np.arange(len(texts)), np.diff(np.append(starts, n)))
    pw, pinv = _powers(n + 1)
    with np.errstate(over="ignore"):
        cum = np.zeros(n + 1, dtype=np.uint64)
        np.cumsum((b.astype(np.uint64) + np.uint64(1)) * pinv[:n], out=cum[1:])

        def spans(a: np.ndarray, e: np.ndarray) -> np.ndarray:  # hash of bytes [a, e)
            return (cum[e] - cum[a]) * pw[e - 1]

        blocks = []
        chars = []
        for k in CHAR_N:
            if n < k:
                continue
            # every window [a, a + k) as slices (no gathers); keep those inside one document
            h = (cum[k:] - cum[:-k]) * pw[k - 1:n]
            ok = (doc[: n - k + 1] == doc[k - 1:]) & (b[k - 1:] != _SEP)
            chars.append((doc[: n - k + 1][ok], _finalise(h[ok], _SALT[("c", k)], bits)))
        blocks.append(chars)
        word_b, space_b = _byte_classes()
        is_w = word_b[b]
        prev_w = np.concatenate(([False], is_w[:-1]))
        next_w = np.concatenate((is_w[1:], [False]))
        w_start = np.flatnonzero(is_w & ~prev_w)
        w_end = np.flatnonzero(is_w & ~next_w) + 1
        p_start = np.flatnonzero(~is_w & ~space_b[b])
        t_start = np.concatenate((w_start, p_start))
        t_end = np.concatenate((w_end, p_start + 1))
        order = np.argsort(t_start, kind="stable")
        t_start, t_end = t_start[order], t_end[order]
        t_doc = doc[t_start]
        same = t_doc[:-1] == t_doc[1:]
        blocks.append([(t_doc, _finalise(spans(t_start, t_end), _SALT[("w", 1)], bits)),
                       (t_doc[:-1][same], _finalise(spans(t_start[:-1][same], t_end[1:][same]),
                                                    _SALT[("w", 2)], bits))])
    rows, cols, vals = [], [], []
    for block in blocks:
        keys = np.concatenate([np.zeros(0, dtype=np.int64)]
                              + [(d.astype(np.int64) << bits) | h for d, h in block])
        uniq, counts = np.unique(keys, return_counts=True)
        r = uniq >> bits
        v = np.log1p(counts.astype(np.float64))
        norm = np.sqrt(np.bincount(r, weights=v * v, minlength=len(texts)))
        rows.append(r)
        cols.append(uniq & ((1 << bits) - 1))
        vals.append(v / np.maximum(norm[r], 1e-12))
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)


def feature_matrix(texts: Sequence[str], bits: int, batch: int = 512):
    """The CSR matrix (len(texts) x 2**bits) of raw texts, built ``batch`` texts at a time."""
    import scipy.sparse as sp

    parts = []
    for i in range(0, len(texts), batch):
        chunk = [view(t) for t in texts[i:i + batch]]
        r, c, v = hashed_ngrams(chunk, bits)
        m = sp.csr_matrix((v, (r, c)), shape=(len(chunk), 1 << bits))
        m.sum_duplicates()
        parts.append(m)
    return sp.vstack(parts, format="csr") if parts else sp.csr_matrix((0, 1 << bits))


def linear_scores(texts: Sequence[str], weights: np.ndarray, bias: float) -> np.ndarray:
    """``features . weights + bias`` for each raw text, without building a matrix; a text's score
    does not depend on the batch (its terms are summed in the same order in any batch)."""
    if not texts:
        return np.zeros(0)
    bits = int(np.log2(len(weights)))
    r, c, v = hashed_ngrams([view(t) for t in texts], bits)
    return np.bincount(r, weights=v * weights[c].astype(np.float64), minlength=len(texts)) + bias

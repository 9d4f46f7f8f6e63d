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
# The topic-masked view: word 1-3-grams over tokens where every word outside the KEEP_WORDS
# commonest English words is replaced by its frequency class (rank 500-999, 1,000-1,999, ...,
# beyond the list, a number). Function words, punctuation and how words of a given rarity follow
# each other are style; which rare words occur is topic, and topic is what the sources' domains
# confound with the label.
KEEP_WORDS = 500
MASK_N = (1, 2, 3)
_MASK_SALT = {1: 0x8CB92BA72F3D8DD7, 2: 0xA0761D6478BD642F, 3: 0xE7037ED1A0B428DB}
_CLASS_BASE = 0x5851F42D4C957F2D  # class tokens: this + class id (never a word's hash in practice)
_OOV_CLASS, _NUM_CLASS = 30, 31
_P = 0x9FB21C651E98DF25  # odd multiplier chaining token ids into n-gram ids


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


def word_hash(word: str) -> int:
    """The polynomial hash :func:`hashed_ngrams` gives the token ``word`` (before finalising)."""
    h = 0
    for byte in word.encode("utf-8"):
        h = (h * _M + byte + 1) & 0xFFFFFFFFFFFFFFFF
    return h


class Vocabulary:
    """The commonest words, in rank order: the topic-masked view keeps the first ``keep``
    verbatim and replaces any other word by its frequency class (``log2(rank / keep)``)."""

    def __init__(self, words: Sequence[str], keep: int = KEEP_WORDS):
        self.words = list(words)
        self.keep = keep
        hashes = np.array([word_hash(w) for w in self.words], dtype=np.uint64)
        ranks = np.arange(len(hashes))
        classes = np.where(ranks < keep, -1, np.floor(np.log2(np.maximum(ranks, keep) / keep)))
        order = np.argsort(hashes, kind="stable")
        self.hashes, self.classes = hashes[order], classes[order].astype(np.int64)

    def mask(self, token_hashes: np.ndarray, is_word: np.ndarray, is_number: np.ndarray) -> np.ndarray:
        """Token ids of the masked view: kept words and punctuation as themselves, other words as
        their class token."""
        if not len(self.hashes):
            cls = np.full(len(token_hashes), _OOV_CLASS)
        else:
            pos = np.minimum(np.searchsorted(self.hashes, token_hashes), len(self.hashes) - 1)
            found = self.hashes[pos] == token_hashes
            cls = np.where(found, self.classes[pos], _OOV_CLASS)
        cls = np.where(is_number, _NUM_CLASS, cls)
        with np.errstate(over="ignore"):
            ids = np.uint64(_CLASS_BASE) + cls.astype(np.uint64)
        return np.where(is_word & (cls >= 0), ids, token_hashes)


def hashed_ngrams(texts: Sequence[str], bits: int, vocab: Vocabulary | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, column, value) triples of the feature matrix of ``texts`` (already :func:`view`-ed):
    one triple per distinct (row, column) and block, the char block first, each sorted by (row,
    column). A row's triples come in the same order whatever else is in the batch. With ``vocab``,
    a third block, the topic-masked word 1-3-grams, in columns ``2**bits`` to ``2**(bits + 1)``."""
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
        t_hash = spans(t_start, t_end)
        blocks.append([(t_doc, _finalise(t_hash, _SALT[("w", 1)], bits)),
                       (t_doc[:-1][same], _finalise(spans(t_start[:-1][same], t_end[1:][same]),
                                                    _SALT[("w", 2)], bits))])
        if vocab is not None:
            ids = vocab.mask(t_hash, is_w[t_start], b[t_start] == ord("0"))
            grams, chain = [], ids
            for k in MASK_N:
                if k > 1:  # ids of the k-grams starting at each token, inside one document
                    chain = chain[:-1] * np.uint64(_P) + ids[k - 1:]
                ok = t_doc[: len(t_doc) - k + 1] == t_doc[k - 1:]
                grams.append((t_doc[: len(t_doc) - k + 1][ok], _finalise(chain[ok], _MASK_SALT[k], bits)))
            blocks.append(grams)
    rows, cols, vals = [], [], []
    for i, block in enumerate(blocks):
        keys = np.concatenate([np.zeros(0, dtype=np.int64)]
                              + [(d.astype(np.int64) << bits) | h for d, h in block])
        uniq, counts = np.unique(keys, return_counts=True)
        r = uniq >> bits
        v = np.log1p(counts.astype(np.float64))
        norm = np.sqrt(np.bincount(r, weights=v * v, minlength=len(texts)))
        rows.append(r)
        cols.append((uniq & ((1 << bits) - 1)) + ((1 << bits) if i == 2 else 0))
        vals.append(v / np.maximum(norm[r], 1e-12))
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)


def feature_matrix(texts: Sequence[str], bits: int, vocab: Vocabulary | None = None,
                   batch: int = 512):
    """The CSR matrix (len(texts) x 2**bits, or 2**(bits + 1) with the masked view) of raw texts,
    built ``batch`` texts at a time."""
    import scipy.sparse as sp

    width = (1 << bits) * (2 if vocab is not None else 1)
    parts = []
    for i in range(0, len(texts), batch):
        chunk = [view(t) for t in texts[i:i + batch]]
        r, c, v = hashed_ngrams(chunk, bits, vocab)
        m = sp.csr_matrix((v, (r, c)), shape=(len(chunk), width))
        m.sum_duplicates()
        parts.append(m)
    return sp.vstack(parts, format="csr") if parts else sp.csr_matrix((0, width))


def linear_scores(texts: Sequence[str], weights: np.ndarray, bias: float, bits: int,
                  vocab: Vocabulary | None = None) -> np.ndarray:
    """``features . weights + bias`` for each raw text, without building a matrix; a text's score
    does not depend on the batch (its terms are summed in the same order in any batch)."""
    if not texts:
        return np.zeros(0)
    r, c, v = hashed_ngrams([view(t) for t in texts], bits, vocab)
    return np.bincount(r, weights=v * weights[c].astype(np.float64), minlength=len(texts)) + bias


VOCAB_SIZE = 100_000
_VOCAB_WORD = re.compile(r"[a-z0-9\u0080-\U0010ffff]+")


def default_vocabulary(size: int = VOCAB_SIZE) -> list[str]:
    """The commonest English words by ``wordfreq`` (its blend of web, subtitles, news, books,
    Wikipedia, ...: not the training data, so the masked view's classes carry no label), in rank
    order, only those that are one token of :func:`hashed_ngrams` (contractions split there).
    Training writes the list into the model directory; the scorer reads it from there, so a
    ``wordfreq`` upgrade never changes a shipped model's features."""
    from wordfreq import top_n_list

    return [w for w in top_n_list("en", size) if _VOCAB_WORD.fullmatch(w)]

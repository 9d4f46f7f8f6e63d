"""Measures of model collapse over word samples: vocabulary, tail mass, tail kept, distinct-n.

The collapse papers (Shumailov et al. 2024; Dohmatob et al. 2024) describe the loss of the tails of
the real distribution: rare words become rarer, then vanish. These are the quantities the
simulation (`pipeline/simulate.py`) reports, defined once here so the README, the table and the
tests say the same thing:

- *words*: lower-cased tokens holding a letter or digit, without the space before them
  (punctuation, line breaks and the model's special tokens are not words);
- *head*: the K most frequent words of the real training corpus R (generation 0's data; ties by
  word order); every other word, including words R never had, is *tail*;
- *tail vocabulary* T_R: the words of R outside the head;
- ``vocabulary(X)``: distinct words in X;
- ``tail_mass(X)``: share of X's word tokens that are tail words (R itself has the reference value);
- ``tail_kept(X)``: |T_R ∩ words(X)| / |T_R|, the share of the real tail vocabulary that X still has;
- ``distinct_n(X)``: distinct word n-grams / word n-grams (Li et al. 2016), n-grams inside documents.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ouroboros.pipeline.ngram_lm import SPECIALS


class WordIndex:
    """Maps token ids of a `Vocabulary` to word ids (its lower-cased words), -1 for non-words."""

    def __init__(self, tokens: Sequence[str]):
        index: dict[str, int] = {}
        ids = np.full(len(tokens), -1, dtype=np.int64)
        for i, tok in enumerate(tokens):
            if tok not in SPECIALS and any(ch.isalnum() for ch in tok):
                ids[i] = index.setdefault(tok.strip().lower(), len(index))
        self.of_token = ids
        self.size = len(index)

    def words(self, token_ids: np.ndarray) -> np.ndarray:
        w = self.of_token[np.asarray(token_ids, dtype=np.int64)]
        return w[w >= 0]


@dataclass(frozen=True)
class TailReference:
    """The head (a mask over word ids) and the tail vocabulary T_R of the real corpus."""

    head: np.ndarray
    tail_words: np.ndarray

    @classmethod
    def from_docs(cls, word_docs: Sequence[np.ndarray], n_words: int, k: int) -> TailReference:
        counts = word_counts(word_docs, n_words)
        present = np.nonzero(counts)[0]
        order = present[np.lexsort((present, -counts[present]))]  # by count, then by id
        head = np.zeros(n_words, dtype=bool)
        head[order[:k]] = True
        return cls(head, order[k:])


def word_counts(word_docs: Sequence[np.ndarray], n_words: int) -> np.ndarray:
    flat = np.concatenate([np.asarray(d, dtype=np.int64) for d in word_docs]) if word_docs else \
        np.empty(0, dtype=np.int64)
    return np.bincount(flat, minlength=n_words)


def vocabulary(word_docs: Sequence[np.ndarray], n_words: int) -> int:
    return int((word_counts(word_docs, n_words) > 0).sum())


def tail_mass(word_docs: Sequence[np.ndarray], ref: TailReference) -> float:
    counts = word_counts(word_docs, len(ref.head))
    total = counts.sum()
    return float(counts[~ref.head].sum() / total) if total else float("nan")


def tail_kept(word_docs: Sequence[np.ndarray], ref: TailReference) -> float:
    if not len(ref.tail_words):
        return float("nan")
    counts = word_counts(word_docs, len(ref.head))
    return float((counts[ref.tail_words] > 0).mean())


def distinct_n(word_docs: Sequence[np.ndarray], n: int) -> float:
    grams = []
    for d in word_docs:
        d = np.asarray(d, dtype=np.int64)
        if len(d) >= n:
            grams.append(np.stack([d[i:len(d) - n + 1 + i] for i in range(n)], axis=1))
    if not grams:
        return float("nan")
    allg = np.concatenate(grams)
    return float(len(np.unique(allg, axis=0)) / len(allg))


def first_words(word_docs: Sequence[np.ndarray], budget: int) -> list[np.ndarray]:
    """The documents' words in order, cut after `budget` words: samples of equal size, so that
    vocabulary and distinct-n (which grow with sample size) compare across regimes."""
    out, left = [], budget
    for d in word_docs:
        if left <= 0:
            break
        out.append(d[:left])
        left -= len(out[-1])
    return out

"""Gopher quality and repetition rules (Rae et al. 2021, "Scaling Language Models: Methods, Analysis
& Insights from Training Gopher", appendix A, table A1), as pure functions over one document.

Signals are computed in full (no early exit) so that every value is stored and a user can
re-threshold later; the check functions turn signals into `rule:signal=value` reasons.

Words come from ``quality_words.split_words``, a pure-Python re-implementation of spaCy's English
tokenizer (which datatrove's Gopher filters use), so that the counts, and the decisions, are the same.
"""

from __future__ import annotations

import operator
import re
import threading
from collections import Counter
from collections.abc import Iterable
from itertools import compress
from typing import Any

import numpy as np
from ouroboros.transforms.base import StrictModel
from ouroboros.transforms.quality.words import split_words  # noqa: F401  (re-exported)
from pydantic import Field, model_validator

# ---------------------------------------------------------------------------------------------
# Characters and words
# ---------------------------------------------------------------------------------------------

# Punctuation as Gopher/datatrove's "symbol" test sees it: a word made only of these characters is a
# symbol, not a word. ASCII punctuation, the common CJK/typographic marks, and the control characters.
_CONTROL = "".join(map(chr, [*range(9), 11, 12, *range(13, 32), *range(127, 160)]))
PUNCTUATION = ('!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~'
               "—”％１〈、━【「」，】；“《„’∶´．（–？！：～«〉》）。…►»") + _CONTROL

# Characters with the Unicode Sentence_Terminal property (Unicode 16): the end-of-line marks of
# FineWeb's line-punctuation rule and the sentence boundaries of the C4 sentence count.
TERMINAL_PUNCTUATION = frozenset(
    "!.?\u0589\u061d\u061e\u061f\u06d4\u0700\u0701\u0702\u07f9\u0837\u0839\u083d\u083e\u0964"
    "\u0965\u104a\u104b\u1362\u1367\u1368\u166e\u1735\u1736\u17d4\u17d5\u1803\u1809\u1944\u1945"
    "\u1aa8\u1aa9\u1aaa\u1aab\u1b4e\u1b4f\u1b5a\u1b5b\u1b5e\u1b5f\u1b7d\u1b7e\u1b7f\u1c3b\u1c3c"
    "\u1c7e\u1c7f\u2024\u203c\u203d\u2047\u2048\u2049\u2cf9\u2cfa\u2cfb\u2e2e\u2e3c\u2e53\u2e54"
    "\u2e60\u2e61\u3002\ua4ff\ua60e\ua60f\ua6f3\ua6f7\ua876\ua877\ua8ce\ua8cf\ua92f\ua9c8\ua9c9"
    "\uaa5d\uaa5e\uaa5f\uaaf0\uaaf1\uabeb\ufe12\ufe15\ufe16\ufe52\ufe56\ufe57\uff01\uff0e\uff1f"
    "\uff61\U00010a56\U00010a57\U00010f55\U00010f56\U00010f57\U00010f58\U00010f59\U00010f86"
    "\U00010f87\U00010f88\U00010f89\U00011047\U00011048\U000110be\U000110bf\U000110c0\U000110c1"
    "\U00011141\U00011142\U00011143\U000111c5\U000111c6\U000111cd\U000111de\U000111df\U00011238"
    "\U00011239\U0001123b\U0001123c\U000112a9\U000113d4\U000113d5\U0001144b\U0001144c\U000115c2"
    "\U000115c3\U000115c9\U000115ca\U000115cb\U000115cc\U000115cd\U000115ce\U000115cf\U000115d0"
    "\U000115d1\U000115d2\U000115d3\U000115d4\U000115d5\U000115d6\U000115d7\U00011641\U00011642"
    "\U0001173c\U0001173d\U0001173e\U00011944\U00011946\U00011a42\U00011a43\U00011a9b\U00011a9c"
    "\U00011c41\U00011c42\U00011ef7\U00011ef8\U00011f43\U00011f44\U00016a6e\U00016a6f\U00016af5"
    "\U00016b37\U00016b38\U00016b44\U00016d6e\U00016d6f\U00016e98\U0001bc9f\U0001da88")
TERMINAL_PUNCTUATION_TUPLE = tuple(TERMINAL_PUNCTUATION)
PUNCTUATION_SET = frozenset(PUNCTUATION) | TERMINAL_PUNCTUATION
PUNCTUATION_CHARS = "".join(sorted(PUNCTUATION_SET))

# ---------------------------------------------------------------------------------------------
# Gopher quality
# ---------------------------------------------------------------------------------------------

# The eight stop words of the paper ("the, be, to, of, and, that, have, with"), for English.
GOPHER_STOP_WORDS_EN = frozenset(("the", "be", "to", "of", "and", "that", "have", "with"))


class GopherQualityConfig(StrictModel):
    """Thresholds of Rae et al. 2021, appendix A ("quality filters"). None disables a rule."""

    enabled: bool = Field(True, description="run the Gopher quality rules")
    min_doc_words: int | None = Field(50, ge=0, description="fewer non-symbol words than this: drop")
    max_doc_words: int | None = Field(100_000, ge=0, description="more non-symbol words than this: drop")
    min_avg_word_length: float | None = Field(3, ge=0, description="mean word length below this: drop")
    max_avg_word_length: float | None = Field(10, ge=0, description="mean word length above this: drop")
    max_symbol_word_ratio: float | None = Field(
        0.1, ge=0, description="'#' per word, or '...'/'…' per word, above this: drop")
    max_bullet_lines_ratio: float | None = Field(
        0.9, ge=0, le=1, description="share of lines starting with a bullet ('•' or '-') above this: drop")
    max_ellipsis_lines_ratio: float | None = Field(
        0.3, ge=0, le=1, description="share of lines ending with an ellipsis above this: drop")
    min_alpha_words_ratio: float | None = Field(
        0.8, ge=0, le=1, description="share of words with an alphabetic character below this: drop")
    min_stop_words: int | None = Field(
        2, ge=0, description="fewer distinct stop words of the document's language than this: drop")

    @model_validator(mode="after")
    def _ordered(self) -> GopherQualityConfig:
        for low, high in (("min_doc_words", "max_doc_words"),
                          ("min_avg_word_length", "max_avg_word_length")):
            a, b = getattr(self, low), getattr(self, high)
            if a is not None and b is not None and a > b:
                raise ValueError(f"{low} ({a}) must not exceed {high} ({b})")
        return self


def gopher_quality_signals(text: str, words: list[str], stop_words: frozenset[str] | None,
                           *, ids: np.ndarray | None = None,
                           lines: list[str] | None = None) -> dict[str, float | None]:
    """Gopher quality signal values; ``stop_words=None`` leaves the stop-word count out (null).

    ``ids`` (``word_ids(words)``) and ``lines`` (``text.splitlines()``) may be passed in when the
    caller already has them, so that the rule families share one pass over the document.
    """
    n_words = len(words)
    if ids is None:
        ids = word_ids(words)
    table = _table()
    real_chars = int(table.real_len[ids].sum())
    n_real = int(table.real[ids].sum())
    n_alpha = int(table.alpha[ids].sum())
    if lines is None:
        lines = text.splitlines()
    n_lines = len(lines)
    signals: dict[str, float | None] = {
        "n_words": float(n_real),
        "mean_word_length": real_chars / n_real if n_real else None,
        "hash_word_ratio": text.count("#") / n_words if n_words else None,
        "ellipsis_word_ratio": (text.count("...") + text.count("…")) / n_words if n_words else None,
        "bullet_lines_ratio": (sum(1 for s in lines if s.lstrip().startswith(("•", "-"))) / n_lines
                               if n_lines else None),
        "ellipsis_lines_ratio": (sum(1 for s in lines if s.rstrip().endswith(("...", "…"))) / n_lines
                                 if n_lines else None),
        "alpha_words_ratio": n_alpha / n_words if n_words else None,
        "stop_words_count": (float(len(stop_words.intersection(words)))
                             if stop_words is not None else None),
    }
    return signals


class _WordTable:
    """Words seen by this worker, numbered, with per-number arrays of what the rules need of a
    word: its length, its length if it is not a symbol, whether it is not a symbol, whether it has
    a letter. A document's words become one integer array (``word_ids``) that the Gopher quality
    sums and the repetition n-gram keys both use, so each distinct word is examined once."""

    limit = 200_000  # words (then the table starts again; no id outlives one document)

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self._grow(1024)

    def _grow(self, size: int) -> None:
        old = getattr(self, "length", None)
        arrays = [np.zeros(size, dtype=np.int64) for _ in range(4)]
        if old is not None:
            for new, cur in zip(arrays, (self.length, self.real_len, self.real, self.alpha)):
                new[:len(cur)] = cur
        self.length, self.real_len, self.real, self.alpha = arrays

    def clear(self) -> None:
        self.ids.clear()

    def add(self, new: list[str]) -> None:
        start = len(self.ids)
        end = start + len(new)
        if end > len(self.length):
            self._grow(max(2 * len(self.length), end))
        self.ids.update(zip(new, range(start, end)))
        lengths = list(map(len, new))
        self.length[start:end] = lengths
        letters = list(map(str.isalpha, new))  # most words: letters only, so real and alphabetic
        real, alpha = letters[:], letters[:]
        for k in compress(range(len(new)), map(operator.not_, letters)):
            word = new[k]
            real[k] = bool(word.strip(PUNCTUATION_CHARS))  # not only punctuation: not a symbol
            alpha[k] = any(map(str.isalpha, word))
        self.real[start:end] = real
        self.alpha[start:end] = alpha
        self.real_len[start:end] = self.length[start:end] * self.real[start:end]


_LOCAL = threading.local()  # a table per thread: Beam may run bundles on threads of one process


def _table() -> _WordTable:
    table = getattr(_LOCAL, "table", None)
    if table is None:
        table = _LOCAL.table = _WordTable()
    return table


def word_ids(words: list[str]) -> np.ndarray:
    """The words' numbers in this worker's word table (new words are added). Valid until the next
    call, which may start the table again: compute them once per document and pass them on."""
    table = _table()
    known = table.ids
    if len(known) >= table.limit:
        known.clear()
    new = set(words).difference(known)
    if new:
        table.add(list(new))
    return np.fromiter(map(known.__getitem__, words), dtype=np.int64, count=len(words))


def gopher_quality_reasons(s: dict[str, Any], cfg: GopherQualityConfig,
                           skip: Iterable[str] = ()) -> list[str]:
    """Failing rules in the paper's order; signals named in ``skip`` are not judged."""
    out: list[str] = []
    skip = set(skip)

    def fail(signal: str, value: float | None) -> None:
        out.append(f"gopher_quality:{signal}={_fmt(value)}")

    n = s["n_words"]
    if "n_words" not in skip and (
            (cfg.min_doc_words is not None and n < cfg.min_doc_words)
            or (cfg.max_doc_words is not None and n > cfg.max_doc_words)):
        fail("n_words", n)
    m = s["mean_word_length"]
    if "mean_word_length" not in skip and m is not None and (
            (cfg.min_avg_word_length is not None and m < cfg.min_avg_word_length)
            or (cfg.max_avg_word_length is not None and m > cfg.max_avg_word_length)):
        fail("mean_word_length", m)
    for key in ("hash_word_ratio", "ellipsis_word_ratio"):
        v = s[key]
        if cfg.max_symbol_word_ratio is not None and v is not None and v > cfg.max_symbol_word_ratio:
            fail(key, v)
    v = s["bullet_lines_ratio"]
    if cfg.max_bullet_lines_ratio is not None and v is not None and v > cfg.max_bullet_lines_ratio:
        fail("bullet_lines_ratio", v)
    v = s["ellipsis_lines_ratio"]
    if (cfg.max_ellipsis_lines_ratio is not None and v is not None
            and v > cfg.max_ellipsis_lines_ratio):
        fail("ellipsis_lines_ratio", v)
    v = s["alpha_words_ratio"]
    if "alpha_words_ratio" not in skip and cfg.min_alpha_words_ratio is not None and v is not None and v < cfg.min_alpha_words_ratio:
        fail("alpha_words_ratio", v)
    v = s["stop_words_count"]
    if ("stop_words_count" not in skip and cfg.min_stop_words is not None and v is not None
            and v < cfg.min_stop_words):
        fail("stop_words_count", v)
    return out


# ---------------------------------------------------------------------------------------------
# Gopher repetition
# ---------------------------------------------------------------------------------------------

_PARAGRAPH_BREAK = re.compile(r"\n{2,}")
_LINE_BREAK = re.compile(r"\n+")
TOP_NGRAM_SIGNALS = {2: "top_2gram_char_frac", 3: "top_3gram_char_frac", 4: "top_4gram_char_frac"}
DUP_NGRAM_SIGNALS = {n: f"dup_{n}gram_char_frac" for n in range(5, 11)}


class GopherRepetitionConfig(StrictModel):
    """Thresholds of Rae et al. 2021, table A1 ("repetition removal"). None disables a rule."""

    enabled: bool = Field(True, description="run the Gopher repetition rules")
    dup_line_frac: float | None = Field(0.30, ge=0, le=1, description="duplicate lines / lines above this: drop")
    dup_para_frac: float | None = Field(
        0.30, ge=0, le=1, description="duplicate paragraphs / paragraphs above this: drop")
    dup_line_char_frac: float | None = Field(
        0.20, ge=0, le=1, description="characters in duplicate lines / characters above this: drop")
    dup_para_char_frac: float | None = Field(
        0.20, ge=0, le=1, description="characters in duplicate paragraphs / characters above this: drop")
    top_ngram_char_frac: dict[int, float] = Field(
        {2: 0.20, 3: 0.18, 4: 0.16},
        description="n -> limit on the characters of the most frequent word n-gram / characters")
    dup_ngram_char_frac: dict[int, float] = Field(
        {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10},
        description="n -> limit on the characters in duplicated word n-grams / characters")

    @model_validator(mode="after")
    def _known_ngrams(self) -> GopherRepetitionConfig:
        for key, signals in (("top_ngram_char_frac", TOP_NGRAM_SIGNALS),
                             ("dup_ngram_char_frac", DUP_NGRAM_SIGNALS)):
            for n, limit in getattr(self, key).items():
                if n not in signals:  # no signal is computed for it: the rule would never run
                    raise ValueError(f"{key}: n={n} is not computed (n in {min(signals)}.."
                                     f"{max(signals)})")
                if not 0 <= limit <= 1:
                    raise ValueError(f"{key}: the limit for n={n} is a share in [0, 1] "
                                     f"(got {limit})")
        return self


def find_duplicates(items: list[str]) -> tuple[int, int]:
    """(number of repeated elements, their characters), counting every occurrence after the first."""
    seen: set[str] = set()
    dup = dup_chars = 0
    for x in items:
        if x in seen:
            dup += 1
            dup_chars += len(x)
        else:
            seen.add(x)
    return dup, dup_chars


def _ngram_signals(ids: np.ndarray, lengths: np.ndarray, n_chars: int,
                   out: dict[str, float | None]) -> None:
    """The top and duplicated word n-gram signals, into ``out`` (which holds their no-repeat values).

    Equal n-grams get equal integer keys: a bigram is ``id * V + next id`` (V above every word
    number), an n-gram is ``(n-1)-gram group * V + its last word``, where the group numbers the
    distinct (n-1)-grams. Grouping is one stable sort per n (numpy), so the first occurrence of each
    n-gram is known. Bigrams are taken at every position; from trigrams on only at the positions
    where the n-gram could repeat (the two (n-1)-grams it starts and ends with both repeat), which
    are few in most documents but hold every occurrence of every repeated n-gram.
    """
    n_words = len(ids)
    v = int(ids.max()) + 1
    cum = np.zeros(n_words + 1, dtype=np.int64)
    np.cumsum(lengths, out=cum[1:])
    pos: np.ndarray | None = None  # the positions of this level's keys; None: every position
    keys = ids[:-1] * v + ids[1:]
    n = 2
    last = max(DUP_NGRAM_SIGNALS)
    while True:
        size = len(keys)
        if size < _SMALL_LEVEL:  # a few keys: plain Python is faster than numpy's per-call cost
            _small_ngram_levels(n, keys.tolist(), list(range(size)) if pos is None else pos.tolist(),
                                ids, cum, v, n_chars, out)
            return
        order = np.argsort(keys, kind="stable")  # equal keys keep their positions' order
        sorted_keys = keys[order]
        start = np.empty(size, dtype=bool)  # in sorted order: the first of a group of equal keys
        start[0] = True
        np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=start[1:])
        starts = np.flatnonzero(start)
        if n in TOP_NGRAM_SIGNALS:
            times = np.empty(len(starts), dtype=np.int64)  # each group's size
            np.subtract(starts[1:], starts[:-1], out=times[:-1])
            times[-1] = size - starts[-1]
            most = int(times.max())
            if most > 1:  # the most frequent n-gram; the first seen wins ties, as in datatrove
                j = int(order[starts[times == most]].min())
                i = j if pos is None else int(pos[j])
                out[TOP_NGRAM_SIGNALS[n]] = (int(cum[i + n] - cum[i]) + n - 1) * most / n_chars
        group = np.cumsum(start) - 1  # in sorted order: the group's number
        if n in DUP_NGRAM_SIGNALS:
            first = np.empty(size, dtype=np.int64)  # by position: where its n-gram first occurs
            first[order] = order[starts][group]
            later = np.flatnonzero(first != np.arange(size))
            at, first_at = (later, first[later]) if pos is None else (pos[later], pos[first[later]])
            chars = cum[at + n] - cum[at]
            out[DUP_NGRAM_SIGNALS[n]] = _dup_ngram_chars(
                at.tolist(), first_at.tolist(), chars.tolist(), n, n_words) / n_chars
        if n >= last:
            return
        # repeated: not alone in its group (neither the group's start followed by another start)
        repeated_sorted = np.empty(size, dtype=bool)
        np.logical_and(start[:-1], start[1:], out=repeated_sorted[:-1])
        repeated_sorted[-1] = start[-1]
        np.logical_not(repeated_sorted, out=repeated_sorted)
        if not repeated_sorted.any():  # no n-gram repeats: no longer one does
            return
        width = n_words - n + 1
        repeated = np.zeros(width, dtype=bool)
        label = np.zeros(width, dtype=np.int64)
        at = order if pos is None else pos[order]
        repeated[at] = repeated_sorted
        label[at] = group
        # an (n+1)-gram at i can repeat only if the n-grams at i and i + 1 both do
        pos = np.flatnonzero(repeated[:-1] & repeated[1:])
        if not len(pos):
            return
        n += 1
        keys = label[pos] * v + ids[pos + n - 1]


_SMALL_LEVEL = 64  # keys


def _small_ngram_levels(n: int, keys: list[int], pos: list[int], ids: np.ndarray, cum: np.ndarray,
                        v: int, n_chars: int, out: dict[str, float | None]) -> None:
    """``_ngram_signals`` from level ``n`` on, in plain Python, for a level with few keys.

    Same keys and same rules; an n-gram's group is named by its first position."""
    last = max(DUP_NGRAM_SIGNALS)
    n_words = len(ids)
    while True:
        first: dict[int, int] = {}
        firsts = list(map(first.setdefault, keys, pos))  # where each position's n-gram first occurs
        counts = Counter(keys)
        if n in TOP_NGRAM_SIGNALS:
            key, most = counts.most_common(1)[0]  # the first seen wins ties, as in datatrove
            if most > 1:
                i = first[key]
                out[TOP_NGRAM_SIGNALS[n]] = (int(cum[i + n] - cum[i]) + n - 1) * most / n_chars
        if n in DUP_NGRAM_SIGNALS:
            later = [k for k, (p, f) in enumerate(zip(pos, firsts)) if p != f]
            at = [pos[k] for k in later]
            out[DUP_NGRAM_SIGNALS[n]] = _dup_ngram_chars(
                at, [firsts[k] for k in later], [int(cum[p + n] - cum[p]) for p in at], n,
                n_words) / n_chars
        if n >= last:
            return
        label = {p: f for p, f, k in zip(pos, firsts, keys) if counts[k] > 1}  # repeated ones
        n += 1
        pos = [p for p in label if p + 1 in label]
        if not pos:
            return
        keys = [label[p] * v + int(ids[p + n - 1]) for p in pos]


def _dup_ngram_chars(later: list[int], first: list[int], chars: list[int], n: int,
                     n_words: int) -> int:
    """Characters in duplicated n-grams: scan left to right, skipping past each repeat.

    The scan (Rae et al.; datatrove's ``find_all_duplicate``) visits n-gram i; if it was visited
    before it counts its characters and jumps to i + n, else it remembers it and goes to i + 1.
    Only the positions whose n-gram occurred earlier (``later``, ascending, with the first
    occurrence of their n-gram and their characters) can count, so only those are walked here;
    one counts when an earlier occurrence of its n-gram was visited, not jumped over.
    """
    total = next_visit = 0
    jumped = bytearray(n_words)
    fill = b"\x01" * (n - 1)
    remembered: set[int] = set()  # n-grams (by first position) first visited at a repeat position
    for i, first_pos, c in zip(later, first, chars):
        if i < next_visit:
            continue
        if not jumped[first_pos] or first_pos in remembered:
            total += c
            jumped[i + 1:i + n] = fill
            next_visit = i + n
        else:
            remembered.add(first_pos)
            next_visit = i + 1
    return total


def gopher_repetition_signals(text: str, words: list[str], ngrams: bool = True, *,
                              ids: np.ndarray | None = None,
                              line_parts: list[str] | None = None) -> dict[str, float | None]:
    """Gopher repetition signal values; ``ngrams=False`` leaves the word n-gram ones null.

    ``ids`` (``word_ids(words)``) and ``line_parts`` (``text.split("\\n")``) may be passed in when
    the caller already has them.
    """
    out: dict[str, float | None] = {}
    n_chars = len(text)
    if not n_chars:
        return out
    paragraphs = _PARAGRAPH_BREAK.split(text.strip())
    dup, dup_chars = find_duplicates(paragraphs)
    out["dup_para_frac"] = dup / len(paragraphs)
    out["dup_para_char_frac"] = dup_chars / n_chars
    if line_parts is None:
        line_parts = text.split("\n")
    # the pieces between runs of newlines: empty ones only at either end, as re.split(r"\n+")
    lines = ([line_parts[0], *filter(None, line_parts[1:-1]), line_parts[-1]]
             if len(line_parts) > 1 else line_parts)
    dup, dup_chars = find_duplicates(lines)
    out["dup_line_frac"] = dup / len(lines)
    out["dup_line_char_frac"] = dup_chars / n_chars
    if not ngrams:
        return out
    n_words = len(words)
    # With no repeated n-gram, the "most frequent" one is the first (ties go to the first seen).
    for n, name in TOP_NGRAM_SIGNALS.items():
        out[name] = (sum(map(len, words[:n])) + n - 1) / n_chars if n_words >= n else None
    out.update(dict.fromkeys(DUP_NGRAM_SIGNALS.values(), 0.0))
    if n_words >= 2:
        if ids is None:
            ids = word_ids(words)
        _ngram_signals(ids, _table().length[ids], n_chars, out)
    return out


def gopher_repetition_reasons(s: dict[str, Any], cfg: GopherRepetitionConfig) -> list[str]:
    if not s:
        return ["gopher_repetition:n_chars=0"]
    out = []
    for key in ("dup_para_frac", "dup_para_char_frac", "dup_line_frac", "dup_line_char_frac"):
        limit = getattr(cfg, key)
        if limit is not None and s[key] > limit:
            out.append(f"gopher_repetition:{key}={_fmt(s[key])}")
    for n, limit in sorted(cfg.top_ngram_char_frac.items()):
        v = s.get(TOP_NGRAM_SIGNALS.get(n, ""))
        if v is not None and v > limit:
            out.append(f"gopher_repetition:{TOP_NGRAM_SIGNALS[n]}={_fmt(v)}")
    for n, limit in sorted(cfg.dup_ngram_char_frac.items()):
        v = s.get(DUP_NGRAM_SIGNALS.get(n, ""))
        if v is not None and v > limit:
            out.append(f"gopher_repetition:{DUP_NGRAM_SIGNALS[n]}={_fmt(v)}")
    return out


def _fmt(value: float | None) -> str:
    if value is None:
        return "null"
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.4g}"

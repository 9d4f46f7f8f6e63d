"""Gopher quality and repetition rules (Rae et al. 2021, "Scaling Language Models: Methods, Analysis
& Insights from Training Gopher", appendix A, table A1), as pure functions over one document.

Signals are computed in full (no early exit) so that every value is stored and a user can
re-threshold later; the check functions turn signals into `rule:signal=value` reasons.

Words come from ``quality_words.split_words``, a pure-Python re-implementation of spaCy's English
tokenizer (which datatrove's Gopher filters use), so that the counts, and the decisions, are the same.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from itertools import accumulate, compress, count, repeat
from operator import add, mul
from typing import Any

from ouroboros.transforms.base import StrictModel
from ouroboros.transforms.quality_words import split_words  # noqa: F401  (re-exported)
from pydantic import Field

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

def is_symbol(word: str) -> bool:
    return all(ch in PUNCTUATION_SET for ch in word)


# ---------------------------------------------------------------------------------------------
# Gopher quality
# ---------------------------------------------------------------------------------------------

# The eight stop words of the paper ("the, be, to, of, and, that, have, with"), for English.
GOPHER_STOP_WORDS_EN = frozenset(("the", "be", "to", "of", "and", "that", "have", "with"))


class GopherQualityConfig(StrictModel):
    """Thresholds of Rae et al. 2021, appendix A ("quality filters"). None disables a rule."""

    enabled: bool = Field(True, description="run the Gopher quality rules")
    min_doc_words: int | None = Field(50, description="fewer non-symbol words than this: drop")
    max_doc_words: int | None = Field(100_000, description="more non-symbol words than this: drop")
    min_avg_word_length: float | None = Field(3, description="mean word length below this: drop")
    max_avg_word_length: float | None = Field(10, description="mean word length above this: drop")
    max_symbol_word_ratio: float | None = Field(
        0.1, description="'#' per word, or '...'/'…' per word, above this: drop")
    max_bullet_lines_ratio: float | None = Field(
        0.9, description="share of lines starting with a bullet ('•' or '-') above this: drop")
    max_ellipsis_lines_ratio: float | None = Field(
        0.3, description="share of lines ending with an ellipsis above this: drop")
    min_alpha_words_ratio: float | None = Field(
        0.8, description="share of words with an alphabetic character below this: drop")
    min_stop_words: int | None = Field(
        2, description="fewer distinct stop words of the document's language than this: drop")


def gopher_quality_signals(text: str, words: list[str],
                           stop_words: frozenset[str] | None) -> dict[str, float | None]:
    """Gopher quality signal values; ``stop_words=None`` leaves the stop-word count out (null)."""
    n_words = len(words)
    flags = _WORD_FLAGS
    if len(flags) >= 200_000:
        flags.clear()
    for word in set(words).difference(flags):
        _add_word_flags(word)
    packed = sum(map(flags.__getitem__, words))
    real_chars, n_real, n_alpha = packed >> 96, (packed >> 48) & _FIELD, packed & _FIELD
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


# Per distinct word, three counts packed in one integer so that one C-level sum() over a document's
# words adds them all: (characters if not a symbol) << 96 | (1 if not a symbol) << 48 | (1 if it
# has a letter). A field holds up to 2**48 - 1, far above any document's word count.
_WORD_FLAGS: dict[str, int] = {}
_FIELD = (1 << 48) - 1


def _add_word_flags(word: str) -> None:
    if word.isalpha():
        _WORD_FLAGS[word] = len(word) << 96 | 1 << 48 | 1
        return
    real = not is_symbol(word)
    _WORD_FLAGS[word] = ((len(word) << 96 | 1 << 48) if real else 0) | any(
        c.isalpha() for c in word)


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
    dup_line_frac: float | None = Field(0.30, description="duplicate lines / lines above this: drop")
    dup_para_frac: float | None = Field(
        0.30, description="duplicate paragraphs / paragraphs above this: drop")
    dup_line_char_frac: float | None = Field(
        0.20, description="characters in duplicate lines / characters above this: drop")
    dup_para_char_frac: float | None = Field(
        0.20, description="characters in duplicate paragraphs / characters above this: drop")
    top_ngram_char_frac: dict[int, float] = Field(
        {2: 0.20, 3: 0.18, 4: 0.16},
        description="n -> limit on the characters of the most frequent word n-gram / characters")
    dup_ngram_char_frac: dict[int, float] = Field(
        {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10},
        description="n -> limit on the characters in duplicated word n-grams / characters")


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


def _ngram_levels(words: list[str]
                  ) -> Iterator[tuple[int, Sequence[int], list[int], Counter]]:
    """(n, positions, their n-gram keys, key counts) for n = 2, 3, ... while some n-gram repeats.

    Equal n-grams get equal integer keys: a word is numbered by its first occurrence and an
    n-gram is the base-(number of words + 1) number of its words' numbers, so counting and
    comparing hashes integers and builds no strings or tuples. Bigrams are given at every
    position; from trigrams on only at the positions where the n-gram could repeat (the two
    (n-1)-grams it starts with and ends with both repeat), which are few in most documents but
    hold every occurrence of every repeated n-gram. The loops are map/compress chains (C speed).
    """
    ids = list(map({}.setdefault, words, count()))
    if len(ids) < 2:
        return
    base = len(ids) + 1
    n = 2
    keys = list(map(add, map(mul, ids, repeat(base)), ids[1:]))
    positions: Sequence[int] = range(len(keys))
    while True:
        counts = Counter(keys)
        yield n, positions, keys, counts
        repeated = {k for k, c in counts.items() if c > 1}
        if not repeated:  # no n-gram repeats: no longer one does
            return
        keep = list(map(repeated.__contains__, keys))
        rep_positions = list(compress(positions, keep))
        key_at = dict(zip(rep_positions, compress(keys, keep)))
        n += 1
        # an n-gram at i can repeat only if the (n-1)-grams at i and i + 1 both do
        positions = list(compress(rep_positions,
                                  map(key_at.__contains__, map(add, rep_positions, repeat(1)))))
        if not positions:
            return
        heads = map(mul, map(key_at.__getitem__, positions), repeat(base))
        tails = map(ids.__getitem__, map(add, positions, repeat(n - 1)))
        keys = list(map(add, heads, tails))


def _dup_ngram_chars(positions: Sequence[int], keys: list[int], cum: list[int], n: int) -> int:
    """Characters in duplicated n-grams: scan left to right, skipping past each repeat.

    The scan (Rae et al.; datatrove's ``find_all_duplicate``) visits n-gram i; if it was visited
    before it counts its characters and jumps to i + n, else it remembers it and goes to i + 1.
    Only the positions whose n-gram occurred earlier can count, so only those are walked here;
    one counts when an earlier occurrence of its n-gram was visited, not jumped over.
    ``positions`` must hold every occurrence of every n-gram that occurs more than once.
    """
    first: dict[int, int] = {}
    later = [(i, k, f) for i, k in zip(positions, keys) if (f := first.setdefault(k, i)) != i]
    total = next_visit = 0
    jumped: set[int] = set()
    remembered: set[int] = set()  # n-grams first visited at a repeat position
    for i, key, first_pos in later:
        if i < next_visit:
            continue
        if first_pos not in jumped or key in remembered:
            total += cum[i + n] - cum[i]
            jumped.update(range(i + 1, i + n))
            next_visit = i + n
        else:
            remembered.add(key)
            next_visit = i + 1
    return total


def gopher_repetition_signals(text: str, words: list[str],
                              ngrams: bool = True) -> dict[str, float | None]:
    """Gopher repetition signal values; ``ngrams=False`` leaves the word n-gram ones null."""
    out: dict[str, float | None] = {}
    n_chars = len(text)
    if not n_chars:
        return out
    paragraphs = _PARAGRAPH_BREAK.split(text.strip())
    dup, dup_chars = find_duplicates(paragraphs)
    out["dup_para_frac"] = dup / len(paragraphs)
    out["dup_para_char_frac"] = dup_chars / n_chars
    lines = _LINE_BREAK.split(text)
    dup, dup_chars = find_duplicates(lines)
    out["dup_line_frac"] = dup / len(lines)
    out["dup_line_char_frac"] = dup_chars / n_chars
    if not ngrams:
        return out
    n_words = len(words)
    cum = list(accumulate(map(len, words), initial=0))
    # With no repeated n-gram, the "most frequent" one is the first (ties go to the first seen).
    for n, name in TOP_NGRAM_SIGNALS.items():
        out[name] = (cum[n] + n - 1) / n_chars if n_words >= n else None
    out.update(dict.fromkeys(DUP_NGRAM_SIGNALS.values(), 0.0))
    for n, positions, keys, counts in _ngram_levels(words):
        if n in TOP_NGRAM_SIGNALS:
            key, times = counts.most_common(1)[0]  # first seen wins ties, as in datatrove
            if times > 1:
                i = positions[keys.index(key)]
                out[TOP_NGRAM_SIGNALS[n]] = (cum[i + n] - cum[i] + n - 1) * times / n_chars
        if n in DUP_NGRAM_SIGNALS:
            out[DUP_NGRAM_SIGNALS[n]] = _dup_ngram_chars(positions, keys, cum, n) / n_chars
        if n >= max(DUP_NGRAM_SIGNALS):
            break
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

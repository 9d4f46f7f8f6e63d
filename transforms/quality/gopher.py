"""Gopher quality and repetition rules (Rae et al. 2021, "Scaling Language Models: Methods, Analysis
& Insights from Training Gopher", appendix A, table A1): their thresholds, their rule tables and a
plain reference implementation of each.

The reference functions read like the paper, a rule after another, top to bottom; the pipeline
computes the same signals with the fast paths of ``fast.py`` and judges them with the rule tables
of ``rules.py``, and a test holds both to the same decisions on real documents.

Words come from ``words.split_words``, a pure-Python re-implementation of spaCy's English tokenizer
(which datatrove's Gopher filters use), so that the counts, and the decisions, are the same.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping

from ouroboros.transforms.base import StrictModel
from ouroboros.transforms.quality.rules import (
    DUP_NGRAM_SIGNALS,
    GOPHER_QUALITY_RULES,
    GOPHER_REPETITION_RULES,
    TOP_NGRAM_SIGNALS,
    above,
    below,
    format_value,
    judge,
    outside,
    ratio,
)
from ouroboros.transforms.quality.words import split_words
from pydantic import Field, model_validator

# ---------------------------------------------------------------------------------------------
# Characters
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


def gopher_quality_reasons(signals: Mapping[str, float | None], cfg: GopherQualityConfig) -> list[str]:
    """The failing Gopher quality rules (``rules.GOPHER_QUALITY_RULES``); null signals pass."""
    return judge(GOPHER_QUALITY_RULES, signals, cfg)


def gopher_quality_reference(text: str, cfg: GopherQualityConfig,
                             stop_words: frozenset[str] = GOPHER_STOP_WORDS_EN) -> list[str]:
    """The Gopher quality filters over one English document, as the paper states them."""
    reasons: list[str] = []

    def fail(signal: str, value: float) -> None:
        reasons.append(f"gopher_quality:{signal}={format_value(value)}")

    words = split_words(text)  # spaCy's English tokens
    # "symbols" are tokens made only of punctuation: they are not words
    real_words = [w for w in words if w.strip(PUNCTUATION_CHARS)]
    lines = text.splitlines()

    # "any doc that does not contain between 50 and 100,000 words"
    n_words = len(real_words)
    if outside(n_words, cfg.min_doc_words, cfg.max_doc_words):
        fail("n_words", n_words)
    # "any doc whose mean word length is outside the range of 3 to 10 characters"
    mean = ratio(sum(map(len, real_words)), n_words)
    if outside(mean, cfg.min_avg_word_length, cfg.max_avg_word_length):
        fail("mean_word_length", mean)
    # "any doc with a symbol-to-word ratio greater than 0.1 for either the hash symbol or the
    # ellipsis" (symbols per token, as datatrove counts them)
    hashes = ratio(text.count("#"), len(words))
    if above(hashes, cfg.max_symbol_word_ratio):
        fail("hash_word_ratio", hashes)
    ellipses = ratio(text.count("...") + text.count("…"), len(words))
    if above(ellipses, cfg.max_symbol_word_ratio):
        fail("ellipsis_word_ratio", ellipses)
    # "any doc with more than 90% of lines starting with a bullet point"
    bullets = ratio(sum(line.lstrip().startswith(("•", "-")) for line in lines), len(lines))
    if above(bullets, cfg.max_bullet_lines_ratio):
        fail("bullet_lines_ratio", bullets)
    # "or more than 30% ending with an ellipsis"
    trailing = ratio(sum(line.rstrip().endswith(("...", "…")) for line in lines), len(lines))
    if above(trailing, cfg.max_ellipsis_lines_ratio):
        fail("ellipsis_lines_ratio", trailing)
    # "we require that 80% of words in a document contain at least one alphabetic character"
    alpha = ratio(sum(any(c.isalpha() for c in w) for w in words), len(words))
    if below(alpha, cfg.min_alpha_words_ratio):
        fail("alpha_words_ratio", alpha)
    # "and apply a stop word filter, to remove documents that do not contain at least two of the
    # following English words: the, be, to, of, and, that, have, with"
    present = len(stop_words.intersection(words))
    if below(present, cfg.min_stop_words):
        fail("stop_words_count", present)
    return reasons


# ---------------------------------------------------------------------------------------------
# Gopher repetition
# ---------------------------------------------------------------------------------------------

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


def gopher_repetition_reasons(signals: Mapping[str, float | None],
                              cfg: GopherRepetitionConfig) -> list[str]:
    """The failing Gopher repetition rules (``rules.GOPHER_REPETITION_RULES``)."""
    return judge(GOPHER_REPETITION_RULES, signals, cfg)


def duplicates(items: list) -> tuple[int, int]:
    """(repeated elements, their characters), counting every occurrence after the first."""
    seen: set = set()
    dup = dup_chars = 0
    for item in items:
        if item in seen:
            dup += 1
            dup_chars += len(item)
        else:
            seen.add(item)
    return dup, dup_chars


def top_ngram_chars(words: list[str], n: int) -> int | None:
    """Characters covered by the most frequent word n-gram (the first seen wins ties)."""
    grams = [" ".join(words[i:i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return None
    gram, times = Counter(grams).most_common(1)[0]
    return len(gram) * times


def duplicated_ngram_chars(words: list[str], n: int) -> int:
    """Characters of the word n-grams that repeat an earlier one, scanning left to right and
    jumping past each repeat (Rae et al.; datatrove's ``find_all_duplicate``, words kept apart)."""
    seen: set[tuple[str, ...]] = set()
    total = i = 0
    while i < len(words) - n + 1:
        gram = tuple(words[i:i + n])
        if gram in seen:
            total += sum(map(len, gram))
            i += n
        else:
            seen.add(gram)
            i += 1
    return total


def gopher_repetition_reference(text: str, cfg: GopherRepetitionConfig) -> list[str]:
    """The Gopher repetition filters over one document, as table A1 states them."""
    if not text:
        return ["gopher_repetition:n_chars=0"]
    reasons: list[str] = []
    n_chars = len(text)

    def check(signal: str, value: float | None, limit: float | None) -> None:
        if above(value, limit):
            reasons.append(f"gopher_repetition:{signal}={format_value(value)}")

    # "duplicate paragraphs" (paragraphs: separated by blank lines), by count and by characters
    paragraphs = re.split(r"\n{2,}", text.strip())
    dup, dup_chars = duplicates(paragraphs)
    check("dup_para_frac", dup / len(paragraphs), cfg.dup_para_frac)
    check("dup_para_char_frac", dup_chars / n_chars, cfg.dup_para_char_frac)
    # "duplicate lines", by count and by characters
    lines = re.split(r"\n+", text)
    dup, dup_chars = duplicates(lines)
    check("dup_line_frac", dup / len(lines), cfg.dup_line_frac)
    check("dup_line_char_frac", dup_chars / n_chars, cfg.dup_line_char_frac)

    words = split_words(text)
    # "fraction of characters in the most common n-gram", n = 2, 3, 4
    for n, signal in TOP_NGRAM_SIGNALS.items():
        chars = top_ngram_chars(words, n)
        check(signal, None if chars is None else chars / n_chars, cfg.top_ngram_char_frac.get(n))
    # "fraction of characters in duplicated n-grams", n = 5, ..., 10
    for n, signal in DUP_NGRAM_SIGNALS.items():
        check(signal, duplicated_ngram_chars(words, n) / n_chars, cfg.dup_ngram_char_frac.get(n))
    return reasons

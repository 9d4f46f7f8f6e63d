"""C4 page rules (Raffel et al. 2020, "Exploring the Limits of Transfer Learning with a Unified
Text-to-Text Transformer", section 2.2), as pure functions over one document.

The paper keeps only lines that end in terminal punctuation and have at least 3 words, and drops a page
with fewer than 5 sentences, with "lorem ipsum", or with a curly bracket; lines mentioning Javascript
and (in TFDS's c4_utils.py) cookie/terms-of-use boilerplate are removed, as are lines holding a word over
1000 characters. TFDS's code swaps the two numbers (`_MIN_WORDS_PER_LINE = 5`, `_MIN_NUM_SENTENCES = 3`);
we follow the paper's text, as datatrove does, and both are configurable.

The line rules are English rules (the "terminal punctuation" of the paper is ``. ? ! "``); mC4 dropped
them for its 101 languages (Xue et al. 2021). They run only on the languages in ``C4Config.languages``.
This stage stores the signals; it does not rewrite the text with the kept lines.

``c4_reference`` applies the rules as the paper (and TFDS's ``c4_utils.clean_page``) states them, a
line at a time; the pipeline computes the same signals with ``fast.c4_signals`` and judges them
with ``rules.C4_RULES``, and a test holds both to the same decisions on real documents.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from functools import lru_cache

from ouroboros.transforms.base import StrictModel
from ouroboros.transforms.quality.gopher import TERMINAL_PUNCTUATION
from ouroboros.transforms.quality.rules import C4_RULES, above, below, format_value, judge
from ouroboros.transforms.quality.words import tokenize_chunk
from pydantic import Field

CITATION = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
POLICY_SUBSTRINGS = ("terms of use", "privacy policy", "cookie policy", "uses cookies",
                     "use of cookies", "use cookies")
POLICY = re.compile("|".join(map(re.escape, POLICY_SUBSTRINGS)))


class C4Config(StrictModel):
    """Rules and thresholds of Raffel et al. 2020, section 2.2 (C4)."""

    enabled: bool = Field(True, description="run the C4 rules")
    languages: tuple[str, ...] = Field(
        ("en",), description="languages the C4 rules apply to (they are English rules); empty = all")
    min_num_sentences: int | None = Field(
        5, ge=0, description="pages with fewer sentences (after line filtering) are dropped")
    min_words_per_line: int = Field(3, ge=0, description="lines with fewer words are removed")
    max_word_length: int | None = Field(
        1000, ge=1, description="lines with a longer word are removed (TFDS c4_utils.py)")
    end_punctuation: tuple[str, ...] = Field(
        (".", "?", "!", '"', "'"),
        description="a kept line ends with one of these (period, ?, !, or an end quotation mark)")
    remove_citations: bool = Field(True, description="strip [1], [edit], [citation needed] first")
    filter_lorem_ipsum: bool = Field(True, description="drop pages with 'lorem ipsum'")
    filter_javascript: bool = Field(True, description="remove lines mentioning javascript")
    filter_curly_bracket: bool = Field(True, description="drop pages with a curly bracket")
    filter_policy: bool = Field(True, description="remove cookie/terms-of-use/privacy lines")


# spaCy's sentencizer (which datatrove uses to count C4 sentences) ends sentences at the Unicode
# Sentence_Terminal marks of an older Unicode version: these later ones are not among them.
_NOT_SENTENCIZER_PUNCT = frozenset(
    "\u061d\u061e\u0837\u0839\u083d\u083e\u17d4\u17d5\u1b4e\u1b4f\u1b7d\u1b7e\u1b7f\u2024"
    "\u2cf9\u2cfa\u2cfb\u2e53\u2e54\u2e60\u2e61\ufe12\ufe15\ufe16\U00010f55\U00010f56"
    "\U00010f57\U00010f58\U00010f59\U00010f86\U00010f87\U00010f88\U00010f89\U000113d4"
    "\U000113d5\U00011944\U00011946\U00011ef7\U00011ef8\U00011f43\U00011f44\U00016d6e"
    "\U00016d6f\U00016e98")
SENTENCE_END = TERMINAL_PUNCTUATION - _NOT_SENTENCIZER_PUNCT


@lru_cache(maxsize=4096)
def is_punctuation(token: str) -> bool:
    """Every character is Unicode punctuation (spaCy's ``is_punct``)."""
    return all(unicodedata.category(c).startswith("P") for c in token)


def c4_reasons(signals: Mapping[str, float | None], cfg: C4Config) -> list[str]:
    """The failing C4 page rules (``rules.C4_RULES``)."""
    return judge(C4_RULES, signals, cfg)


def sentence_tokens(line: str) -> list[str]:
    """The tokens spaCy makes of a line, whitespace tokens included: a leading whitespace run is a
    token, and so is a later run unless it is one plain space (which belongs to the token before)."""
    tokens: list[str] = []
    for k, piece in enumerate(p for p in re.split(r"(\s+)", line) if p):
        if piece.isspace():
            if piece != " " or k == 0:
                tokens.append(piece)
        else:
            tokens += tokenize_chunk(piece)
    return tokens


def count_sentences_reference(line: str) -> int:
    """Sentences in a line by the rule of spaCy's sentencizer (which datatrove's C4 filter uses):
    a sentence starts at the first token after a sentence-final mark that is not punctuation."""
    if not line:
        return 0
    count, after_mark = 1, False
    for token in sentence_tokens(line):
        if token in SENTENCE_END:
            after_mark = True
        elif after_mark and not is_punctuation(token):
            count += 1
            after_mark = False
    return count


def c4_line(raw: str, cfg: C4Config) -> tuple[str | None, bool, bool]:
    """C4's line rules on one line, in order: (the line if kept, else None; it raised the "lorem
    ipsum" flag; it raised the curly-bracket flag). A rule that removes the line ends the checks."""
    line = raw.strip()
    words = line.split()  # the word rules look at the line before citation removal
    if cfg.remove_citations:  # Wikipedia citation markers go first
        line = CITATION.sub("", line)
    # "we only retained lines that ended in a terminal punctuation mark" (not an ellipsis)
    if not line.endswith(tuple(cfg.end_punctuation)) or line.endswith("..."):
        return None, False, False
    # "we discarded any page with fewer than 3 words" (per line, as C4 does)
    if len(words) < cfg.min_words_per_line:
        return None, False, False
    # lines with a word over 1,000 characters (TFDS)
    if above(max(map(len, words), default=0), cfg.max_word_length):
        return None, False, False
    low = line.lower()
    # "we removed any page that contained the phrase 'lorem ipsum'"
    lorem = "lorem ipsum" in low
    if lorem and cfg.filter_lorem_ipsum:
        return None, True, False
    # "we removed any line with the word Javascript"
    if cfg.filter_javascript and "javascript" in low:
        return None, lorem, False
    # "we removed any pages that contained a curly bracket"
    curly = "{" in line
    if curly and cfg.filter_curly_bracket:
        return None, lorem, True
    # cookie, privacy and terms-of-use notices (TFDS)
    if cfg.filter_policy and POLICY.search(low):
        return None, lorem, curly
    return line, lorem, curly


def c4_reference(text: str, cfg: C4Config) -> list[str]:
    """The C4 rules over one English page, a line at a time, as the paper states them."""
    sentences = 0
    lorem = curly = False
    for raw in text.splitlines():
        kept, line_lorem, line_curly = c4_line(raw, cfg)
        lorem, curly = lorem or line_lorem, curly or line_curly
        if kept is not None:
            sentences += count_sentences_reference(kept)
    reasons = []
    if cfg.filter_lorem_ipsum and lorem:
        reasons.append("c4:c4_lorem_ipsum=1")
    if cfg.filter_curly_bracket and curly:
        reasons.append("c4:c4_curly_bracket=1")
    # "we discarded any page with fewer than 5 sentences"
    if below(sentences, cfg.min_num_sentences):
        reasons.append(f"c4:c4_sentences={format_value(sentences)}")
    return reasons

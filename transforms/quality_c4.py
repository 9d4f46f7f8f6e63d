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
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Any

from ouroboros.transforms.base import StrictModel
from ouroboros.transforms.quality_gopher import TERMINAL_PUNCTUATION, _fmt
from ouroboros.transforms.quality_words import tokenize_chunk, trim_cache
from pydantic import Field

CITATION = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
POLICY_SUBSTRINGS = ("terms of use", "privacy policy", "cookie policy", "uses cookies",
                     "use of cookies", "use cookies")
_POLICY = re.compile("|".join(map(re.escape, POLICY_SUBSTRINGS)))


class C4Config(StrictModel):
    """Rules and thresholds of Raffel et al. 2020, section 2.2 (C4)."""

    enabled: bool = Field(True, description="run the C4 rules")
    languages: tuple[str, ...] = Field(
        ("en",), description="languages the C4 rules apply to (they are English rules); empty = all")
    min_num_sentences: int | None = Field(
        5, description="pages with fewer sentences (after line filtering) are dropped")
    min_words_per_line: int = Field(3, description="lines with fewer words are removed")
    max_word_length: int | None = Field(
        1000, description="lines with a longer word are removed (TFDS c4_utils.py)")
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
_WHITESPACE_RUN = re.compile(r"(\s+)")


@lru_cache(maxsize=4096)
def _is_punct(token: str) -> bool:
    return all(unicodedata.category(c).startswith("P") for c in token)


def count_sentences(line: str) -> int:
    """Sentences in a stripped line, by the rule of spaCy's sentencizer over spaCy's tokens.

    A new sentence starts at the first token after a sentence-final mark that is not itself
    punctuation. As in spaCy, whitespace at the start of the line and a run of whitespace other
    than one plain space between chunks are tokens too (citation removal can leave both).
    """
    if not line:
        return 0
    if line.isprintable() and "  " not in line and line[0] != " " and line[-1] != " ":
        pieces = line.split(" ")  # the common case: chunks separated by one plain space
    else:
        parts = _WHITESPACE_RUN.split(line)
        # a leading whitespace run is a token; a later one is unless it is one plain space
        pieces = [p for k, p in enumerate(parts) if p and (p != " " or (k == 1 and not parts[0]))]
    count = 1
    seen_end = False
    steps = _STEPS
    for piece in pieces:
        step = steps.get(piece)
        if step is None:
            step = _sentence_step(piece)
        if seen_end:
            count += step[2]
            seen_end = step[3]
        else:
            count += step[0]
            seen_end = step[1]
    return count


_STEPS: dict[str, tuple[int, bool, int, bool]] = {}


def _sentence_step(piece: str) -> tuple[int, bool, int, bool]:
    """What one chunk (or whitespace token) does to the sentencizer, from either state:
    (new sentences, ends on a mark) without and with a sentence-final mark before it."""
    if len(_STEPS) >= 200_000:
        _STEPS.clear()
    trim_cache()
    if SENTENCE_END.isdisjoint(piece):  # no mark: only the first non-punctuation token counts
        if _is_punct(piece):  # all its tokens are punctuation: the state passes through
            out = _STEPS[piece] = (0, False, 0, True)
        else:  # a token with a non-punctuation character starts a sentence after a mark
            out = _STEPS[piece] = (0, False, 1, False)
        return out
    tokens = (piece,) if piece[0].isspace() else tokenize_chunk(piece)
    step: list[int | bool] = []
    for seen_end in (False, True):
        new = 0
        for tok in tokens:
            if tok in SENTENCE_END:
                seen_end = True
            elif seen_end and not _is_punct(tok):
                new += 1
                seen_end = False
        step += [new, seen_end]
    out = _STEPS[piece] = (int(step[0]), bool(step[1]), int(step[2]), bool(step[3]))
    return out


def c4_signals(text: str, cfg: C4Config) -> dict[str, float]:
    """C4 signal values: sentences in kept lines, share of lines removed, page-level flags."""
    sentences = removed = total = 0
    lorem = curly = False
    end = tuple(cfg.end_punctuation)
    for raw in text.splitlines():
        line = raw.strip()
        total += 1
        words = line.split()
        if (cfg.max_word_length is not None and len(line) > cfg.max_word_length
                and max(map(len, words)) > cfg.max_word_length):
            removed += 1
            continue
        if cfg.remove_citations:
            line = CITATION.sub("", line)
        if not line.endswith(end) or line.endswith("..."):
            removed += 1
            continue
        if len(words) < cfg.min_words_per_line:
            removed += 1
            continue
        low = line.lower()
        if "lorem ipsum" in low:
            lorem = True
            if cfg.filter_lorem_ipsum:
                removed += 1
                continue
        if cfg.filter_javascript and "javascript" in low:
            removed += 1
            continue
        if "{" in line:
            curly = True
            if cfg.filter_curly_bracket:
                removed += 1
                continue
        if cfg.filter_policy and _POLICY.search(low):
            removed += 1
            continue
        sentences += count_sentences(line)
    return {
        "c4_sentences": float(sentences),
        "c4_lines_removed_ratio": removed / total if total else 0.0,
        "c4_lorem_ipsum": float(lorem),
        "c4_curly_bracket": float(curly),
    }


def c4_reasons(s: dict[str, Any], cfg: C4Config) -> list[str]:
    out = []
    if cfg.filter_lorem_ipsum and s["c4_lorem_ipsum"]:
        out.append("c4:c4_lorem_ipsum=1")
    if cfg.filter_curly_bracket and s["c4_curly_bracket"]:
        out.append("c4:c4_curly_bracket=1")
    if cfg.min_num_sentences is not None and s["c4_sentences"] < cfg.min_num_sentences:
        out.append(f"c4:c4_sentences={_fmt(s['c4_sentences'])}")
    return out

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
from ouroboros.transforms.quality.gopher import TERMINAL_PUNCTUATION, _fmt
from ouroboros.transforms.quality.words import _char_class, tokenize_chunk, trim_cache
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
_WHITESPACE_RUN = re.compile(r"(\s+)")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]").search  # beyond the Basic Multilingual Plane


@lru_cache(maxsize=4096)
def _is_punct(token: str) -> bool:
    return all(unicodedata.category(c).startswith("P") for c in token)


def count_sentences(line: str) -> int:
    """Sentences in a stripped line, by the rule of spaCy's sentencizer over spaCy's tokens.

    A new sentence starts at the first token after a sentence-final mark that is not itself
    punctuation. As in spaCy, whitespace at the start of the line and a run of whitespace other
    than one plain space between chunks are tokens too (citation removal can leave both).
    Each chunk is reduced once to a short string of token classes (see ``_Classes``); the line's
    sentences are then one plus the times a mark ("E") is followed by a non-punctuation token ("W").
    """
    if not line:
        return 0
    # the common case: chunks separated by one plain space, all in the Basic Multilingual Plane
    if (line.isprintable() and "  " not in line and line[0] != " " and line[-1] != " "
            and (line.isascii() or not _ASTRAL(line))):
        return 1 + _spaced_line_classes(line).count("EW")
    parts = _WHITESPACE_RUN.split(line)
    # a leading whitespace run is a token; a later one is unless it is one plain space
    pieces = [p for k, p in enumerate(parts) if p and (p != " " or (k == 1 and not parts[0]))]
    return 1 + "".join(map(_CLASSES.__getitem__, pieces)).count("EW")


def _spaced_line_classes(line: str) -> str:
    """The token classes of a line of chunks separated by single spaces, looking only at the chunks
    that hold a sentence-final mark: the chunks between two of them are "W" together if one of them
    has a character that is not punctuation, else nothing."""
    out: list[str] = []
    pos = 0
    find, rfind = line.find, line.rfind
    has_word = _patterns_c4()["non_punct"].search
    for m in _patterns_c4()["mark"].finditer(line):
        i = m.start()
        if i < pos:  # another mark of the chunk just handled
            continue
        start = rfind(" ", 0, i) + 1
        end = find(" ", i)
        if end < 0:
            end = len(line)
        if start > pos and has_word(line, pos, start):
            out.append("W")
        out.append(_CLASSES[line[start:end]])
        pos = end
    if pos < len(line) and has_word(line, pos):
        out.append("W")
    return "".join(out)


@lru_cache(maxsize=1)
def _patterns_c4() -> dict[str, re.Pattern]:
    """A sentence-final mark; a character that is neither punctuation nor a space (built once).
    Basic Multilingual Plane only: a class with higher code points makes ``re`` many times slower,
    so a line with such a character takes the general path."""
    bmp = range(0x10000)
    punct = [c for c in bmp if unicodedata.category(chr(c)).startswith("P")]
    marks = sorted(c for c in map(ord, SENTENCE_END) if c in bmp)
    return {"mark": re.compile(f"[{_char_class(marks)}]"),
            "non_punct": re.compile(f"[^ {_char_class(punct)}]")}


class _Classes(dict):
    """Chunk (or whitespace token) -> its tokens' classes, punctuation left out: "E" a
    sentence-final mark, "W" a token that is not punctuation; runs of one class are kept as one
    letter ("EEW" and "EW" start the same one sentence). Filled on first sight of a chunk."""

    limit = 200_000

    def __missing__(self, piece: str) -> str:
        if len(self) >= self.limit:
            self.clear()
        if piece.isalnum():  # the common case: a word (no mark is a letter or digit)
            out = "W"
        elif SENTENCE_END.isdisjoint(piece):  # no mark: one class unless all punctuation
            out = "" if _is_punct(piece) else "W"
        else:
            trim_cache()
            tokens = (piece,) if piece[0].isspace() else tokenize_chunk(piece)
            out = ""
            for tok in tokens:
                cls = "E" if tok in SENTENCE_END else "" if _is_punct(tok) else "W"
                if cls and not out.endswith(cls):
                    out += cls
        self[piece] = out
        return out


_CLASSES = _Classes()


def c4_signals(text: str, cfg: C4Config, *, lines: list[str] | None = None) -> dict[str, float]:
    """C4 signal values: sentences in kept lines, share of lines removed, page-level flags.

    ``lines`` (``text.splitlines()``) may be passed in when the caller already has them.
    """
    sentences = removed = 0
    lorem = curly = False
    end = tuple(cfg.end_punctuation)
    if lines is None:
        lines = text.splitlines()
    max_word, min_words = cfg.max_word_length, cfg.min_words_per_line
    for raw in lines:
        stripped = line = raw.strip()
        # the three line-removal rules below have no other effect, so the cheapest goes first
        if cfg.remove_citations and "[" in line:
            line = CITATION.sub("", line)
        if not line.endswith(end) or line.endswith("..."):
            removed += 1
            continue
        words = stripped.split()  # the word rules look at the line before citation removal
        if len(words) < min_words or (max_word is not None and len(stripped) > max_word
                                      and max(map(len, words)) > max_word):
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
        "c4_lines_removed_ratio": removed / len(lines) if lines else 0.0,
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

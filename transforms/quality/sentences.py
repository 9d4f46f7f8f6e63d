"""C4's sentence count, fast: spaCy's sentencizer rule over spaCy's tokens without building them.

``c4.count_sentences_reference`` states the rule token by token; ``count_sentences`` here gives the
same count (a test checks both on generated lines) by reducing each whitespace-separated chunk once
to a short string of token classes, cached per chunk, and by looking only at the chunks that hold a
sentence-final mark when the line is plain.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from ouroboros.transforms.quality.c4 import SENTENCE_END, is_punctuation
from ouroboros.transforms.quality.words import char_class, tokenize_chunk, trim_cache

_WHITESPACE_RUN = re.compile(r"(\s+)")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]").search  # beyond the Basic Multilingual Plane


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
    return {"mark": re.compile(f"[{char_class(marks)}]"),
            "non_punct": re.compile(f"[^ {char_class(punct)}]")}


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
            out = "" if is_punctuation(piece) else "W"
        else:
            trim_cache()
            tokens = (piece,) if piece[0].isspace() else tokenize_chunk(piece)
            out = ""
            for tok in tokens:
                cls = "E" if tok in SENTENCE_END else "" if is_punctuation(tok) else "W"
                if cls and not out.endswith(cls):
                    out += cls
        self[piece] = out
        return out


_CLASSES = _Classes()

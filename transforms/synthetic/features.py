"""Text preparation shared by the synthetic scorer, its gate and its training data.

- :func:`normalize`: whitespace collapsed, typography folded, cut to ``MAX_CHARS``. Layout and curly
  quotes say how a corpus was stored and processed, not who wrote the text (in the DetectGPT data
  every human text is one line and ASCII-fied, every machine text has paragraphs and curly quotes).
- :func:`strip_markup`: Markdown and list markup removed, the formatting-blind view: chat models
  answer in Markdown lists, human web text in a corpus rarely keeps its markup, so a classifier that
  sees markup learns "Markdown = machine" (``alpaca_eval``'s lists are machine-only).
- :func:`function_word_rate`: the cheap "is this English prose" check of the scorer's gate when no
  language ID ran.

The v1 scorer's hand-made signals (stylometry, word-frequency, phrase-book compression, repetition)
are gone with it: added to the v2 n-gram model as features, the repetition and compressibility
signals lowered held-out-source AUROC (l2r 0.833 -> 0.824, mgtbench 0.929 -> 0.920), and v1 had
found the others flipping direction on unseen generators and on human web text.
"""

from __future__ import annotations

import re

_WS = re.compile(r"\s+")
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*|\d+(?:[.,]\d+)*")

# Function words of English (Gopher's stop-word list plus the commonest others): their share of the
# words is the cheap "is this English prose" check used when no language ID ran.
ENGLISH_FUNCTION_WORDS = frozenset(
    ["the", "be", "to", "of", "and", "that", "have", "with", "a", "an", "in", "is", "it", "for", "not", "on", "as", "you", "he", "she", "at", "by", "this", "we", "they", "but", "from", "or", "his", "her", "was", "were", "are", "been", "has", "had", "will", "would", "there", "their", "what", "so", "if", "about", "which", "when", "one", "can", "all", "my", "your", "me", "him", "them", "who", "its", "our", "do", "does", "did", "no", "more", "than", "then", "also", "into"])

MAX_CHARS = 6000

# Typographic punctuation folded to ASCII, and mojibake/replacement debris removed: whether quotes
# are curly depends on the editor, the site and the corpus's processing, not on who wrote the text
# (in the DetectGPT data the human side was ASCII-fied and the machine side was not).
_TYPOGRAPHY = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
    "\u00ab": '"', "\u00bb": '"', "\u2013": "-", "\u2014": "-", "\u2012": "-", "\u2015": "-",
    "\u2212": "-", "\u2026": "...", "\u00a0": " ", "\u00c2": None, "\ufffd": None,
})


def normalize(text: str, max_chars: int = MAX_CHARS) -> str:
    """Whitespace collapsed to single spaces: layout is a property of storage, not of authorship.

    Only the first ``max_chars`` characters are kept: a document is judged on its opening, so the
    cost per document is bounded whatever its length.
    """
    return _WS.sub(" ", text[: max_chars * 2].translate(_TYPOGRAPHY)).strip()[:max_chars]


# Markdown and list markup, found at the start of a line or around a phrase. Chat models format
# answers as Markdown lists; human web text in a corpus rarely keeps its markup. A classifier that
# sees the markup learns "Markdown = machine" (alpaca_eval's lists are machine-only), so the
# n-gram view never sees it.
_MD_LINE = re.compile(r"^[ \t]*(?:#{1,6}[ \t]+|>[ \t]?|[-*+\u2022\u00b7\u25aa\u2013\u2014][ \t]+|"
                      r"\(?\d{1,3}[.):][ \t]+|\(?[a-zA-Z][.)][ \t]+)", re.MULTILINE)
_MD_RULE = re.compile(r"^[ \t]*(?:[-*_=][ \t]*){3,}$|^[ \t]*\|?[ \t]*:?-{3,}.*$", re.MULTILINE)
_MD_EMPHASIS = re.compile(r"(\*\*|__|\*|`+)(?=\S)(.+?)(?<=\S)\1")
_MD_PIPE = re.compile(r"[ \t]*\|[ \t]*")


def strip_markup(text: str) -> str:
    """The text without Markdown headers, list bullets and numbers, emphasis, code ticks, rules
    and table pipes (a formatting-blind view: who wrote a text, not how it was laid out)."""
    text = _MD_RULE.sub("", text)
    text = _MD_LINE.sub("", text)
    text = _MD_EMPHASIS.sub(r"\2", text)
    return _MD_PIPE.sub(" ", text)


def words(text: str) -> list[str]:
    return _WORD.findall(text)


def function_word_rate(ws: list[str]) -> float:
    if not ws:
        return 0.0
    return sum(1 for w in ws if w.lower() in ENGLISH_FUNCTION_WORDS) / len(ws)

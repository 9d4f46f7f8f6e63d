"""Signals that tell machine-written text from human text, as pure functions of one text.

Each signal is chosen because it transfers across generators and domains rather than memorising
one model's vocabulary:

- *compression against reference phrase books* (the idea behind ZipPy, Thinkst 2023): a text
  compresses better with a preset dictionary of phrases typical of machine text than with one of
  phrases typical of human text when it is machine-written. The dictionaries are phrase books
  (frequent word n-grams seen in many documents), not documents, so no training text ships.
- *unigram likelihood*: language models sample high-probability words, so machine text has a higher
  and more uniform word frequency (a cheap, model-free proxy for the perplexity signal of
  DetectGPT, Mitchell et al. 2023; GLTR, Gehrmann et al. 2019).
- *stylometry*: sentence-length burstiness, lexical diversity, repetition, punctuation habits and the
  rate of phrases that chat models over-use (Kobak et al. 2024, "Delving into ChatGPT usage").

The default model's combiner uses three of the repetition signals (:func:`repetition`,
``REPETITION_SIGNALS``; ``synthetic_train.SIGNAL_NAMES`` says which and why): on held-out generators,
domains and human web sources the word-frequency, function-word, punctuation and phrase-book signals
flipped direction; they stay here for models trained on data where they hold. The fastText
classifier reads :func:`masked_line`, the text with its topic words replaced by frequency classes.

All functions take text already passed through :func:`normalize`, because whitespace layout is an
artefact of how a corpus was stored (in the DetectGPT data every human text is one line and every
machine text has paragraphs), not of who wrote it.
"""

from __future__ import annotations

import math
import re
import zlib
from collections import Counter
from functools import lru_cache

_WS = re.compile(r"\s+")
_DIGIT = re.compile(r"\d")
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*|\d+(?:[.,]\d+)*")
_TOKEN = re.compile(r"[^\W_]+(?:['’][^\W_]+)*|[^\w\s]")
_SENT_END = re.compile(r"(?<=[.!?])[\"'”’)]*\s+(?=[\"'“‘(]*[A-Z0-9])")

# Function words of English (Gopher's stop-word list plus the commonest others): their share of the
# words is the cheap "is this English prose" check used when no language ID ran.
ENGLISH_FUNCTION_WORDS = frozenset(
    ["the", "be", "to", "of", "and", "that", "have", "with", "a", "an", "in", "is", "it", "for", "not", "on", "as", "you", "he", "she", "at", "by", "this", "we", "they", "but", "from", "or", "his", "her", "was", "were", "are", "been", "has", "had", "will", "would", "there", "their", "what", "so", "if", "about", "which", "when", "one", "can", "all", "my", "your", "me", "him", "them", "who", "its", "our", "do", "does", "did", "no", "more", "than", "then", "also", "into"])

# Phrases chat-tuned models over-use (Kobak et al. 2024; Liang et al. 2024 "Monitoring AI-modified
# content at scale"): a rate per 100 words, not a verdict.
CHAT_PHRASES = (
    "delve", "delves", "delving", "tapestry", "testament to", "intricate", "underscore",
    "underscores", "showcasing", "pivotal", "realm", "meticulous", "meticulously", "commendable",
    "notably", "furthermore", "moreover", "additionally", "in conclusion", "overall,",
    "it is important to note", "it's important to note", "it is worth noting", "plays a crucial role",
    "crucial role", "a significant role", "navigate", "navigating", "landscape", "multifaceted",
    "comprehensive", "fostering", "foster", "enhance", "enhancing", "leverage", "leveraging",
    "seamless", "seamlessly", "robust", "vibrant", "ever-evolving", "in today's", "paramount",
    "invaluable", "embark", "unwavering", "holistic", "nuanced", "elevate", "resonate", "boast",
    "as an ai", "i hope this", "in summary", "firstly", "lastly",
)
_CHAT_RE = re.compile(r"(?<![\w-])(?:" + "|".join(re.escape(p) for p in CHAT_PHRASES) + r")(?![\w-])")

# Length itself is left out: it says how a corpus was cut, not who wrote the text.
FEATURE_NAMES: tuple[str, ...] = (
    "mean_sentence_words", "sentence_length_cv", "type_token_ratio_100",
    "hapax_ratio_100", "dup_3gram_frac", "mean_word_length", "comma_rate", "quote_rate",
    "paren_rate", "colon_semicolon_rate", "dash_rate", "digit_rate", "capitalized_rate",
    "function_word_rate", "chat_phrase_rate", "zipf_mean", "zipf_std", "zipf_rare_frac",
    "oov_rate", "self_compression", "compression_delta",
)


MAX_CHARS = 6000
SELF_COMPRESSION_BYTES = 1000

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


def words(text: str) -> list[str]:
    return _WORD.findall(text)


FASTTEXT_MAX_TOKENS = 512


def fasttext_line(text: str) -> str:
    """The form the fastText classifier sees: lower case, punctuation as its own tokens.

    Capped at ``FASTTEXT_MAX_TOKENS`` tokens: a long document is judged on its opening, which keeps
    scoring time bounded and avoids the NaN training failures very long lines provoke in fastText.
    """
    return " ".join(_TOKEN.findall(text.lower())[:FASTTEXT_MAX_TOKENS])


MASK_KEEP_ZIPF = 5.0  # the ~1,100 commonest English words stay themselves


def masked_line(text: str, keep_zipf: float = MASK_KEEP_ZIPF) -> str:
    """The text with its topic removed: common words and punctuation stay, every other word becomes
    its frequency class (``_z4`` = Zipf 4-5, ..., ``_oov``), numbers become ``_num``.

    A classifier on this view learns syntax and word-choice habits (how predictable the words a
    writer picks are, GLTR's observation, in their context of function words) instead of the topics
    and names of its training corpus, which is what made the plain word model call every web page
    of an unseen kind "machine" (text distortion, Stamatatos 2017, for the same reason in
    authorship attribution).
    """
    table = zipf_table()
    out = []
    for tok in _TOKEN.findall(text.lower())[:FASTTEXT_MAX_TOKENS]:
        if not tok[0].isalnum():
            out.append(tok)
        elif tok[0].isdigit():
            out.append("_num")
        else:
            z = table.get(tok)
            out.append("_oov" if z is None else tok if z >= keep_zipf else f"_z{int(z)}")
    return " ".join(out)


def function_word_rate(ws: list[str]) -> float:
    if not ws:
        return 0.0
    return sum(1 for w in ws if w.lower() in ENGLISH_FUNCTION_WORDS) / len(ws)


def sentence_lengths(text: str) -> list[int]:
    return [n for n in (len(_WORD.findall(s)) for s in _SENT_END.split(text)) if n > 0]


@lru_cache(maxsize=1)
def zipf_table() -> dict[str, float]:
    """English word -> Zipf frequency (log10 per billion words), from wordfreq's bundled list."""
    import wordfreq

    return {w: math.log10(f) + 9.0 for w, f in wordfreq.get_frequency_dict("en", wordlist="best").items()}


def stylometry(text: str, ws: list[str]) -> dict[str, float]:
    """Stylometric signals of a normalized text (see the module docstring for why each is here)."""
    n = max(len(ws), 1)
    lower = [w.lower() for w in ws]
    sents = sentence_lengths(text) or [len(ws)]
    mean_s = sum(sents) / len(sents)
    var_s = sum((s - mean_s) ** 2 for s in sents) / len(sents)
    head = lower[:100]
    head_counts = Counter(head)
    trigrams = list(zip(lower, lower[1:], lower[2:]))
    tri_counts = Counter(trigrams)
    dup_tri = sum(c for c in tri_counts.values() if c > 1) / max(len(trigrams), 1)
    zipf = zipf_table()
    freqs = [zipf.get(w) for w in lower if not w.isdigit()]
    known = [f for f in freqs if f is not None]
    z_mean = sum(known) / len(known) if known else 0.0
    z_std = math.sqrt(sum((f - z_mean) ** 2 for f in known) / len(known)) if known else 0.0
    chars = max(len(text), 1)
    return {
        "log_words": math.log1p(len(ws)),
        "mean_sentence_words": mean_s,
        "sentence_length_cv": math.sqrt(var_s) / mean_s if mean_s else 0.0,
        "type_token_ratio_100": len(head_counts) / max(len(head), 1),
        "hapax_ratio_100": sum(1 for c in head_counts.values() if c == 1) / max(len(head), 1),
        "dup_3gram_frac": dup_tri,
        "mean_word_length": sum(len(w) for w in ws) / n,
        "comma_rate": text.count(",") / n,
        "quote_rate": text.count('"') / n,
        "paren_rate": text.count("(") / n,
        "colon_semicolon_rate": (text.count(":") + text.count(";")) / n,
        "dash_rate": (text.count(" - ") + text.count("--")) / n,
        "digit_rate": len(_DIGIT.findall(text)) / chars,
        "capitalized_rate": sum(1 for w in ws if w[:1].isupper()) / n,
        "function_word_rate": function_word_rate(ws),
        "chat_phrase_rate": 100.0 * len(_CHAT_RE.findall(text.lower())) / n,
        "zipf_mean": z_mean,
        "zipf_std": z_std,
        "zipf_rare_frac": sum(1 for f in known if f < 3.0) / max(len(known), 1),
        "oov_rate": (len(freqs) - len(known)) / max(len(freqs), 1),
    }


@lru_cache(maxsize=8)
def _primed_deflater(zdict: bytes | None):
    # Raw deflate (no header) so the sizes differ only by how well the dictionary helps.
    return zlib.compressobj(6, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY,
                            **({"zdict": zdict} if zdict else {}))


def _deflated_size(data: bytes, zdict: bytes | None) -> int:
    # A copy of a compressor already primed with the dictionary: the same output as a fresh one,
    # without re-indexing 32 kB of dictionary for every document.
    comp = _primed_deflater(zdict).copy()
    return len(comp.compress(data)) + len(comp.flush())


def compression(text: str, machine_dict: bytes, human_dict: bytes) -> dict[str, float]:
    """ZipPy's idea with deflate preset dictionaries: how much more a machine phrase book helps.

    ``compression_delta`` > 0 when the text compresses better against the machine phrase book than
    against the human one; ``self_compression`` is the plain ratio of the first
    ``SELF_COMPRESSION_BYTES`` (repetitive text compresses well; a fixed window, because over the
    whole text the ratio mostly measures length, which says how a corpus was cut, not who wrote it).
    """
    data = text.encode("utf-8")
    size = max(len(data), 1)
    machine = _deflated_size(data, machine_dict)
    human = _deflated_size(data, human_dict)
    head = data[:SELF_COMPRESSION_BYTES]
    return {
        "self_compression": _deflated_size(head, None) / max(len(head), 1),
        "compression_delta": (human - machine) / size,
    }


def feature_vector(text: str, machine_dict: bytes, human_dict: bytes) -> list[float]:
    """All hand-made signals of a normalized text, in ``FEATURE_NAMES`` order."""
    ws = words(text)
    feats = stylometry(text, ws)
    feats.update(compression(text, machine_dict, human_dict))
    return [feats[name] for name in FEATURE_NAMES]


def repetition(text: str, ws: list[str]) -> dict[str, float]:
    """The repetition and compressibility signals alone (``REPETITION_SIGNALS``), cheaply.

    These are the signals whose direction held on every held-out generator and domain of
    ``bench/synthetic_eval.py`` (machine text repeats itself more: lower type-token and hapax
    ratios, more repeated trigrams, better plain compression), including ChatGPT-style essays,
    on which word-frequency and function-word signals flip sign relative to base-model text.
    """
    lower = [w.lower() for w in ws]
    head = lower[:100]
    head_counts = Counter(head)
    trigrams = list(zip(lower, lower[1:], lower[2:]))
    tri_counts = Counter(trigrams)
    data = text.encode("utf-8")[:SELF_COMPRESSION_BYTES]
    return {
        "type_token_ratio_100": len(head_counts) / max(len(head), 1),
        "hapax_ratio_100": sum(1 for c in head_counts.values() if c == 1) / max(len(head), 1),
        "dup_3gram_frac": sum(c for c in tri_counts.values() if c > 1) / max(len(trigrams), 1),
        "self_compression": _deflated_size(data, None) / max(len(data), 1),
    }


REPETITION_SIGNALS: tuple[str, ...] = (
    "type_token_ratio_100", "hapax_ratio_100", "dup_3gram_frac", "self_compression",
)
PHRASE_BOOK_SIGNALS = frozenset({"compression_delta"})


def named_signals(text: str, names: tuple[str, ...] | list[str], machine_dict: bytes | None = None,
                  human_dict: bytes | None = None) -> list[float]:
    """The hand-made signals ``names`` of a normalized text, computing only what they need."""
    ws = words(text)
    if set(names) <= set(REPETITION_SIGNALS):
        feats = repetition(text, ws)
    else:
        feats = stylometry(text, ws)
        if PHRASE_BOOK_SIGNALS & set(names) or "self_compression" in names:
            feats.update(compression(text, machine_dict or b"", human_dict or b""))
    return [feats[name] for name in names]


def phrase_book(texts: list[str], max_bytes: int = 32768, n_range: tuple[int, int] = (2, 4),
                min_docs: int = 3) -> bytes:
    """A deflate preset dictionary of word n-grams that recur across many of ``texts``.

    Only phrases found in at least ``min_docs`` different documents are kept, so the dictionary is
    a statistic of the corpus (its common phrasing), not a copy of any text. The commonest phrases
    go last, where deflate reaches them with the shortest distances.
    """
    doc_freq: Counter[str] = Counter()
    for text in texts:
        toks = text.split(" ")
        seen = set()
        for n in range(n_range[0], n_range[1] + 1):
            for i in range(len(toks) - n + 1):
                seen.add(" ".join(toks[i:i + n]))
        doc_freq.update(seen)
    ranked = sorted(((c * len(p), p) for p, c in doc_freq.items() if c >= min_docs), reverse=True)
    chosen: list[str] = []
    size = 0
    for _, phrase in ranked:
        cost = len(phrase.encode("utf-8")) + 1
        if size + cost > max_bytes:
            continue
        chosen.append(phrase)
        size += cost
    chosen.reverse()
    return (" ".join(chosen) + " ").encode("utf-8")

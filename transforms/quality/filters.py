"""The Quality stage: Gopher quality, Gopher repetition, C4 and FineWeb rules over one document.

Every signal value is stored in ``quality_signals`` (dolma's habit: scores are data, decisions can be
re-made later); ``quality_reasons`` lists every failing rule as ``rule:signal=value`` and the stage
rejects with the first one when filtering is on.

Language awareness (``language_aware=True``, the default) keeps English-only rules off other languages:

- stop words: English uses Gopher's eight words; another language uses its eight most frequent words
  from ``wordfreq`` (42 languages); a language wordfreq lacks, or one whose function words attach to the
  word (Korean), gets no stop-word rule (signal null).
- languages written without spaces between words (Chinese, Japanese, Thai, Lao, Khmer, Burmese,
  Tibetan): the word-count, mean-word-length, alphabetic-word and stop-word rules, Gopher's word n-gram repetition rules
  and FineWeb's newlines-per-word rule are not applied (their signals are null): a "word" there is a
  whole phrase. Line, paragraph, symbol and punctuation rules still apply.
- C4's line rules are English rules and run only on ``c4.languages`` (default English).

With ``language_aware=False`` every document is judged by the English rules, as datatrove does by
default; bench/quality_vs_datatrove.py uses that mode to compare decisions.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from ouroboros.schemas.record import QUALITY_SIGNALS
from ouroboros.transforms.base import StrictModel
from ouroboros.transforms.quality.c4 import C4Config, c4_reasons, c4_signals
from ouroboros.transforms.quality.fineweb import (
    FineWebConfig,
    fineweb_reasons,
    fineweb_signals,
    non_blank_lines,
)
from ouroboros.transforms.quality.gopher import (
    GOPHER_STOP_WORDS_EN,
    GopherQualityConfig,
    GopherRepetitionConfig,
    gopher_quality_reasons,
    gopher_quality_signals,
    gopher_repetition_reasons,
    gopher_repetition_signals,
    split_words,
    word_ids,
)
from pydantic import Field

# Languages (lid.176 codes) written without spaces between words.
NO_SPACE_LANGUAGES = frozenset({"zh", "ja", "th", "lo", "km", "my", "bo", "dz", "wuu", "yue"})
# Languages whose frequent function words are suffixes/prefixes, not separate words.
NO_STOP_WORD_LANGUAGES = NO_SPACE_LANGUAGES | {"ko"}
SIGNAL_NAMES = tuple(name for name, _ in QUALITY_SIGNALS)


class QualityConfig(StrictModel):
    """The quality stage: which rule families run, their thresholds, and whether to drop."""

    enabled: bool = Field(True, description="run the quality stage")
    filter: bool = Field(True, description="reject documents that fail a rule (else only annotate)")
    language_aware: bool = Field(
        True, description="keep English-only rules off other languages (see the module docstring)")
    default_language: str = Field(
        "en", description="language assumed when a document has none (language ID off)")
    stop_words_per_language: int = Field(
        8, ge=1, description="wordfreq's most frequent words used as stop words outside English")
    gopher_quality: GopherQualityConfig = GopherQualityConfig()
    gopher_repetition: GopherRepetitionConfig = GopherRepetitionConfig()
    c4: C4Config = C4Config()
    fineweb: FineWebConfig = FineWebConfig()


@cache
def stop_words_for(language: str, n: int = 8) -> frozenset[str] | None:
    """Gopher's stop words for English, wordfreq's ``n`` most frequent words elsewhere, or None."""
    if language == "en":
        return GOPHER_STOP_WORDS_EN
    if language in NO_STOP_WORD_LANGUAGES:
        return None
    import wordfreq

    if language not in wordfreq.available_languages():
        return None
    return frozenset(wordfreq.top_n_list(language, n))


def quality_signals_and_reasons(text: str, language: str | None,
                                cfg: QualityConfig) -> tuple[dict[str, float | None], list[str]]:
    """All enabled rule families over one text: (signals keyed by QUALITY_SIGNALS, failing rules)."""
    lang = (language or cfg.default_language) if cfg.language_aware else "en"
    spaced = lang not in NO_SPACE_LANGUAGES
    # The structures several families need, computed once: words and their numbers, lines.
    words = split_words(text)
    ids = word_ids(words)
    line_parts = text.split("\n")
    lines = non_blank_lines(line_parts)
    all_lines = text.splitlines()  # Gopher's and C4's lines (every line break, blank lines too)
    signals: dict[str, float | None] = dict.fromkeys(SIGNAL_NAMES)
    signals["n_chars"] = float(len(text))
    signals["n_lines"] = float(len(lines))
    reasons: list[str] = []

    gq = cfg.gopher_quality
    if gq.enabled:
        stops = stop_words_for(lang, cfg.stop_words_per_language)
        s = gopher_quality_signals(text, words, stops, ids=ids, lines=all_lines)
        skip = () if spaced else ("n_words", "mean_word_length", "alpha_words_ratio",
                                  "stop_words_count")
        for key in skip:
            s[key] = None
        signals.update(s)
        reasons += gopher_quality_reasons(s, gq, skip=skip)
    gr = cfg.gopher_repetition
    if gr.enabled:
        s = gopher_repetition_signals(text, words, ngrams=spaced, ids=ids,
                                      line_parts=line_parts)
        signals.update(s)
        reasons += gopher_repetition_reasons(s, gr)
    c4 = cfg.c4
    if c4.enabled and (not c4.languages or lang in c4.languages):
        s = c4_signals(text, c4, lines=all_lines)
        signals.update(s)
        reasons += c4_reasons(s, c4)
    fw = cfg.fineweb
    if fw.enabled:
        s = fineweb_signals(text, len(words) if spaced else None, fw, lines=lines)
        signals.update(s)
        reasons += fineweb_reasons(s, fw)
    return signals, reasons


def clear_caches() -> None:
    """Forget the per-chunk and per-word caches (a fresh worker's state; used by the benchmark).
    The word table is per thread: this clears the calling thread's."""
    from ouroboros.transforms.quality import c4 as quality_c4
    from ouroboros.transforms.quality import gopher as quality_gopher
    from ouroboros.transforms.quality import words as quality_words

    quality_words._CACHE.clear()
    quality_gopher._table().clear()
    quality_c4._CLASSES.clear()


class Quality:
    """Per-document stage: fills quality_signals, quality_pass, quality_reasons."""

    name = "quality"

    def __init__(self, config: QualityConfig | None = None):
        self.config = config or QualityConfig()

    def setup(self) -> None:
        # Load wordfreq's lists once per worker for the languages most likely to come.
        for lang in ("en", "de", "fr", "es"):
            stop_words_for(lang, self.config.stop_words_per_language)

    def process(self, doc: dict[str, Any]) -> str | None:
        signals, reasons = quality_signals_and_reasons(doc.get("text") or "", doc.get("language"),
                                                       self.config)
        doc["quality_signals"] = signals
        doc["quality_pass"] = not reasons
        doc["quality_reasons"] = reasons
        if reasons and self.config.filter:
            return reasons[0]
        return None

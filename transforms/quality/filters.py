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

from collections.abc import Mapping
from functools import cache
from typing import Any

from ouroboros.schemas.record import QUALITY_SIGNALS
from ouroboros.transforms.base import DocumentStage, StrictModel, Verdict
from ouroboros.transforms.quality import rules
from ouroboros.transforms.quality.c4 import C4Config
from ouroboros.transforms.quality.fast import (
    c4_signals,
    fineweb_signals,
    gopher_quality_signals,
    gopher_repetition_signals,
    non_blank_lines,
    word_ids,
)
from ouroboros.transforms.quality.fineweb import FineWebConfig
from ouroboros.transforms.quality.gopher import (
    GOPHER_STOP_WORDS_EN,
    GopherQualityConfig,
    GopherRepetitionConfig,
)
from ouroboros.transforms.quality.words import split_words
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
    words = frozenset(wordfreq.top_n_list(language, n))
    # top_n_list loads the language's whole list (~40 MB of Python objects) into a cache that
    # wordfreq never empties: a worker would hold one per language it met.
    wordfreq.get_frequency_list.cache_clear()
    return words


# The words of languages written without spaces are whole phrases: these signals are left null.
WORD_SIGNALS = ("n_words", "mean_word_length", "alpha_words_ratio", "stop_words_count")


def quality_signals_and_reasons(text: str, language: str | None,
                                cfg: QualityConfig) -> tuple[dict[str, float | None], list[str]]:
    """All enabled rule families over one text: (signals keyed by QUALITY_SIGNALS, failing rules).

    The signals come from the fast paths (``fast.py``), sharing one word split, one word table and
    one line split; each family's rule table (``rules.py``) turns them into reasons."""
    lang = (language or cfg.default_language) if cfg.language_aware else "en"
    spaced = lang not in NO_SPACE_LANGUAGES
    words = split_words(text)
    ids = word_ids(words)
    line_parts = text.split("\n")
    lines = non_blank_lines(line_parts)
    all_lines = text.splitlines()  # Gopher's and C4's lines (every line break, blank lines too)
    signals: dict[str, float | None] = dict.fromkeys(SIGNAL_NAMES)
    signals["n_chars"] = float(len(text))
    signals["n_lines"] = float(len(lines))
    families: list[tuple[str, Any, dict[str, float | None]]] = []
    if cfg.gopher_quality.enabled:
        stops = stop_words_for(lang, cfg.stop_words_per_language)
        s = gopher_quality_signals(text, words, stops, ids=ids, lines=all_lines)
        if not spaced:
            s.update(dict.fromkeys(WORD_SIGNALS))
        families.append(("gopher_quality", cfg.gopher_quality, s))
    if cfg.gopher_repetition.enabled:
        families.append(("gopher_repetition", cfg.gopher_repetition, gopher_repetition_signals(
            text, words, ngrams=spaced, ids=ids, line_parts=line_parts)))
    if cfg.c4.enabled and (not cfg.c4.languages or lang in cfg.c4.languages):
        families.append(("c4", cfg.c4, c4_signals(text, cfg.c4, lines=all_lines)))
    if cfg.fineweb.enabled:
        families.append(("fineweb", cfg.fineweb, fineweb_signals(
            text, len(words) if spaced else None, cfg.fineweb, lines=lines)))
    reasons: list[str] = []
    for family, family_cfg, s in families:
        signals.update(s)
        reasons += rules.judge(rules.RULES[family], s, family_cfg)
    return signals, reasons


def clear_caches() -> None:
    """Forget the per-chunk and per-word caches (a fresh worker's state). The word table is per
    thread: this drops the calling thread's."""
    from ouroboros.transforms.quality import fast, sentences
    from ouroboros.transforms.quality import words as quality_words

    quality_words._CACHE.clear()
    fast.drop_table()
    sentences._CLASSES.clear()


class Quality(DocumentStage):
    """Per-document stage: fills quality_signals, quality_pass, quality_reasons; with ``filter``
    on, rejects with the first failing rule."""

    name = "quality"
    batch_size = 256

    def __init__(self, config: QualityConfig | None = None):
        self.config = config or QualityConfig()

    def setup(self) -> None:
        # Load wordfreq's lists once per worker for the languages most likely to come.
        for lang in ("en", "de", "fr", "es"):
            stop_words_for(lang, self.config.stop_words_per_language)

    def finish_bundle(self) -> None:
        # The word, chunk and sentence-class caches (200,000 entries each when full) would
        # otherwise ride through the keyed stages and the apply pass of a local run
        # (bench/memory_by_stage.py: the keyed stages' end 507 -> 482 MB at 200,000 documents;
        # the run's peak 451 -> 434 MB at 10,000; README, "Scale"). The in-process runner runs a
        # stage as one bundle, so nothing is recomputed there; elsewhere a bundle refills them
        # from its first documents.
        clear_caches()

    def process(self, doc: Mapping[str, Any]) -> Verdict:
        signals, reasons = quality_signals_and_reasons(doc.get("text") or "", doc.get("language"),
                                                       self.config)
        columns = {"quality_signals": signals, "quality_pass": not reasons,
                   "quality_reasons": reasons}
        return Verdict(columns, reasons[0] if reasons and self.config.filter else None)

"""The quality rules as data: every signal, and for each rule family the table of its rules.

One home for each rule: a row names the signal, the config field holding its threshold, the
comparison that fails, and the family (the reason is ``family:signal=value``). From these tables
come the stage's reasons (``judge``), ``QUALITY_SIGNALS`` of the output schema
(``schemas/record.py``) and the README's rule table (``markdown_rules``). The thresholds' defaults
and their sources live in each family's config (``gopher.py``, ``c4.py``, ``fineweb.py``); the
signals are computed by ``fast.py``, and each family module has a plain reference implementation
that a test holds to the same decisions.

This module imports nothing from the project, so the schema can read it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Signal:
    name: str
    doc: str


@dataclass(frozen=True)
class Rule:
    """Drop when ``signal <drop_if> threshold``.

    ``threshold``: a field of the family's config (``top_ngram_char_frac.2``: key 2 of a dict
    field), or a fixed number. A null threshold, or a null signal (not computed, e.g. for a language
    without spaces), passes. ``drop_if``: ``<`` or ``>``; ``flag``: the signal is 1 and the config's
    boolean field is on. ``unless_zero``: a boolean config field that, when on, lets a value of 0
    pass.
    """

    family: str
    signal: str
    threshold: str | float
    drop_if: str
    unless_zero: str | None = None


# Every signal in ``quality_signals``, in column order.
SIGNALS: tuple[Signal, ...] = (
    Signal("n_chars", "characters in the text"),
    Signal("n_lines", "non-empty lines"),
    Signal("n_words", "Gopher: words that are not only punctuation (spaCy-like English tokens)"),
    Signal("mean_word_length", "Gopher: mean length of those words in characters"),
    Signal("hash_word_ratio", "Gopher: '#' characters / tokens"),
    Signal("ellipsis_word_ratio", "Gopher: ('...' + '…') / tokens"),
    Signal("bullet_lines_ratio", "Gopher: lines starting with '•' or '-' / lines"),
    Signal("ellipsis_lines_ratio", "Gopher: lines ending with '...' or '…' / lines"),
    Signal("alpha_words_ratio", "Gopher: tokens with at least one letter / tokens"),
    Signal("stop_words_count", "Gopher: distinct stop words of the document's language present"),
    Signal("dup_line_frac", "Gopher repetition: duplicate lines / lines"),
    Signal("dup_para_frac", "Gopher repetition: duplicate paragraphs / paragraphs"),
    Signal("dup_line_char_frac", "Gopher repetition: chars in duplicate lines / chars"),
    Signal("dup_para_char_frac", "Gopher repetition: chars in duplicate paragraphs / chars"),
    *(Signal(f"top_{n}gram_char_frac",
             f"Gopher repetition: chars of the most frequent word {n}-gram / chars") for n in (2, 3, 4)),
    *(Signal(f"dup_{n}gram_char_frac",
             f"Gopher repetition: chars in duplicated word {n}-grams / chars") for n in range(5, 11)),
    Signal("c4_sentences", "C4: sentences in the lines the C4 line rules keep"),
    Signal("c4_lines_removed_ratio", "C4: lines removed by the C4 line rules / lines"),
    Signal("c4_lorem_ipsum", "C4: 1 if a kept line contains 'lorem ipsum'"),
    Signal("c4_curly_bracket", "C4: 1 if a kept line contains '{'"),
    Signal("line_punct_ratio", "FineWeb: lines ending in terminal punctuation / non-empty lines"),
    Signal("short_line_ratio", "FineWeb: lines of <= 30 chars / non-empty lines"),
    Signal("dup_line_char_ratio_fw", "FineWeb: chars in duplicate lines / chars without newlines"),
    Signal("list_ratio", "FineWeb: newlines / tokens"),
)

TOP_NGRAM_SIGNALS = {n: f"top_{n}gram_char_frac" for n in (2, 3, 4)}
DUP_NGRAM_SIGNALS = {n: f"dup_{n}gram_char_frac" for n in range(5, 11)}

# Gopher quality filters (Rae et al. 2021, appendix A), in the paper's order.
GOPHER_QUALITY_RULES: tuple[Rule, ...] = (
    Rule("gopher_quality", "n_words", "min_doc_words", "<"),
    Rule("gopher_quality", "n_words", "max_doc_words", ">"),
    Rule("gopher_quality", "mean_word_length", "min_avg_word_length", "<"),
    Rule("gopher_quality", "mean_word_length", "max_avg_word_length", ">"),
    Rule("gopher_quality", "hash_word_ratio", "max_symbol_word_ratio", ">"),
    Rule("gopher_quality", "ellipsis_word_ratio", "max_symbol_word_ratio", ">"),
    Rule("gopher_quality", "bullet_lines_ratio", "max_bullet_lines_ratio", ">"),
    Rule("gopher_quality", "ellipsis_lines_ratio", "max_ellipsis_lines_ratio", ">"),
    Rule("gopher_quality", "alpha_words_ratio", "min_alpha_words_ratio", "<"),
    Rule("gopher_quality", "stop_words_count", "min_stop_words", "<"),
)

# Gopher repetition removal (Rae et al. 2021, table A1).
GOPHER_REPETITION_RULES: tuple[Rule, ...] = (
    Rule("gopher_repetition", "n_chars", 1, "<"),  # an empty text has nothing to judge
    Rule("gopher_repetition", "dup_para_frac", "dup_para_frac", ">"),
    Rule("gopher_repetition", "dup_para_char_frac", "dup_para_char_frac", ">"),
    Rule("gopher_repetition", "dup_line_frac", "dup_line_frac", ">"),
    Rule("gopher_repetition", "dup_line_char_frac", "dup_line_char_frac", ">"),
    *(Rule("gopher_repetition", name, f"top_ngram_char_frac.{n}", ">")
      for n, name in TOP_NGRAM_SIGNALS.items()),
    *(Rule("gopher_repetition", name, f"dup_ngram_char_frac.{n}", ">")
      for n, name in DUP_NGRAM_SIGNALS.items()),
)

# C4 page rules (Raffel et al. 2020, section 2.2); the line rules feed the signals.
C4_RULES: tuple[Rule, ...] = (
    Rule("c4", "c4_lorem_ipsum", "filter_lorem_ipsum", "flag"),
    Rule("c4", "c4_curly_bracket", "filter_curly_bracket", "flag"),
    Rule("c4", "c4_sentences", "min_num_sentences", "<"),
)

# FineWeb's additional filters (Penedo et al. 2024, as released in datatrove).
FINEWEB_RULES: tuple[Rule, ...] = (
    Rule("fineweb", "n_lines", 1, "<"),  # a text without a non-blank line has nothing to judge
    Rule("fineweb", "line_punct_ratio", "line_punct_thr", "<", unless_zero="line_punct_exclude_zero"),
    Rule("fineweb", "short_line_ratio", "short_line_thr", ">"),
    Rule("fineweb", "dup_line_char_ratio_fw", "char_duplicates_ratio", ">"),
    Rule("fineweb", "list_ratio", "new_line_ratio", ">"),
)

RULES = {"gopher_quality": GOPHER_QUALITY_RULES, "gopher_repetition": GOPHER_REPETITION_RULES,
         "c4": C4_RULES, "fineweb": FINEWEB_RULES}


def threshold(config: Any, rule: Rule) -> Any:
    """The rule's threshold under ``config`` (None: the rule is off)."""
    if not isinstance(rule.threshold, str):
        return rule.threshold
    name, _, key = rule.threshold.partition(".")
    value = getattr(config, name)
    return value.get(int(key)) if key else value


def fails(rule: Rule, value: float | None, config: Any) -> bool:
    """Whether ``value`` of the rule's signal fails the rule under ``config``."""
    limit = threshold(config, rule)
    if value is None or limit is None:
        return False
    if rule.unless_zero and value == 0 and getattr(config, rule.unless_zero):
        return False
    if rule.drop_if == "<":
        return value < limit
    if rule.drop_if == ">":
        return value > limit
    return bool(limit) and bool(value)  # "flag"


def judge(rules: Sequence[Rule], signals: Mapping[str, float | None], config: Any) -> list[str]:
    """The failing rules in table order, as ``family:signal=value`` (once per signal)."""
    out: list[str] = []
    failed: set[str] = set()
    for rule in rules:
        value = signals.get(rule.signal)
        if rule.signal not in failed and fails(rule, value, config):
            failed.add(rule.signal)
            out.append(f"{rule.family}:{rule.signal}={format_value(value)}")
    return out


def ratio(part: float, whole: float) -> float | None:
    """part / whole, or None (no value: the rule passes) when whole is 0."""
    return part / whole if whole else None


def below(value: float | None, limit: float | None) -> bool:
    """``value < limit``; a missing value or limit passes."""
    return value is not None and limit is not None and value < limit


def above(value: float | None, limit: float | None) -> bool:
    """``value > limit``; a missing value or limit passes."""
    return value is not None and limit is not None and value > limit


def outside(value: float | None, low: float | None, high: float | None) -> bool:
    """``value`` below ``low`` or above ``high``; a missing value or limit passes."""
    return below(value, low) or above(value, high)


def format_value(value: float | None) -> str:
    """A signal value as reasons show it: an integer plainly, else 4 significant digits."""
    if value is None:
        return "null"
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.4g}"


def markdown_rules(configs: Mapping[str, Any]) -> str:
    """The README's rule table from the tables above and the family configs' defaults."""
    lines = ["| rule (reason prefix) | signal | drops when | default |", "|---|---|---|---|"]
    for family, rules in RULES.items():
        for rule in rules:
            config = configs[family]
            if isinstance(rule.threshold, str):
                limit, field = threshold(config, rule), f"`{rule.threshold}`"
            else:
                limit, field = rule.threshold, str(rule.threshold)
            if rule.drop_if == "flag":
                when = f"signal is 1 and {field} is on"
            else:
                when = f"signal {rule.drop_if} {field}"
            if rule.unless_zero:
                when += f" (not 0 when `{rule.unless_zero}`)"
            lines.append(f"| `{family}` | `{rule.signal}` | {when} | {limit} |")
    return "\n".join(lines)

"""FineWeb's additional heuristic filters (Penedo et al. 2024, "The FineWeb Datasets: Decanting the Web
for the Finest Text Data at Scale", "additional heuristic filters"), as pure
functions over one document.

The paper adds filters on top of C4 and Gopher for the share of lines ending in punctuation, the share
of characters in duplicated lines and the share of lines of at most 30 characters; the released pipeline
(datatrove's FineWebQualityFilter, the code that built FineWeb) also drops list-like pages with more than
0.3 newlines per word. The defaults are the released pipeline's values (0.12, 0.01, 0.67, 0.3), so that
a page is judged as FineWeb judged it. The rules are script-agnostic (terminal punctuation is any Unicode
Sentence_Terminal mark) except the newline-per-word ratio, which needs words separated by spaces.

``fineweb_reference`` applies the rules as released, top to bottom; the pipeline computes the same
signals with ``fast.fineweb_signals`` and judges them with ``rules.FINEWEB_RULES``, and a test holds
both to the same decisions on real documents.
"""

from __future__ import annotations

from collections.abc import Mapping

from ouroboros.transforms.base import StrictModel
from ouroboros.transforms.quality.gopher import TERMINAL_PUNCTUATION_TUPLE, duplicates
from ouroboros.transforms.quality.rules import (
    FINEWEB_RULES,
    above,
    below,
    format_value,
    judge,
    ratio,
)
from ouroboros.transforms.quality.words import split_words
from pydantic import Field


class FineWebConfig(StrictModel):
    """Thresholds of the FineWeb filters as released (Penedo et al. 2024; datatrove's FineWeb filter)."""

    enabled: bool = Field(True, description="run the FineWeb rules")
    line_punct_thr: float | None = Field(
        0.12, ge=0, le=1, description="share of lines ending in terminal punctuation below this: drop")
    line_punct_exclude_zero: bool = Field(
        False, description="do not drop pages where no line ends in punctuation")
    short_line_length: int = Field(30, ge=0, description="a line of at most this many characters is short")
    short_line_thr: float | None = Field(0.67, ge=0, le=1, description="share of short lines above this: drop")
    char_duplicates_ratio: float | None = Field(
        0.01, ge=0, le=1, description="characters in duplicated lines / characters above this: drop")
    new_line_ratio: float | None = Field(0.3, ge=0, description="newlines per word above this: drop")


def fineweb_reasons(signals: Mapping[str, float | None], cfg: FineWebConfig) -> list[str]:
    """The failing FineWeb rules (``rules.FINEWEB_RULES``)."""
    return judge(FINEWEB_RULES, signals, cfg)


def fineweb_reference(text: str, cfg: FineWebConfig) -> list[str]:
    """FineWeb's filters over one document, as the released pipeline applies them."""
    lines = [line for line in text.split("\n") if line.strip()]
    if not lines:
        return ["fineweb:n_lines=0"]
    reasons: list[str] = []

    def fail(signal: str, value: float) -> None:
        reasons.append(f"fineweb:{signal}={format_value(value)}")

    # too few lines ending in punctuation (unless none does and that is allowed)
    punct = sum(line.endswith(TERMINAL_PUNCTUATION_TUPLE) for line in lines) / len(lines)
    if below(punct, cfg.line_punct_thr) and not (punct == 0 and cfg.line_punct_exclude_zero):
        fail("line_punct_ratio", punct)
    # too many short lines
    short = sum(len(line) <= cfg.short_line_length for line in lines) / len(lines)
    if above(short, cfg.short_line_thr):
        fail("short_line_ratio", short)
    # too many characters in duplicated lines (of the characters that are not newlines)
    dup_chars = ratio(duplicates(lines)[1], len(text) - text.count("\n")) or 0.0
    if above(dup_chars, cfg.char_duplicates_ratio):
        fail("dup_line_char_ratio_fw", dup_chars)
    # a list rather than prose: too many newlines per word
    newlines = ratio(text.count("\n"), len(split_words(text)))
    if above(newlines, cfg.new_line_ratio):
        fail("list_ratio", newlines)
    return reasons

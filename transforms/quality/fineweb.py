"""FineWeb's additional heuristic filters (Penedo et al. 2024, "The FineWeb Datasets: Decanting the Web
for the Finest Text Data at Scale", "additional heuristic filters"), as pure
functions over one document.

The paper adds filters on top of C4 and Gopher for the share of lines ending in punctuation, the share
of characters in duplicated lines and the share of lines of at most 30 characters; the released pipeline
(datatrove's FineWebQualityFilter, the code that built FineWeb) also drops list-like pages with more than
0.3 newlines per word. The defaults are the released pipeline's values (0.12, 0.01, 0.67, 0.3), so that
a page is judged as FineWeb judged it. The rules are script-agnostic (terminal punctuation is any Unicode
Sentence_Terminal mark) except the newline-per-word ratio, which needs words separated by spaces.
"""

from __future__ import annotations

from itertools import compress
from typing import Any

from ouroboros.transforms.base import StrictModel
from ouroboros.transforms.quality.gopher import TERMINAL_PUNCTUATION_TUPLE, _fmt, find_duplicates
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


def fineweb_signals(text: str, n_words: int | None, cfg: FineWebConfig, *,
                    lines: list[str] | None = None) -> dict[str, float | None]:
    """FineWeb signal values; ``n_words`` is all tokens (None leaves list_ratio null).

    ``lines`` (``non_blank_lines(text)``) may be passed in when the caller already has them.
    """
    if lines is None:
        lines = non_blank_lines(text.split("\n"))
    if not lines:
        return {}
    n = len(lines)
    short = cfg.short_line_length
    chars = len(text) - text.count("\n")
    return {
        "line_punct_ratio": sum(1 for ln in lines if ln.endswith(TERMINAL_PUNCTUATION_TUPLE)) / n,
        "short_line_ratio": sum(1 for ln in lines if len(ln) <= short) / n,
        "dup_line_char_ratio_fw": find_duplicates(lines)[1] / chars if chars else 0.0,
        "list_ratio": text.count("\n") / n_words if n_words else None,
    }


def non_blank_lines(parts: list[str]) -> list[str]:
    """The pieces of ``text.split("\\n")`` that hold more than whitespace (FineWeb's lines)."""
    return list(compress(parts, map(str.strip, parts)))


def fineweb_reasons(s: dict[str, Any], cfg: FineWebConfig) -> list[str]:
    if not s:
        return ["fineweb:n_lines=0"]
    out = []
    v = s["line_punct_ratio"]
    if cfg.line_punct_thr is not None and v < cfg.line_punct_thr and not (
            v == 0 and cfg.line_punct_exclude_zero):
        out.append(f"fineweb:line_punct_ratio={_fmt(v)}")
    v = s["short_line_ratio"]
    if cfg.short_line_thr is not None and v > cfg.short_line_thr:
        out.append(f"fineweb:short_line_ratio={_fmt(v)}")
    v = s["dup_line_char_ratio_fw"]
    if cfg.char_duplicates_ratio is not None and v > cfg.char_duplicates_ratio:
        out.append(f"fineweb:dup_line_char_ratio_fw={_fmt(v)}")
    v = s["list_ratio"]
    if cfg.new_line_ratio is not None and v is not None and v > cfg.new_line_ratio:
        out.append(f"fineweb:list_ratio={_fmt(v)}")
    return out

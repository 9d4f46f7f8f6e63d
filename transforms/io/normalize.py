"""Text normalization, content hashes and the dedup key: cheap, per document, before any model."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping
from typing import Any, Literal

from ouroboros.transforms.base import DocumentStage, StrictModel, Verdict
from pydantic import Field, model_validator


class NormalizeConfig(StrictModel):
    unicode_form: Literal["NFC", "NFKC", "none"] = Field(
        "NFC", description="Unicode normalization of the stored text (NFC keeps what the page meant)")
    max_text_chars: int = Field(
        2_000_000, gt=0, description="longer texts are rejected (limit `max_text_chars`)")
    min_text_chars: int = Field(1, ge=1, description="shorter texts (after normalization) are rejected")

    @model_validator(mode="after")
    def _ordered(self) -> NormalizeConfig:
        if self.min_text_chars > self.max_text_chars:
            raise ValueError(f"min_text_chars ({self.min_text_chars}) must not exceed "
                             f"max_text_chars ({self.max_text_chars})")
        return self


# C0/C1 control characters except tab and newline, plus zero-width and BOM characters.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\u200c\u200d\u2060\ufeff]")
_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_WS = re.compile(r"\s+")


def normalize_text(text: str, unicode_form: str = "NFC") -> str:
    """Line structure kept (quality rules need it); runs of spaces and blank lines collapsed."""
    if unicode_form != "none":
        text = unicodedata.normalize(unicode_form, text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def exact_dedup_key(text: str) -> str:
    """Hash of the text with case, compatibility forms and whitespace folded: pages that differ only
    in those are exact duplicates."""
    folded = _WS.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()
    return sha256_hex(folded)[:32]


class Normalize(DocumentStage):
    """Normalizes `text`, fills `content_sha256` and `exact_hash`; rejects empty or oversized texts."""

    name = "normalize"
    batch_size = 256

    def __init__(self, config: NormalizeConfig):
        self.config = config

    def process(self, doc: Mapping[str, Any]) -> Verdict:
        text = doc.get("text") or ""
        if len(text) > self.config.max_text_chars:  # cut: keep the rejected row readable
            return Verdict({"text": text[: self.config.max_text_chars]},
                           f"max_text_chars:chars={len(text)}")
        text = normalize_text(text, self.config.unicode_form)
        columns = {"text": text, "content_sha256": sha256_hex(text),
                   "exact_hash": exact_dedup_key(text)}
        if len(text) < self.config.min_text_chars:
            return Verdict(columns, f"empty_text:chars={len(text)}")
        return Verdict(columns)

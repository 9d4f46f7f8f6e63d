"""HTML to text with a maintained extractor (trafilatura or resiliparse), chosen in the config.

The default was chosen by measurement: `python bench/extraction.py` (token F1 against the article
extraction benchmark's ground truth, and pages/s, side by side); the README gives the figures.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib.metadata import version
from typing import Any, Literal

from pydantic import Field

from ouroboros.transforms.base import StrictModel

Engine = Literal["trafilatura", "resiliparse"]


class ExtractConfig(StrictModel):
    engine: Engine = Field(
        "trafilatura",
        description="HTML-to-text extractor: trafilatura (higher F1) or resiliparse (about 11x faster, lower F1)")
    include_tables: bool = Field(True, description="keep the text of HTML tables")
    favor_precision: bool = Field(False, description="trafilatura: prefer precision over recall")
    max_html_bytes: int = Field(
        5_000_000, gt=0, description="HTML payloads larger than this are rejected before parsing")
    accept_status: tuple[int, ...] = Field((200, 203), description="HTTP statuses worth extracting")


_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_\-]+)""", re.I)
_HTML_SNIFF = re.compile(rb"<(!doctype html|html|head|body|p|div)[\s>]", re.I)


def charset_from_content_type(content_type: str | None) -> str | None:
    if not content_type:
        return None
    m = re.search(r"charset\s*=\s*[\"']?([A-Za-z0-9_\-]+)", content_type, re.I)
    return m.group(1) if m else None


def decode_html(payload: bytes, content_type: str | None = None) -> str:
    """Bytes to str: HTTP charset, then <meta charset>, then resiliparse's detector."""
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    for candidate in (charset_from_content_type(content_type), _meta_charset(payload)):
        if candidate:
            try:
                return payload.decode(_alias(candidate))
            except (LookupError, UnicodeDecodeError):
                continue
    return bytes_to_str(payload, detect_encoding(payload))


def _meta_charset(payload: bytes) -> str | None:
    m = _CHARSET.search(payload[:4096])
    return m.group(1).decode("ascii") if m else None


def _alias(charset: str) -> str:
    # Browsers decode these labels as the superset encoding (WHATWG Encoding Standard).
    return {"gb2312": "gb18030", "gbk": "gb18030", "iso-8859-1": "cp1252",
            "latin1": "cp1252", "ascii": "cp1252", "us-ascii": "cp1252",
            "shift_jis": "cp932", "sjis": "cp932"}.get(charset.lower(), charset)


def is_html(content_type: str | None, payload: bytes) -> bool:
    if content_type:
        mime = content_type.split(";", 1)[0].strip().lower()
        if mime in ("text/html", "application/xhtml+xml"):
            return True
        if mime and mime not in ("text/plain", "application/octet-stream", "unknown/unknown"):
            return False
    return bool(_HTML_SNIFF.search(payload[:2048]))


def extract_text(html: str, config: ExtractConfig) -> str:
    """The main text of a page ('' when there is none)."""
    if config.engine == "resiliparse":
        from resiliparse.extract.html2text import extract_plain_text
        from resiliparse.parse.html import HTMLTree

        return extract_plain_text(HTMLTree.parse(html), main_content=True, alt_texts=False,
                                  links=False, form_fields=False, noscript=False) or ""
    import trafilatura

    return trafilatura.extract(html, include_comments=False, include_tables=config.include_tables,
                               favor_precision=config.favor_precision, deduplicate=False,
                               with_metadata=False, output_format="txt") or ""


@lru_cache(maxsize=2)
def extractor_name(engine: str) -> str:
    return f"{engine} {version(engine)}"


class Extract:
    """Turns a WARC payload into text; non-HTML payloads and error statuses are rejected."""

    name = "extract"

    def __init__(self, config: ExtractConfig):
        self.config = config

    def setup(self) -> None:
        extract_text("<html><body><p>warm up</p></body></html>", self.config)

    def process(self, doc: dict[str, Any]) -> str | None:
        payload = doc.pop("_payload", None)
        if payload is None:
            return None  # already text (WET, JSONL, Parquet, HF)
        status = doc.get("http_status")
        if status is not None and status not in self.config.accept_status:
            return f"http_status:status={status}"
        if not is_html(doc.get("content_type"), payload):
            return f"unsupported_content_type:type={(doc.get('content_type') or 'unknown')[:60]}"
        if len(payload) > self.config.max_html_bytes:
            return f"max_html_bytes:bytes={len(payload)}"
        doc["text"] = extract_text(decode_html(payload, doc.get("content_type")), self.config)
        doc["extractor"] = extractor_name(self.config.engine)
        return None


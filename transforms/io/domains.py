"""Registered domain of a URL, from the public suffix list bundled with tldextract (offline)."""

from __future__ import annotations

from functools import lru_cache

import tldextract


@lru_cache(maxsize=1)
def _extractor() -> tldextract.TLDExtract:
    # suffix_list_urls=() keeps tldextract offline: it uses its bundled snapshot and never fetches.
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


def registered_domain(url: str) -> str | None:
    """`news.bbc.co.uk` -> `bbc.co.uk`; IPs and bare hosts are returned as they are."""
    try:
        parts = _extractor()(url)
    except Exception:
        return None
    if parts.domain and parts.suffix:
        return f"{parts.domain}.{parts.suffix}".lower()
    return parts.domain.lower() or None

"""HTML-to-text extraction on real pages."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from ouroboros.transforms.base import run_stage
from ouroboros.transforms.io.extract import (
    Extract,
    ExtractConfig,
    decode_html,
    extract_text,
    is_html,
)
from ouroboros.transforms.io.read import ReadConfig, read_shard

from tests.conftest import require_data


def _only_doc(name, fmt):
    return next(d for k, d in read_shard(str(require_data("web", name)), fmt, ReadConfig()) if k == "doc")


def _tokens(text):
    return Counter(re.findall(r"\w+", text.lower()))


@pytest.mark.parametrize("engine", ["trafilatura", "resiliparse"])
def test_extraction_agrees_with_common_crawl_wet(engine):
    """Common Crawl's WET text of the CC-MAIN-2024-22 page keeps navigation and footer; ours keeps
    the article. Bounds: >= 0.94 of our tokens appear in the WET text (we invent nothing), and we
    recover >= 0.70 of the tokens of the WET's paragraph lines (>= 60 chars; the rest of those
    lines are the licence footer and the 'retrieved from' line, boilerplate by design)."""
    wet = _only_doc("cc-main-2024-22-one-page.warc.wet.gz", "wet")["text"]
    warc = _only_doc("cc-main-2024-22-one-page.warc.gz", "warc")
    ours = extract_text(decode_html(warc["_payload"], warc["content_type"]), ExtractConfig(engine=engine))
    a, b = _tokens(ours), _tokens(wet)
    assert sum((a & b).values()) / sum(a.values()) >= 0.94
    paragraphs = _tokens("\n".join(l for l in wet.split("\n") if len(l) >= 60))
    assert sum((a & paragraphs).values()) / sum(paragraphs.values()) >= 0.70
    assert "Escopete ye un municipio" in ours


def test_euc_jp_pages_decode_without_mojibake():
    warc = _only_doc("warc018-eucjp-quirk.warc.gz", "warc")
    text = decode_html(warc["_payload"], warc["content_type"])
    assert re.search(r"[\u3040-\u30ff]", text)  # kana present
    assert "\ufffd" not in text


def test_gb2312_page_decodes():
    docs = [d for k, d in read_shard(str(require_data("web", "cc-main-2020-34-excerpt.warc.gz")), "warc",
                                     ReadConfig()) if k == "doc"]
    gb = [d for d in docs if "gb2312" in (d["content_type"] or "").lower()]
    assert gb
    for d in gb:
        text = decode_html(d["_payload"], d["content_type"])
        assert re.search(r"[\u4e00-\u9fff]", text) and text.count("\ufffd") < 5


def test_extract_stage_rejects_non_html_and_error_status():
    stage = Extract(ExtractConfig())
    pdf = {"_payload": b"%PDF-1.4 binary", "content_type": "application/pdf", "http_status": 200}
    assert stage.process(pdf).reason.startswith("unsupported_content_type")
    missing = {"_payload": b"<html><body>gone</body></html>", "content_type": "text/html",
               "http_status": 404}
    assert stage.process(missing).reason == "http_status:status=404"
    ok = {"_payload": b"<html><body><p>" + b"A real paragraph of text here. " * 20 + b"</p></body></html>",
          "content_type": None, "http_status": 200}
    out, reason = run_stage(stage, ok)
    assert reason is None and "A real paragraph" in out["text"]
    assert out["extractor"].startswith("trafilatura") and "_payload" not in out
    assert "_payload" in ok and "text" not in ok  # the input record is left as it was


def test_is_html_sniffs_when_content_type_missing():
    assert is_html(None, b"  <!DOCTYPE html><html><body>x</body></html>")
    assert not is_html(None, b"\x89PNG\r\n\x1a\n....")
    assert not is_html("image/png", b"<html>")


def test_text_documents_never_start_the_extractor_process():
    """Start-up is paid where it is needed: a run over text shards (JSONL, WET, Parquet) never
    starts the watchdog's child process (~10 s, ~250 MB); the first HTML page does."""
    from ouroboros.transforms.io.extract import Extract, ExtractConfig

    stage = Extract(ExtractConfig(max_seconds_per_page=30.0))
    stage.setup()
    try:
        assert stage.process({"text": "already text"}).reason is None
        assert stage._worker is None
    finally:
        stage.teardown()

from __future__ import annotations

from ouroboros.transforms.base import run_stage
from ouroboros.transforms.io.normalize import (
    Normalize,
    NormalizeConfig,
    exact_dedup_key,
    normalize_text,
)


def test_normalize_text_keeps_lines_and_collapses_space():
    raw = "Title\r\n\r\n\r\n\r\nFirst   line\u200b with\ttabs  \nsecond\x00 line\n\n\n"
    assert normalize_text(raw) == "Title\n\nFirst line with tabs\nsecond line"


def test_exact_key_folds_case_width_and_whitespace_only():
    assert exact_dedup_key("Hello  World\n") == exact_dedup_key("hello world")
    assert exact_dedup_key("ＡＢＣ") == exact_dedup_key("abc")  # full-width forms (NFKC)
    assert exact_dedup_key("hello world") != exact_dedup_key("hello, world")


def test_normalize_stage_fills_hashes_and_rejects_empty_and_oversized():
    stage = Normalize(NormalizeConfig(max_text_chars=100))
    doc, reason = run_stage(stage, {"text": "  some text  "})
    assert reason is None
    assert doc["text"] == "some text" and len(doc["content_sha256"]) == 64 and doc["exact_hash"]
    assert stage.process({"text": " \n\t "}).reason.startswith("empty_text")
    too_long = stage.process({"text": "x" * 101})
    assert too_long.reason == "max_text_chars:chars=101" and too_long.columns["text"] == "x" * 100

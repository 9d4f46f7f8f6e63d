"""The fast paths take the reference implementations' decisions, on real documents.

Each rule family has a plain reference implementation that reads like its paper (gopher.py, c4.py,
fineweb.py); the pipeline computes the signals with fast.py and judges them with the rule tables of
rules.py. Here both judge the same real documents (Common Crawl JSONL, DCLM-labelled pages) under the
default thresholds and under other ones, and must give the same reasons, in the same order.
"""

from __future__ import annotations

import gzip
import json
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ouroboros.transforms.quality.c4 import C4Config, c4_reference
from ouroboros.transforms.quality.filters import QualityConfig, quality_signals_and_reasons
from ouroboros.transforms.quality.fineweb import FineWebConfig, fineweb_reference
from ouroboros.transforms.quality.gopher import (
    GopherQualityConfig,
    GopherRepetitionConfig,
    gopher_quality_reference,
    gopher_repetition_reference,
)
from ouroboros.transforms.quality.rules import RULES, Rule, judge, markdown_rules

from tests.conftest import require_data

# Default thresholds, and others that move many documents across a boundary and switch rules off.
CONFIGS = {
    "defaults": QualityConfig(language_aware=False),
    "other thresholds": QualityConfig(
        language_aware=False,
        gopher_quality=GopherQualityConfig(min_doc_words=120, max_doc_words=900,
                                           min_avg_word_length=4.2, max_avg_word_length=None,
                                           max_symbol_word_ratio=0.01, min_alpha_words_ratio=0.9,
                                           min_stop_words=4),
        gopher_repetition=GopherRepetitionConfig(dup_line_frac=0.05, dup_para_frac=None,
                                                 top_ngram_char_frac={2: 0.05, 4: 0.03},
                                                 dup_ngram_char_frac={6: 0.02, 10: 0.01}),
        c4=C4Config(min_num_sentences=12, min_words_per_line=6, filter_curly_bracket=False,
                    filter_policy=False, remove_citations=False, max_word_length=20),
        fineweb=FineWebConfig(line_punct_thr=0.5, line_punct_exclude_zero=True, short_line_thr=0.2,
                              char_duplicates_ratio=0.05, new_line_ratio=0.05)),
}


@cache
def real_texts() -> tuple[str, ...]:
    web = require_data("web")
    quality = require_data("quality")
    texts: list[str] = []
    for path in sorted(web.glob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            texts += [json.loads(line).get("text") or "" for line in f]
    for path in sorted(quality.glob("*.jsonl")):
        texts += [json.loads(line)["text"] for line in path.open(encoding="utf-8")]
    return tuple(texts)


def reference_reasons(text: str, cfg: QualityConfig) -> list[str]:
    return (gopher_quality_reference(text, cfg.gopher_quality)
            + gopher_repetition_reference(text, cfg.gopher_repetition)
            + c4_reference(text, cfg.c4)
            + fineweb_reference(text, cfg.fineweb))


def _compare(texts: tuple[str, ...], cfg: QualityConfig) -> int:
    differ = []
    drops = 0
    for i, text in enumerate(texts):
        fast = quality_signals_and_reasons(text, "en", cfg)[1]
        ref = reference_reasons(text, cfg)
        drops += bool(ref)
        if fast != ref:
            differ.append((i, fast, ref))
    assert not differ, differ[:5]
    return drops


@pytest.mark.parametrize("name", list(CONFIGS))
def test_fast_paths_and_references_agree_on_a_sample(name):
    texts = real_texts()[::10]  # 148 documents of both sources
    drops = _compare(texts, CONFIGS[name])
    assert 0 < drops < len(texts)  # the rules keep some and drop some: the check is not vacuous


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CONFIGS))
def test_fast_paths_and_references_agree_on_every_real_document(name):
    texts = real_texts()
    assert len(texts) == 697 + 780
    _compare(texts, CONFIGS[name])


def test_every_rule_names_a_signal_and_a_config_field():
    from ouroboros.schemas.record import QUALITY_SIGNALS

    signals = {n for n, _ in QUALITY_SIGNALS}
    cfg = QualityConfig()
    configs = {"gopher_quality": cfg.gopher_quality, "gopher_repetition": cfg.gopher_repetition,
               "c4": cfg.c4, "fineweb": cfg.fineweb}
    for family, rules in RULES.items():
        fields = type(configs[family]).model_fields
        for rule in rules:
            assert rule.family == family and rule.signal in signals
            assert rule.drop_if in ("<", ">", "flag")
            if isinstance(rule.threshold, str):
                assert rule.threshold.split(".")[0] in fields, rule
            if rule.unless_zero:
                assert rule.unless_zero in fields
    table = markdown_rules(configs)
    assert table.count("\n") == 1 + sum(map(len, RULES.values()))


def test_judge_reads_a_rule_table_top_to_bottom():
    class Cfg:
        low, high, on, off, zero_ok = 2, 5, True, False, True

    rules = (Rule("f", "a", "low", "<"), Rule("f", "a", "high", ">"), Rule("f", "b", "high", ">"),
             Rule("f", "c", "on", "flag"), Rule("f", "d", "off", "flag"),
             Rule("f", "e", "low", "<", unless_zero="zero_ok"), Rule("f", "g", 1, "<"))
    signals = {"a": 1.0, "b": 5.5, "c": 1.0, "d": 1.0, "e": 0.0, "g": 0.0}
    assert judge(rules, signals, Cfg()) == ["f:a=1", "f:b=5.5", "f:c=1", "f:g=0"]
    assert judge(rules, {"a": 9.0, "e": 1.0, "b": None}, Cfg()) == ["f:a=9", "f:e=1"]


_LINES = ["Lorem ipsum dolor sit amet.", "Enable JavaScript to see { this } page.",
          "A line with {curly} words here.", "We use cookies on this site.", "Too short.",
          "Wait for it...", "A fine line of prose that ends well.", "[1] Cited line of text here!",
          "## ## ##", "- a bullet line -", "", "   ", "The same line again and again.",
          "A 'quoted' end of three words'", "Another sentence. And one more! Really?",
          "word " * 3 + "x" * 30 + ".", "Un texte. Deux phrases."]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_LINES), max_size=30), st.sampled_from(["\n", "\n\n"]),
       st.sampled_from(list(CONFIGS)))
def test_fast_paths_and_references_agree_on_edge_case_pages(lines, sep, name):
    """Pages built from lines that hit every rule (and several rules at once)."""
    text = sep.join(lines)
    cfg = CONFIGS[name]
    assert quality_signals_and_reasons(text, "en", cfg)[1] == reference_reasons(text, cfg)

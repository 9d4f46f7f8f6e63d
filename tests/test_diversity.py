"""Diversity metrics: stratum indices, coverage, tail mass, distinct-n sketches, vocabulary tail."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import apache_beam as beam
import numpy as np
import pytest
from ouroboros.transforms.sampling.diversity import (
    DiversityStats,
    StratumCounts,
    TextDiversityFn,
    coverage,
    diversity_report,
    diversity_words,
    kmv_distinct,
    kmv_merge,
    ngram_hashes,
    stratum_metrics,
    tail_mass,
    tail_strata,
    vocab_tail_counts,
)

from tests.conftest import SHARED_DATA as DATA

SENTENCES = DATA / "lid" / "sentences"


def test_uniform_and_single_stratum_indices():
    m = stratum_metrics({f"s{i}": 10 for i in range(8)})
    assert m["shannon"] == pytest.approx(math.log(8))
    assert m["shannon_effective"] == pytest.approx(8)
    assert m["gini_simpson"] == pytest.approx(1 - 1 / 8)
    assert m["inverse_simpson"] == pytest.approx(8)
    one = stratum_metrics({"all": 50})
    assert one["shannon"] == 0.0 and one["gini_simpson"] == 0.0 and one["strata"] == 1
    assert stratum_metrics({})["records"] == 0


def test_skewed_distribution_is_less_diverse():
    skewed = stratum_metrics({"a": 97, "b": 1, "c": 1, "d": 1})
    even = stratum_metrics({"a": 25, "b": 25, "c": 25, "d": 25})
    assert skewed["shannon"] < even["shannon"] and skewed["gini_simpson"] < even["gini_simpson"]


def test_coverage_and_tail_mass_are_relative_to_the_reference():
    ref = {"big": 1000, "mid": 100, "small1": 5, "small2": 3}
    out = {"big": 10, "mid": 1, "small1": 2}
    assert coverage(ref, out) == pytest.approx(3 / 4)
    tail, threshold = tail_strata(ref, 50)
    assert threshold == pytest.approx(52.5) and tail == {"small1", "small2"}
    assert tail_mass(ref, tail) == pytest.approx(8 / 1108)
    assert tail_mass(out, tail) == pytest.approx(2 / 13)


def test_distinct_n_on_a_known_text():
    fn = TextDiversityFn()
    acc = fn.add_input(fn.create_accumulator(), {"text": "a b a b", "language": None})
    out = fn.extract_output(acc)
    assert out["distinct_1"] == pytest.approx(2 / 4)  # {a, b} / 4 tokens
    assert out["distinct_2"] == pytest.approx(2 / 3)  # {a b, b a} / 3 bigrams


def test_kmv_is_exact_below_k_and_close_above():
    toks = [f"w{i}" for i in range(20000)]
    h = np.unique(ngram_hashes(toks, 1))
    assert kmv_distinct(kmv_merge(h[:100], np.zeros(0, np.uint64), 1024), 1024) == 100
    sketch = kmv_merge(h[:10000], h[10000:], 1024)
    assert abs(kmv_distinct(sketch, 1024) - 20000) / 20000 < 0.1  # 1/sqrt(1024) = 3% standard error
    # merging is order-free: the same sketch whichever worker combined first
    parts = [h[i::3] for i in range(3)]
    a = kmv_merge(kmv_merge(parts[0], parts[1], 1024), parts[2], 1024)
    b = kmv_merge(parts[2], kmv_merge(parts[1], parts[0], 1024), 1024)
    assert np.array_equal(a, b)


def test_ngram_hashes_are_the_same_in_another_process():
    toks = diversity_words("The quick brown fox jumps over the lazy dog. 我们 去")
    here = ngram_hashes(toks, 2).tolist()
    code = (
        "from ouroboros.transforms.sampling.diversity import diversity_words, ngram_hashes; import json;"
        "print(json.dumps(ngram_hashes(diversity_words("
        "'The quick brown fox jumps over the lazy dog. 我们 去'), 2)"
        ".tolist()))"
    )
    env = dict(os.environ, PYTHONHASHSEED="12345")
    other = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(other.stdout) == here


def test_vocab_tail_counts_rare_words_in_the_documents_language():
    rare, checked = vocab_tail_counts("the house is on the hill zyxwvq flibbertigibbetish", "en")
    assert checked == 8 and rare == 2
    assert vocab_tail_counts("irgendwas", None) == (0, 0)
    assert vocab_tail_counts("ngiyabonga kakhulu", "zu") == (0, 0)  # no wordfreq list for Zulu


def _docs(n_langs: int = 12, per: int = 60) -> list[dict]:
    if not SENTENCES.is_dir():
        pytest.skip(f"real data not found at {SENTENCES} (shared/data is needed for this test)")
    docs = []
    for rank, f in enumerate(sorted(SENTENCES.glob("*.txt"))[:n_langs], start=1):
        for i, line in enumerate(f.read_text(encoding="utf-8").splitlines()[: max(1, per // rank)]):
            docs.append({"id": f"{f.stem}:{i}", "text": line, "language": f.stem})
    return docs


def test_merging_accumulators_equals_one_pass():
    docs = _docs()
    fn = TextDiversityFn()
    one = fn.create_accumulator()
    for d in docs:
        one = fn.add_input(one, d)
    halves = [fn.create_accumulator(), fn.create_accumulator()]
    for i, d in enumerate(docs):
        halves[i % 2] = fn.add_input(halves[i % 2], d)
    assert fn.extract_output(fn.merge_accumulators(halves)) == fn.extract_output(one)


def test_beam_diversity_stats_match_the_pure_report_and_see_a_lost_tail():
    docs = _docs()
    keys = ("language",)
    # "Output": the largest stratum only, as a sampler that lost the whole tail would leave.
    kept = [d for d in docs if d["language"] == docs[0]["language"]]
    with tempfile.TemporaryDirectory() as tmp:
        with beam.Pipeline() as p:
            src = p | "In" >> beam.Create(docs)
            ref = src | "Ref" >> StratumCounts(keys)
            out = p | "Out" >> beam.Create(kept)
            for name, stats in (
                ("input", src | "InStats" >> DiversityStats(keys)),
                ("output", out | "OutStats" >> DiversityStats(keys, reference=ref)),
            ):
                _ = (
                    stats
                    | f"Json{name}" >> beam.Map(json.dumps)
                    | f"Write{name}" >> beam.io.WriteToText(f"{tmp}/{name}", shard_name_template="")
                )
        got = {n: json.loads(Path(f"{tmp}/{n}").read_text()) for n in ("input", "output")}

    fn = TextDiversityFn()
    acc = fn.create_accumulator()
    for d in docs:
        acc = fn.add_input(acc, d)
    counts: dict[str, int] = {}
    for d in docs:
        counts[f"language={d['language']}"] = counts.get(f"language={d['language']}", 0) + 1
    expected = diversity_report(counts, fn.extract_output(acc))
    assert got["input"] == pytest.approx(expected)
    assert got["input"]["coverage"] == 1.0 and got["input"]["strata"] == 12
    assert got["output"]["coverage"] == pytest.approx(1 / 12)
    assert got["output"]["tail_mass"] == 0.0 and got["input"]["tail_mass"] > 0
    assert got["output"]["shannon"] == 0.0

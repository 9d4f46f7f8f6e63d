"""MinHash signatures: identical to datasketch's, and estimating Jaccard as theory says."""

from __future__ import annotations

import gzip
import json
import random

import numpy as np
import pytest
from datasketch import MinHash, MinHashLSH
from ouroboros.transforms.dedup import minhash as mh
from ouroboros.transforms.dedup.minhash import (
    MinHashConfig,
    band_hashes,
    estimated_jaccard,
    jaccard,
    normalize,
    optimal_bands_rows,
    shingle_hash32,
    shingles,
    signatures,
)
from pydantic import ValidationError

from tests.conftest import SHARED_DATA as DATA

WEB = DATA / "web" / "CC-MAIN-20190717121559-20190717143559-00140.jsonl.gz"


@pytest.fixture(scope="module")
def web_texts() -> list[str]:
    if not WEB.exists():
        pytest.skip(f"shared data absent: {WEB}")
    with gzip.open(WEB, "rt") as f:
        return [json.loads(line)["text"] for line in f][:200]


def _datasketch_signature(text: str | None, cfg: MinHashConfig) -> np.ndarray:
    m = MinHash(num_perm=cfg.num_perm, seed=cfg.seed, hashfunc=shingle_hash32)
    m.update_batch(shingles(normalize(text, cfg), cfg))
    return m.hashvalues


EDGE_TEXTS = ["", None, "   \n\t ", "one", "two words", "exactly five words here now",
              "Ünïcode ﬁ ＦＵＬＬＷＩＤＴＨ, punctuation!!! and_underscores\u00a0nbsp",
              "日本語のテキストには空白がありません", "x\x01y doc separator inside text",
              "emoji 🙂 and astral 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 letters in a longer sentence of words"]


@pytest.mark.parametrize("shingle,ngram", [("word", 5), ("word", 1), ("char", 5)])
def test_signatures_equal_datasketch_on_real_and_edge_texts(web_texts, shingle, ngram):
    cfg = MinHashConfig(shingle=shingle, ngram=ngram)
    texts = web_texts[:60] + EDGE_TEXTS
    sig, has_sig = signatures(texts, cfg)
    for text, row, ok in zip(texts, sig, has_sig):
        expected = _datasketch_signature(text, cfg)
        assert np.array_equal(row, expected), repr(text)[:80]
        assert ok == bool(shingles(normalize(text, cfg), cfg))


def test_short_text_policy():
    keep = MinHashConfig()
    skip = MinHashConfig(short_text="skip")
    texts = ["", "only four words here", "only four words here"]
    sig, has = signatures(texts, keep)
    assert has.tolist() == [False, True, True] and np.array_equal(sig[1], sig[2])
    assert (sig[0] == np.uint32(0xFFFFFFFF)).all()  # datasketch's empty signature
    _, has = signatures(texts, skip)
    assert has.tolist() == [False, False, False]


def test_slicing_of_huge_texts_does_not_change_signatures(web_texts, monkeypatch):
    cfg = MinHashConfig()
    big = " ".join(t for t in web_texts if t)  # ~700 kB
    texts = [big, web_texts[0], big[:5000]]
    whole, _ = signatures(texts, cfg)
    monkeypatch.setattr(mh, "_BLOCK_CODEPOINTS", 4096)
    mh._powers.cache_clear()
    sliced, _ = signatures(texts, cfg)
    mh._powers.cache_clear()
    assert np.array_equal(whole, sliced)


def test_batch_composition_does_not_change_signatures(web_texts):
    cfg = MinHashConfig()
    together, _ = signatures(web_texts[:40], cfg)
    alone = np.vstack([signatures([t], cfg)[0] for t in web_texts[:40]])
    assert np.array_equal(together, alone)


def test_normalization_folds_case_width_punctuation_and_space():
    cfg = MinHashConfig()
    assert normalize("Hello,   WORLD!\n ｆｕｌｌ—width_x", cfg) == "hello world full width x"
    assert normalize("Café 3.14", MinHashConfig(strip_accents=True, normalize_numbers=True)) == "cafe 0"
    a, _ = signatures(["The Quick, brown fox: jumps over the lazy dog."], cfg)
    b, _ = signatures(["the quick brown fox jumps over the lazy dog"], cfg)
    assert np.array_equal(a, b)


def test_bands_rows_from_threshold_match_datasketch():
    for t, n in [(0.5, 128), (0.8, 112), (0.9, 256)]:
        lsh = MinHashLSH(threshold=t, num_perm=n)
        cfg = MinHashConfig(num_perm=n, bands=None, rows=None, threshold=t)
        assert cfg.band_rows == (lsh.b, lsh.r) == optimal_bands_rows(t, n)
    assert MinHashConfig().band_rows == (14, 8)


def test_config_rejects_inconsistent_bands():
    with pytest.raises(ValidationError, match="exceeds num_perm"):
        MinHashConfig(num_perm=64, bands=14, rows=8)
    with pytest.raises(ValidationError, match="give both"):
        MinHashConfig(bands=None)
    with pytest.raises(ValidationError, match="threshold"):
        MinHashConfig(bands=None, rows=None)
    with pytest.raises(ValidationError):
        MinHashConfig(num_perms=3)
    assert MinHashConfig(ngram=3).index_params() != MinHashConfig().index_params()


def test_estimated_jaccard_is_unbiased_within_sampling_error():
    rng = random.Random(7)
    vocab = [f"w{i}" for i in range(3000)]
    cfg = MinHashConfig(num_perm=256, bands=16, rows=16, ngram=1)
    z = []
    for _ in range(40):
        a = rng.sample(vocab, 400)
        b = a[:rng.randint(50, 390)] + rng.sample(vocab, rng.randint(10, 300))
        true = jaccard(shingles(normalize(" ".join(a), cfg), cfg), shingles(normalize(" ".join(b), cfg), cfg))
        sig, _ = signatures([" ".join(a), " ".join(b)], cfg)
        est = estimated_jaccard(sig[0], sig[1])
        z.append((est - true) / np.sqrt(max(true * (1 - true), 1e-6) / cfg.num_perm))
    z = np.array(z)
    assert np.abs(z).max() < 4.5
    assert abs(z.mean()) < 4.5 / np.sqrt(len(z))


def test_band_hashes_agree_exactly_on_equal_bands():
    sig = np.arange(3 * 16, dtype=np.uint32).reshape(3, 16)
    sig[1, :8] = sig[0, :8]  # band 0 equal between docs 0 and 1
    h = band_hashes(sig, 2, 8)
    assert h[0, 0] == h[1, 0] and h[0, 1] != h[1, 1]
    assert h[0, 0] != h[2, 0]
    same_values_other_band = band_hashes(np.tile(sig[0, :8], 2)[None, :], 2, 8)
    assert same_values_other_band[0, 0] != same_values_other_band[0, 1]


def test_detection_probability_is_the_s_curve():
    assert mh.detection_probability(1.0, 14, 8) == 1.0
    assert abs(mh.detection_probability(0.8, 14, 8) - 0.9241) < 1e-3  # FineWeb's figure

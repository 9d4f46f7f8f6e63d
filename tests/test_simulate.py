"""The collapse simulation: its n-gram model, its metrics, and a tiny end-to-end run."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
from ouroboros.pipeline.collapse_metrics import (
    TailReference,
    WordIndex,
    distinct_n,
    first_words,
    tail_kept,
    tail_mass,
    vocabulary,
)
from ouroboros.pipeline.ngram_lm import (
    BOS_ID,
    EOS_ID,
    KneserNeyLM,
    Vocabulary,
    detokenize,
    tokenize,
    truncate,
)
from ouroboros.pipeline.simulate import SimConfig, SimulationError, run_simulation

from tests.conftest import require_data


@pytest.fixture(scope="module")
def corpus():
    """Real human text (Reddit answers and Nature abstracts), tokenized, as model training data."""
    path = require_data("synthetic-modern", "dnagpt.jsonl.gz")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f]
    tokens = [tokenize(t) for t in texts]
    vocab = Vocabulary(t for doc in tokens for t in doc)
    return vocab, [vocab.encode(t) for t in tokens]


@pytest.fixture(scope="module", params=[1, 2, 3, 4])
def model(request, corpus):
    vocab, docs = corpus
    return KneserNeyLM.fit(docs[:300], len(vocab), order=request.param), vocab, docs


def _contexts(vocab, docs):
    """Frequent, rare and unseen contexts: the start of a document, inside one, and made up."""
    d = docs[0]
    return [[], [BOS_ID, BOS_ID], [int(d[0])], [int(d[3]), int(d[4])], [int(d[5]), int(d[6]), int(d[7])],
            [vocab.index[" the"]], [vocab.index[" of"], vocab.index[" the"]],
            [int(docs[-1][2]), int(d[9])],            # a pair that never occurs
            [int(docs[-1][-1]), int(docs[-2][-1])]]   # held-out words


def test_probabilities_sum_to_one_over_the_vocabulary(model):
    lm, vocab, docs = model
    for ctx in _contexts(vocab, docs):
        dist = lm.distribution(ctx)
        assert dist.sum() == pytest.approx(1.0, abs=1e-9)
        assert dist[BOS_ID] == 0.0  # <s> is never predicted
        assert (dist[1:] > 0).all()  # smoothing: every word keeps some probability


def _reference_nucleus(dist: np.ndarray, top_p: float, top_k: int) -> tuple[int, float]:
    """Size and mass of the smallest prefix (by decreasing probability) with mass >= p, <= k."""
    p = np.sort(dist)[::-1]
    cum = np.cumsum(p)
    n = int(np.searchsorted(cum, top_p - 1e-12)) + 1 if top_p < 1 else int((dist > 0).sum())
    if top_k:
        n = min(n, top_k)
    return n, float(cum[n - 1])


@pytest.mark.parametrize("top_p,top_k", [(0.9, 0), (0.5, 0), (0.99, 0), (0.2, 0), (1.0, 40),
                                         (0.9, 40), (0.95, 3), (1.0, 1)])
def test_truncation_keeps_the_smallest_set_with_mass_at_least_p(model, top_p, top_k):
    lm, vocab, docs = model
    for ctx in _contexts(vocab, docs):
        dist = lm.distribution(ctx)
        nuc = lm.nucleus(ctx, top_p, top_k)
        kept = np.fromiter(nuc.ids(), dtype=np.int64)
        size, mass = _reference_nucleus(dist, top_p, top_k)
        assert len(kept) == size
        assert dist[kept].sum() == pytest.approx(mass, rel=1e-9)
        assert nuc.total == pytest.approx(mass, rel=1e-9)
        # It is a prefix: nothing left out is more probable than something kept...
        outside = np.setdiff1d(np.arange(1, lm.V), kept)
        if len(outside):
            assert dist[outside].max() <= dist[kept].min() + 1e-15
        # ... and it is the smallest: without its least probable word the mass is below p.
        if top_p < 1 and (not top_k or size < top_k):
            assert mass - dist[kept].min() < top_p


def test_samples_follow_the_truncated_distribution(corpus):
    vocab, docs = corpus
    lm = KneserNeyLM.fit(docs[:300], len(vocab), order=3)
    rng = np.random.default_rng(7)
    for ctx in ([vocab.index[" the"]], [int(docs[0][3]), int(docs[0][4])], [BOS_ID, BOS_ID]):
        nuc = lm.nucleus(ctx, 0.9)
        draws = np.array([nuc.draw(rng) for _ in range(20_000)])
        kept = np.fromiter(nuc.ids(), dtype=np.int64)
        assert np.isin(draws, kept).all()
        dist = lm.distribution(ctx)
        expected = np.zeros(lm.V)
        expected[kept] = dist[kept] / dist[kept].sum()
        observed = np.bincount(draws, minlength=lm.V) / len(draws)
        # The 10 most probable words one by one, the rest in 10 bins of equal expected mass (a
        # nucleus holds thousands of words: 20,000 draws cannot estimate each of them).
        order = kept[np.argsort(-expected[kept], kind="stable")]
        assert np.abs(observed[order[:10]] - expected[order[:10]]).max() < 0.01
        bins = np.minimum((np.cumsum(expected[order]) - expected[order]) * 10, 9).astype(int)
        obs_bins = np.bincount(bins, weights=observed[order], minlength=10)
        exp_bins = np.bincount(bins, weights=expected[order], minlength=10)
        assert np.abs(obs_bins - exp_bins).max() < 0.015


def test_sampling_is_deterministic_for_a_seed(corpus):
    vocab, docs = corpus
    a = KneserNeyLM.fit(docs[:200], len(vocab), order=3)
    b = KneserNeyLM.fit(docs[:200], len(vocab), order=3)
    run = lambda lm, seed: [lm.sample(np.random.default_rng([seed, i]), 200, 0.9).tolist()
                            for i in range(5)]
    assert run(a, 1) == run(b, 1)
    assert run(a, 1) != run(a, 2)
    assert all(EOS_ID not in d and BOS_ID not in d and len(d) <= 200 for d in run(a, 1))


def test_vectorized_log_probabilities_match_the_dense_distribution(corpus):
    vocab, docs = corpus
    lm = KneserNeyLM.fit(docs[:200], len(vocab), order=3)
    held_out = [docs[-1][:40], docs[-2][:25]]
    lp = lm.logprobs(held_out)
    expected = []
    for d in held_out:
        seq = [BOS_ID, BOS_ID, *d.tolist(), EOS_ID]
        expected += [np.log(lm.distribution(seq[i - 2:i])[seq[i]]) for i in range(2, len(seq))]
    assert lp == pytest.approx(np.array(expected), rel=1e-9)
    assert lm.perplexity(held_out) == pytest.approx(np.exp(-np.mean(expected)))
    # Held-out real text is likelier under a trigram than under a unigram model of the same data.
    assert lm.perplexity(held_out) < KneserNeyLM.fit(docs[:200], len(vocab), 1).perplexity(held_out)


def test_tokens_give_the_text_back(corpus):
    path = require_data("web", "CC-MAIN-20190717121559-20190717143559-00140.jsonl.gz")
    from ouroboros.transforms.io.normalize import normalize_text

    with gzip.open(path, "rt", encoding="utf-8") as f:
        texts = [normalize_text(json.loads(line)["text"]) for line in f][:200]
    for text in texts:
        assert detokenize(tokenize(text)) == "\n".join(x for x in text.split("\n") if x.strip())
    samples = ["a b\nc d e\nf g h i", "a b c. d e f g h", "a b c d e\nf", "a b c. d"]
    vocab = Vocabulary(t for text in samples for t in tokenize(text))
    enc = lambda text: vocab.encode(tokenize(text))
    ends = vocab.sentence_ends()
    assert len(truncate(enc("a b\nc d e\nf g h i"), 9, ends)) == 6  # at the last line break
    assert detokenize(vocab.decode(truncate(enc("a b c. d e f g h"), 7, ends))) == "a b c."
    assert len(truncate(enc("a b c d e\nf"), 4, ends)) == 4  # no clean cut: at the limit
    assert len(truncate(enc("a b c. d"), 5, ends)) == 5  # short enough: kept whole ...
    assert len(truncate(enc("a b c. d"), 5, ends, open_end=True)) == 4  # ... unless it was cut


# --- metrics on a hand-made distribution ------------------------------------------------------


def test_tail_metrics_on_a_hand_made_distribution():
    # Real corpus R: "a" x5, "b" x3, "c" x2, "d" x1, "e" x1 (12 tokens). Head (K=2) = {a, b};
    # tail vocabulary T_R = {c, d, e}; R's tail mass = (2 + 1 + 1) / 12.
    texts = ["a a a b c", "a a b b c d e ,", "a a a, b", "b c f f"]
    vocab = Vocabulary(t for text in texts for t in tokenize(text))
    words = WordIndex(vocab.words)
    enc = lambda s: words.words(vocab.encode(tokenize(s)))
    real = [enc(texts[0]), enc(texts[1])]
    ref = TailReference.from_docs(real, words.size, k=2)
    assert words.size == 6  # a..f; the comma is not a word, " a" and "a" are one word
    assert sorted({vocab.words[i].strip() for i in np.nonzero(words.of_token >= 0)[0]
                   if ref.head[words.of_token[i]]}) == ["a", "b"]
    assert len(ref.tail_words) == 3
    assert tail_mass(real, ref) == pytest.approx(4 / 12)
    assert tail_kept(real, ref) == 1.0
    # A generation that lost "d" and "e" and gained "f" (a tail word R never had):
    # tail tokens c, f, f of 8 words; tail vocabulary kept {c} of {c, d, e}.
    gen = [enc(texts[2]), enc(texts[3])]
    assert tail_mass(gen, ref) == pytest.approx(3 / 8)
    assert tail_kept(gen, ref) == pytest.approx(1 / 3)
    assert vocabulary(gen, words.size) == 4
    assert distinct_n(gen, 1) == pytest.approx(4 / 8)
    # Bigrams inside documents: (a a) (a a) (a b) | (b c) (c f) (f f): 5 distinct of 6.
    assert distinct_n(gen, 2) == pytest.approx(5 / 6)
    assert [len(d) for d in first_words(gen, 6)] == [4, 2]


# --- the whole loop, tiny ---------------------------------------------------------------------


def test_bad_arguments_fail_before_any_work(tmp_path):
    with pytest.raises(SimulationError, match="regimes"):
        SimConfig(inputs=("x",), output=str(tmp_path), regimes=("replace", "curate")).check()
    with pytest.raises(SimulationError, match="top-p"):
        SimConfig(inputs=("x",), output=str(tmp_path), top_p=0).check()
    path = require_data("synthetic-modern", "dnagpt.jsonl.gz")
    with pytest.raises(SimulationError, match="usable documents"):
        run_simulation(SimConfig(inputs=(str(path),), output=str(tmp_path / "o"), docs=5000))
    assert not list((tmp_path / "o").glob("pipeline"))  # no pipeline ran
    from ouroboros.pipeline.cli import main

    assert main(["simulate", "-i", str(path), "-o", str(tmp_path / "p"), "--generatons", "2"]) == 2
    assert main(["simulate", "-i", str(tmp_path / "none*.jsonl"), "-o", str(tmp_path / "q")]) == 2
    assert main(["simulate", "-i", str(path), "-o", str(tmp_path / "q"), "--regimes", "x"]) == 2
    assert main(["simulate", "-i", str(path), "-o", str(tmp_path / "q"), "--set", "nope.x=1"]) == 2
    assert not (tmp_path / "p").exists() and not (tmp_path / "q").exists()


@pytest.mark.slow
def test_tiny_simulation_end_to_end(tmp_path):
    """2 generations on a little real text, every regime, the curated ones through execute()."""
    from ouroboros.pipeline.cli import main

    data = require_data("synthetic-modern", "dnagpt.jsonl.gz")
    out = tmp_path / "sim"
    code = main(["simulate", "-i", str(data), "-o", str(out), "--generations", "2",
                 "--docs", "60", "--crawl-docs", "80", "--fresh-share", "0.25", "--test-docs", "40",
                 "--metric-tokens", "3000", "--max-doc-tokens", "200",
                 "--regimes", "replace,accumulate,curated,curated_accumulate"])
    assert code == 0
    result = json.loads((out / "simulation.json").read_text())
    rows = {(r["generation"], r["regime"]): r for r in result["rows"]}
    regimes = ("replace", "accumulate", "curated", "curated_accumulate")
    assert set(rows) == {(g, r) for g in range(3) for r in regimes}
    for r in regimes:  # generation 0 is shared: the real data and its model
        assert rows[(0, r)]["synthetic_share"] == 0 and rows[(0, r)]["tail_kept_train"] == 1.0
    for g in (1, 2):
        # replace: `docs` documents drawn from the crawl (60 of 80, 20 of them real)
        assert rows[(g, "replace")]["train_docs"] == 60
        assert rows[(g, "accumulate")]["train_docs"] == 60 * (g + 1)
        assert rows[(g, "accumulate")]["tail_kept_train"] == 1.0  # the real data is kept
        assert rows[(g, "accumulate")]["perplexity"] < rows[(g, "replace")]["perplexity"]
        for r in ("curated", "curated_accumulate"):
            assert 0 <= rows[(g, r)]["let_through"] <= 1 and 0 <= rows[(g, r)]["real_kept"] <= 1
    # The books and the pipeline agree: every crawled document is kept or rejected, once.
    runs = result["pipeline_runs"]
    assert len(runs) == 4 and all(run["accounting_holds"] for run in runs)
    for run in runs:
        for origin, n_in in (("generated", 60), ("real", 20)):
            fate = run["fate"][origin]
            assert fate["in_crawl"] == n_in
            assert sum(v for k, v in fate.items() if k != "in_crawl") == n_in
        kept = run["fate"]["generated"].get("kept", 0) + run["fate"]["real"].get("kept", 0)
        if run["regime"] == "curated":
            assert rows[(run["generation"], "curated")]["train_docs"] == kept
    for metric in ("perplexity", "tail_kept_train", "tail_kept_out", "vocab_out", "let_through"):
        assert (out / f"{metric}.png").stat().st_size > 1000
    assert (out / "simulation.csv").read_text().startswith("generation,regime,")
    assert (out / "pipeline" / "curated_accumulate" / "state" / "manifest").is_dir()

"""Near-dedup in Beam: clusters (chains, stars, cliques), representatives, idempotence, cross-run."""

from __future__ import annotations

import gzip
import json
import random
import tempfile
from pathlib import Path

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from ouroboros.transforms.dedup.components import ClusterInfo, UnionFind
from ouroboros.transforms.dedup.minhash import MinHashConfig, jaccard, normalize, shingles
from ouroboros.transforms.dedup.near import NearDedup, _BucketEdges
from ouroboros.transforms.dedup.representative import representative_key
from wordfreq import top_n_list

from tests.conftest import SHARED_DATA as DATA

WEB = DATA / "web" / "CC-MAIN-20190717121559-20190717143559-00140.jsonl.gz"
VOCAB = top_n_list("en", 5000)


def _words(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    return [rng.choice(VOCAB) for _ in range(n)]


def _edit(words: list[str], frac: float, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = list(words)
    for i in rng.sample(range(len(out)), int(frac * len(out))):
        out[i] = f"edit{seed}x{i}"
    return out


def _doc(doc_id: str, words: list[str], date: str | None = None, score: float | None = None) -> dict:
    return {"id": doc_id, "text": " ".join(words), "crawl_date": date, "synthetic_score": score}


def _write_json(items: list, path: str) -> None:
    Path(path).write_text(json.dumps(items))


def _run(docs: list[dict], **kwargs) -> tuple[list[dict], list[dict]]:
    """Runs NearDedup on the DirectRunner and returns (kept, rejected) for inspection."""
    with tempfile.TemporaryDirectory() as tmp:
        with TestPipeline() as p:
            res = p | beam.Create(docs) | NearDedup(**kwargs)
            for tag in ("kept", "rejected"):
                _ = (getattr(res, tag) | f"List{tag}" >> beam.combiners.ToList()
                     | f"Write{tag}" >> beam.Map(_write_json, f"{tmp}/{tag}.json"))
        return tuple(json.loads(Path(f"{tmp}/{t}.json").read_text()) for t in ("kept", "rejected"))


def _clusters(kept: list[dict], rejected: list[dict]) -> dict[str, set[str]]:
    clusters: dict[str, set[str]] = {}
    for d in kept + rejected:
        clusters.setdefault(d["dup_cluster_id"], set()).add(d["id"])
    return clusters


def test_chain_of_near_duplicates_ends_in_one_cluster():
    base = _words(1, 600)
    chain = [_doc(f"c{i}", base[i * 10:i * 10 + 200]) for i in range(25)]  # neighbours J~0.9
    cfg = MinHashConfig()
    first, last = (shingles(normalize(d["text"], cfg), cfg) for d in (chain[0], chain[-1]))
    assert jaccard(first, last) == 0.0  # the ends share nothing: only the chain links them
    kept, rejected = _run(chain)
    assert len(kept) == 1 and kept[0]["id"] == "c0"  # no dates: smallest id wins
    assert kept[0]["dup_cluster_size"] == 25 and len(rejected) == 24
    assert {d["reject_reason"] for d in rejected} == {"near_duplicate_of:c0"}
    assert all(d["reject_stage"] == "near_dedup" and not d["dup_representative"] for d in rejected)


def test_star_and_disjoint_cliques_with_representative_policy():
    docs = []
    hub = _words(2, 300)
    docs.append(_doc("hub", hub, "2021-05-01"))
    docs += [_doc(f"s{i:02d}", _edit(hub, 0.005, 100 + i), "2021-06-01") for i in range(30)]
    for g in range(3):  # three cliques of 4 near copies each, dates decide inside each
        words = _words(10 + g, 300)
        docs += [_doc(f"g{g}m{j}", _edit(words, 0.01, 1000 * g + j), f"2020-0{j + 1}-01",
                      score=0.9 - 0.1 * j) for j in range(4)]
    docs.append(_doc("solo", _words(99, 300)))
    kept, rejected = _run(docs)
    clusters = _clusters(kept, rejected)
    assert clusters["hub"] == {"hub"} | {f"s{i:02d}" for i in range(30)}
    for g in range(3):
        assert clusters[f"g{g}m0"] == {f"g{g}m{j}" for j in range(4)}  # earliest date kept
    assert clusters["solo"] == {"solo"}
    assert sorted(d["id"] for d in kept) == ["g0m0", "g1m0", "g2m0", "hub", "solo"]
    sizes = {d["id"]: d["dup_cluster_size"] for d in kept}
    assert sizes == {"hub": 31, "g0m0": 4, "g1m0": 4, "g2m0": 4, "solo": 1}


def test_representative_policy_date_then_synthetic_score_then_id():
    words = _words(3, 200)
    docs = [_doc("z", words, "2020-01-01", 0.9), _doc("y", words, "2020-01-01", 0.1),
            _doc("x", words, "2020-01-01", 0.1), _doc("a", words, "2020-02-01", 0.0),
            _doc("b", words, None, 0.0)]
    kept, _ = _run(docs)
    assert [d["id"] for d in kept] == ["x"]
    assert representative_key("b", None, None) > representative_key("a", "2020-02-01", 0.0)


def test_empty_short_and_bad_documents():
    docs = [_doc("e1", []), _doc("e2", []), _doc("s1", ["hello", "there"]),
            _doc("s2", ["Hello", "there!"]), {"id": "bad", "text": 12}, {"text": "no id"}]
    with TestPipeline() as p:
        res = p | beam.Create(docs) | NearDedup()
        assert_that(res.kept | beam.Map(lambda d: (d["id"], d["dup_cluster_size"])),
                    equal_to([("e1", 1), ("e2", 1), ("s1", 2)]), label="kept")
        assert_that(res.rejected | beam.Map(lambda d: (d["id"], d["reject_reason"])),
                    equal_to([("s2", "near_duplicate_of:s1")]), label="rejected")
        assert_that(res.errors | beam.Map(lambda e: e["error_type"]),
                    equal_to(["bad_document", "bad_document"]), label="errors")


def test_tag_mode_annotates_without_dropping():
    words = _words(4, 200)
    docs = [_doc("a", words), _doc("b", _edit(words, 0.01, 5))]
    with TestPipeline() as p:
        res = p | beam.Create(docs) | NearDedup(drop=False)
        assert_that(res.kept | beam.Map(lambda d: (d["id"], d["dup_representative"],
                                                   d.get("reject_reason"))),
                    equal_to([("a", True, None), ("b", False, "near_duplicate_of:a")]), label="k")
        assert_that(res.rejected, equal_to([]), label="r")


def _web_docs_with_planted_duplicates() -> list[dict]:
    if not WEB.exists():
        pytest.skip(f"shared data absent: {WEB}")
    with gzip.open(WEB, "rt") as f:
        rows = [json.loads(line) for line in f]
    docs = [{"id": f"w{i}", "text": r["text"], "crawl_date": r["metadata"].get("warc_date")}
            for i, r in enumerate(rows)]
    long_docs = [d for d in docs if len(d["text"].split()) > 100][:40]
    for j, d in enumerate(long_docs):  # plant a later near copy of each (0.5% of words replaced)
        docs.append({"id": f"p{j}", "text": " ".join(_edit(d["text"].split(), 0.005, j)),
                     "crawl_date": "2030-01-01"})
    return docs


@pytest.mark.slow
def test_real_data_planted_copies_found_and_rerun_is_idempotent():
    docs = _web_docs_with_planted_duplicates()
    kept, rejected = _run(docs)
    assert len(kept) + len(rejected) == len(docs)
    planted = {d["id"] for d in docs if d["id"].startswith("p")}
    assert planted <= {d["id"] for d in rejected}  # every planted copy found (J ~ 0.9)
    kept2, rejected2 = _run([{k: d[k] for k in ("id", "text", "crawl_date")} for d in kept])
    assert rejected2 == [] and len(kept2) == len(kept)


@pytest.mark.slow
def test_cross_run_dedup_keeps_the_earlier_runs_document(tmp_path):
    words = _words(5, 300)
    run1 = [_doc("old", words, "2021-01-01"), _doc("old_copy", _edit(words, 0.02, 1), "2021-01-02"),
            _doc("other", _words(6, 300), "2021-01-01")]
    index = tmp_path / "run1"
    kept1, _ = _run(run1, index_out=str(index))
    assert sorted(d["id"] for d in kept1) == ["old", "other"]
    assert len(list(index.glob("minhash-index-*.parquet"))) >= 1
    # night 2: a copy of "old" that claims an *earlier* crawl date still loses to the kept one
    run2 = [_doc("new_copy", _edit(words, 0.03, 2), "2020-01-01"), _doc("fresh", _words(7, 300)),
            _doc("old", words, "2021-01-01")]  # the same document re-read: stays itself
    kept2, rejected2 = _run(run2, index_in=[str(index / "*.parquet")], index_out=str(tmp_path / "run2"))
    assert {d["id"]: d["reject_reason"] for d in rejected2} == {"new_copy": "near_duplicate_of:old"}
    assert sorted(d["id"] for d in kept2) == ["fresh", "old"]
    by_id = {d["id"]: d for d in kept2 + rejected2}
    assert by_id["new_copy"]["dup_cluster_id"] == "old" and by_id["old"]["dup_representative"]


@pytest.mark.slow
def test_cross_run_index_with_other_parameters_is_refused(tmp_path):
    words = _words(8, 200)
    _run([_doc("a", words)], index_out=str(tmp_path / "idx"))
    with pytest.raises(Exception, match="other MinHash parameters"):
        _run([_doc("b", words)], config=MinHashConfig(ngram=3), index_in=[str(tmp_path / "idx/*.parquet")])


# ---------------------------------------------------------------- components and buckets, no Beam

def _node(i: int) -> str:
    return f"n{i:06d}"


def _rank(i: int, date: str | None = None) -> tuple:
    return representative_key(_node(i), date, None)


@pytest.mark.parametrize("shape", ["chain", "star", "cliques"])
def test_union_find_is_independent_of_edge_order_and_partitioning(shape):
    n = 60
    if shape == "chain":
        edges = [(_node(i), _node(i + 1)) for i in range(n - 1)]
        expected = {f"n{i:06d}": ClusterInfo("n000000", n, 1) for i in range(n)}
    elif shape == "star":
        edges = [(_node(30), _node(i)) for i in range(n) if i != 30]
        expected = {f"n{i:06d}": ClusterInfo("n000000", n, 1) for i in range(n)}
    else:
        edges = [(_node(a), _node(b)) for g in range(0, n, 6) for a in range(g, g + 6)
                 for b in range(a + 1, g + 6)]
        expected = {f"n{i:06d}": ClusterInfo(f"n{i - i % 6:06d}", 6, 1) for i in range(n)}
    for seed in range(5):
        rng = random.Random(seed)
        shuffled = [tuple(rng.sample(e, 2)) for e in rng.sample(edges, len(edges))]
        ranks = rng.sample([_rank(i) for i in range(n)], n)
        parts = [UnionFind() for _ in range(3)]
        for k, e in enumerate(shuffled):  # a rank may reach another partial than its edges
            parts[k % 3].union(*e)
        for k, r in enumerate(ranks):
            parts[(k + seed) % 3].add_rank(r)
        parts[0].merge(parts[1])
        parts[2].merge(parts[0])
        assert dict(parts[2].clusters()) == expected


def test_union_find_reports_clusters_only_and_keeps_each_ids_best_rank():
    uf = UnionFind()
    uf.add_rank(_rank(5, "2020") + ("staged-a.parquet",))
    uf.add_rank(_rank(9, "2020") + ("staged-b.parquet",))  # a rank without an edge: no cluster
    uf.add_rank(_rank(7, "2021") + ("staged-a.parquet",))
    uf.union(_node(5), _node(7))
    uf.add_rank(representative_key(_node(7), "2019", None, tier=0))  # re-read from an index
    assert list(uf.placed_clusters()) == [
        (_node(5), ClusterInfo(_node(7), 2, 0), "staged-a.parquet"),
        (_node(7), ClusterInfo(_node(7), 2, 0), "staged-a.parquet")]


def test_hub_with_100k_copies_streams_the_bucket_and_yields_a_star():
    class OnceCountingIterable:  # what a runner hands over: re-iterable, never a list from us
        def __init__(self, n):
            self.n, self.passes = n, 0

        def __iter__(self):
            self.passes += 1
            return (f"d{i:06d}" for i in range(self.n))  # this run's documents: ids only

    bucket = OnceCountingIterable(100_000)
    dofn = _BucketEdges(MinHashConfig())
    edges = list(dofn.process(((0, 1), bucket)))
    assert bucket.passes == 2 and len(edges) == 99_999
    assert len({a for a, _ in edges}) == 1
    uf = UnionFind()
    for e in edges:
        uf.union(*e)
    for i in range(100_000):
        uf.add_rank(representative_key(f"d{i:06d}", "2020", None))
    infos = dict(uf.clusters())
    assert len(infos) == 100_000 and infos["d099999"] == ClusterInfo("d000000", 100_000, 1)


def test_a_bucket_links_new_documents_to_its_best_earlier_document_only():
    prior = lambda doc_id, date: (representative_key(doc_id, date, None, tier=0), None)
    members = ["n2", prior("p1", "2019"), "n1", prior("p0", "2018")]
    edges = set(_BucketEdges(MinHashConfig()).process(((0, 1), members)))
    assert edges == {("p0", "n1"), ("p0", "n2")}  # earlier documents are never linked together
    assert not list(_BucketEdges(MinHashConfig()).process(((0, 1), [prior("p1", "2019"), prior("p0", "2018")])))


def test_verification_drops_false_positive_candidates_but_links_the_rest():
    cfg = MinHashConfig(verify_threshold=0.5)
    sig = lambda vals: np.array(vals, dtype=np.uint32).tobytes()
    centre = (representative_key("a", "2020", None), sig([1] * 10))
    close = (representative_key("b", "2021", None), sig([1] * 9 + [2]))
    far1 = (representative_key("c", "2021", None), sig([1] * 2 + [3] * 8))
    far2 = (representative_key("d", "2021", None), sig([1] * 2 + [3] * 7 + [4]))
    edges = list(_BucketEdges(cfg).process(((0, 1), [centre, close, far1, far2])))
    assert set(edges) == {("a", "b"), ("c", "d")}

"""The refactored pipeline takes the same decisions as main did before it (tests/golden.py).

The stored summaries were captured from main before the stage contract, the shared representative
rule and the quality rule tables landed; ids and reasons only, never text.
"""

from __future__ import annotations

import pytest
from ouroboros.transforms.dedup.representative import doc_key

from tests import golden
from tests.conftest import read_output, require_data


@pytest.mark.slow
@pytest.mark.parametrize("corpus", ["web", "bench"])
def test_same_curated_rejected_and_error_records_as_before(corpus, tmp_path):
    require_data("web")
    require_data("quality")
    got = golden.run_and_summarize(corpus, tmp_path)
    want = golden.load(corpus)
    for part in ("curated", "rejected", "errors"):
        missing = [r for r in want[part] if r not in got[part]]
        extra = [r for r in got[part] if r not in want[part]]
        assert not missing and not extra, (part, missing[:10], extra[:10])


@pytest.mark.slow
def test_with_the_synthetic_scorer_on_the_same_decisions_up_to_which_duplicate_is_kept(tmp_path):
    """With the scorer on (its model is retrained from time to time), scores may change which
    member of a duplicate cluster is kept, but nothing else: every other decision is as stored,
    the clusters are the same, and each cluster's kept member is the one the representative rule
    picks from the run's own dates and scores."""
    require_data("web")
    require_data("quality")
    out = golden.run("bench", tmp_path, overrides=[])
    got, want = golden.summarize(out), golden.load("bench")
    dedup = ("exact_dedup", "near_dedup")
    assert [r for r in got["rejected"] if r[1] not in dedup] == \
        [r for r in want["rejected"] if r[1] not in dedup]
    assert got["errors"] == want["errors"]
    assert golden.clusters(got) == golden.clusters(want)
    assert len(got["curated"]) == len(want["curated"])

    records = read_output(out, "curated") + read_output(out, "rejected")
    assert sum(r["synthetic_score"] is not None for r in records) > 100  # the scorer ran
    by_name = {f"{r['source_uri'].rsplit('/', 1)[-1]}:{r['source_record_id']}": r for r in records}
    kept = set(got["curated"])
    for cluster in golden.clusters(got):
        members = [by_name[m] for m in cluster]
        exact_groups: dict[str, list] = {}
        for r in members:
            exact_groups.setdefault(r["exact_hash"], []).append(r)
        survivors = []
        for group in exact_groups.values():  # exact dedup keeps the rule's choice of each hash
            best = min(group, key=doc_key)
            assert all(r["reject_stage"] == "exact_dedup" for r in group if r is not best)
            survivors.append(best)
        if len(survivors) > 1:  # then near dedup keeps the rule's choice among the survivors
            best = min(survivors, key=doc_key)
            name = f"{best['source_uri'].rsplit('/', 1)[-1]}:{best['source_record_id']}"
            assert name in kept, (name, sorted(cluster))

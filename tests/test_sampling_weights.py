"""Issue 12, item 11: with more strata than the budget has records, every stratum keeps a non-zero
inclusion probability and the sample weights still add up to the population they stand for."""

from __future__ import annotations

import pytest
from ouroboros.transforms.sampling.quotas import SamplingConfig, make_plan

from tests.conftest import read_output
from tests.test_sampling import _run


@pytest.mark.slow
def test_item11_language_x_domain_at_30_percent_of_the_web_shards(web_run):
    """The records that enter the sampler in a run over ../shared/data/web (the curated output of
    the default run: sampling is the last stage), sampled by language x domain at 30%."""
    out, _ = web_run
    docs = [{k: r[k] for k in ("id", "text", "language", "domain", "url")}
            for r in read_output(out, "curated")]
    cfg = SamplingConfig(enabled=True, keys=("language", "domain"), budget_fraction=0.3)
    res = _run(docs, cfg)
    rows = res["kept"] + res["rejected"]
    assert len(rows) == len(docs) > 150
    strata = {r[1]: (r[2], r[3]) for r in rows}
    assert len(strata) > 0.3 * len(docs)  # more strata than the budget has records: the hard case
    # every stratum can be drawn: p > 0 everywhere, the same p for every record of a stratum
    assert all(p > 0 for _, p in strata.values())
    assert all(r[3] == strata[r[1]][1] for r in rows)
    # the expected sample size is the budget, and the sample hits it to the record
    assert sum(n * p for n, p in strata.values()) == pytest.approx(0.3 * len(docs))
    assert abs(len(res["kept"]) - 0.3 * len(docs)) <= 1
    # Horvitz-Thompson weights reproduce the population that entered the sampler
    assert sum(r[4] for r in res["kept"]) == pytest.approx(len(docs), rel=1e-9)
    assert all(r[4] >= 1 for r in res["kept"])


def test_item11_plan_keeps_p_above_zero_and_weights_exact_when_strata_outnumber_the_budget():
    counts = {"big": (11, 11.0), **{f"single{i:02d}": (1, 1.0) for i in range(30)},
              **{f"pair{i}": (2, 2.0) for i in range(5)}}
    n = sum(c for c, _ in counts.values())
    for seed in range(20):
        plan = make_plan(counts, SamplingConfig(enabled=True, keys=(), budget=10, seed=seed))
        assert all(s.probability > 0 for s in plan.strata.values())
        drawn = {k: s for k, s in plan.strata.items() if s.exact}
        assert sum(s.exact for s in drawn.values()) in (10, 11, 9)
        assert sum(s.exact * s.weight for s in drawn.values()) == pytest.approx(n)

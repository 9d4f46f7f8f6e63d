"""Tail-preserving stratified sampling to a budget, deterministic per record.

Uniform sampling to a budget keeps each group in proportion to its size, so at 1% a stratum of 30
documents (a rare language, a small site) most likely vanishes. Here every stratum s of size n_s
(records, or tokens) gets a quota Q_s from a policy, and a record of s is kept with inclusion
probability p_s = Q_s / n_s. Selection compares a hash of (record id, seed) with p_s, so a rerun,
a different worker count or a different runner keeps exactly the same records. Each kept record
carries ``sample_weight = 1 / p_s``: summing weights per stratum estimates its population
(Horvitz-Thompson), so statistics of the sample can be re-weighted to the corpus.

Small quotas are sampled at an exact size instead (the k_s records with the smallest hashes, a
simple random sample without replacement): a Bernoulli draw with expectation 0.8 loses the stratum
almost half of the time, an exact draw of one record never does. The expected counts v_s = p_s N_s
of those strata are rounded to integers k_s by systematic rounding (unbiased per stratum, total
within one record). Every record keeps its design probability p_s > 0 (a stratum that drew no
record this time could have), and the weights are calibrated so that they add up to the
population that entered the sampler (`sample_weights`): N_s / k_s in a drawn exact-size stratum
(its kept records stand for it exactly), scaled, in the tail of strata expecting less than one
record each (more strata than the budget has records), so that the drawn tail strata also stand
for the tail strata that drew nothing, in proportion to their sizes.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import apache_beam as beam
import numpy as np
from apache_beam import pvalue
from apache_beam.metrics import Metrics
from ouroboros.transforms.base import (
    KEPT,
    METRICS_NAMESPACE,
    REJECTED,
    StageOutputs,
    StrictModel,
    empty,
    rejected,
)
from ouroboros.transforms.sampling.strata import stratum_key, validate_keys
from pydantic import Field, model_validator

STAGE = "sample"
Policy = Literal["proportional", "temperature", "floor_and_cap"]


class SamplingConfig(StrictModel):
    """Stratified sampling; off by default, and with no budget it keeps every record (p = 1)."""

    enabled: bool = Field(
        False, description="run the stratified sampler after the filters and dedup"
    )
    keys: tuple[str, ...] = Field(
        ("language",),
        description="stratum keys, composed in order: language, domain, topic, "
        "length, provenance, quality (see transforms/sampling/strata.py)",
    )
    policy: Policy = Field("floor_and_cap", description="quota policy (formulas in sampling.py)")
    unit: Literal["records", "tokens"] = Field(
        "records",
        description="what budget, floor and stratum sizes count; tokens = ceil(UTF-8 "
        "bytes / 4), a tokenizer-free approximation of BPE tokens",
    )
    budget: float | None = Field(
        None,
        gt=0,
        description="absolute budget in `unit`; null with null budget_fraction keeps everything",
    )
    budget_fraction: float | None = Field(
        None, gt=0, le=1, description="budget as a share of the input"
    )
    alpha: float = Field(
        0.3,
        gt=0,
        le=1,
        description="temperature policy exponent: Q_s ~ n_s^alpha; "
        "0.3 as in XLM-R (Conneau et al. 2020) and mT5 (Xue et al. 2021)",
    )
    floor: float = Field(
        100, ge=0, description="floor_and_cap: strata up to this size are kept whole"
    )
    cap: float | None = Field(
        None,
        gt=0,
        le=1,
        description="floor_and_cap: most of the budget one "
        "stratum may take (share); lifted only as far as the budget needs",
    )
    exact_max: int = Field(
        1000,
        ge=0,
        description="strata expecting at most this many kept records "
        "are sampled at an exact size (0: Bernoulli everywhere)",
    )
    seed: int = Field(0, description="seed of the per-record selection hash")

    @model_validator(mode="after")
    def _check(self) -> SamplingConfig:
        validate_keys(self.keys)
        if self.budget is not None and self.budget_fraction is not None:
            raise ValueError("give budget or budget_fraction, not both")
        return self


# ---------------------------------------------------------------------------------------------
# Per-record pieces.


def unit_hash(record_id: str, salt: str | int) -> float:
    """A uniform number in [0, 1) from (salt, id): the same in every process and on every runner."""
    digest = hashlib.blake2b(f"{salt}\x00{record_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def token_count(text: str) -> int:
    return math.ceil(len(text.encode("utf-8")) / 4)


def record_id(doc: dict[str, Any]) -> str:
    return (
        doc.get("id")
        or doc.get("content_sha256")
        or hashlib.sha256((doc.get("text") or "").encode()).hexdigest()
    )


# ---------------------------------------------------------------------------------------------
# Quota policies: sizes n_s and a budget B in -> quotas Q_s with sum Q_s = min(B, sum n_s).


def _water_fill(budget: float, quota_at: Callable[[float], np.ndarray]) -> np.ndarray:
    """Quotas quota_at(t) at the level t >= 0 where they sum to the budget (bisection on t).

    `quota_at` must be non-decreasing in t and bounded by the stratum sizes; the caller ensures
    the budget is reachable.
    """
    lo, hi = 0.0, 1.0
    while quota_at(hi).sum() < budget:
        hi *= 2.0
        if hi > 1e300:
            break
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if quota_at(mid).sum() < budget:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * hi:
            break
    return quota_at(hi)


def proportional_quotas(n: np.ndarray, budget: float) -> np.ndarray:
    """Q_s = B * n_s / N: every record has the same probability B / N (uniform, stratified)."""
    return n * (budget / n.sum())


def temperature_quotas(n: np.ndarray, budget: float, alpha: float) -> np.ndarray:
    """Q_s = min(n_s, t * n_s^alpha), t such that sum Q_s = B.

    The sampling distribution q_s ~ n_s^alpha of multilingual LMs (XLM, XLM-R, mT5): alpha = 1 is
    proportional, alpha -> 0 gives every stratum the same quota. A stratum whose share exceeds its
    size is kept whole and its surplus goes to the others in the same n^alpha proportion.
    """
    shape = n**alpha
    return _water_fill(budget, lambda t: np.minimum(n, t * shape))


def floor_and_cap_quotas(
    n: np.ndarray, budget: float, floor: float, cap: float | None
) -> np.ndarray:
    """Keep the small strata whole, share the rest in proportion, cap the largest.

    With F_s = min(n_s, floor):
      - budget below the floors (B <= sum F_s): Q_s = min(F_s, lam), the same share lam for every
        stratum, smaller strata whole; lam >= 1 as soon as B >= number of strata, so no stratum is
        lost while the budget allows one record each.
      - otherwise: Q_s = min(H_s, F_s + t * (n_s - F_s)), H_s = min(n_s, max(F_s, C)), C = cap*B:
        above its floor a stratum gets a share of the remaining budget in proportion to its
        remaining size, up to the cap. If the caps leave the budget unreachable, C is raised to the
        lowest level that reaches it (the budget wins over the cap).
    """
    f = np.minimum(n, floor)
    if budget <= f.sum():
        return _water_fill(budget, lambda lam: np.minimum(f, lam))
    c = math.inf if cap is None else cap * budget
    if np.minimum(n, np.maximum(f, c)).sum() < budget:
        c = float(_water_fill(budget, lambda lvl: np.minimum(n, np.maximum(f, lvl))).max())
    h = np.minimum(n, np.maximum(f, c))
    return _water_fill(budget, lambda t: np.minimum(h, f + t * (n - f)))


def quotas(
    sizes: Mapping[str, float], budget: float | None, config: SamplingConfig
) -> dict[str, float]:
    """Quota per stratum for the configured policy; every stratum whole when the budget allows."""
    keys = sorted(sizes)  # a fixed order makes the float sums identical on every run
    n = np.array([float(sizes[k]) for k in keys])
    if budget is None or not keys or budget >= n.sum():
        return {k: float(v) for k, v in zip(keys, n, strict=True)}
    if config.policy == "proportional":
        q = proportional_quotas(n, budget)
    elif config.policy == "temperature":
        q = temperature_quotas(n, budget, config.alpha)
    else:
        q = floor_and_cap_quotas(n, budget, config.floor, config.cap)
    return {k: float(v) for k, v in zip(keys, np.minimum(q, n), strict=True)}


# ---------------------------------------------------------------------------------------------
# The plan: what the selection step needs per stratum (a side input).


@dataclass(frozen=True)
class StratumPlan:
    population: int  # records in the stratum before sampling
    size: float  # records or tokens (the unit of the budget)
    quota: float  # Q_s in the unit of the budget
    probability: float  # design inclusion probability p_s of a record (> 0 with a quota)
    exact: int | None  # k_s for an exact-size stratum, else None (Bernoulli with p_s)
    weight: float = 1.0  # sample_weight of a kept record (see `sample_weights`)


@dataclass(frozen=True)
class SamplePlan:
    strata: dict[str, StratumPlan]
    budget: float | None
    unit: str
    policy: str

    def summary(self) -> dict[str, Any]:
        """For stats.json: the budget, the expected output, and how many strata keep anything."""
        expected = sum(s.probability * s.population for s in self.strata.values())
        return {
            "policy": self.policy,
            "unit": self.unit,
            "budget": self.budget,
            "strata": len(self.strata),
            "strata_with_quota": sum(1 for s in self.strata.values() if s.probability > 0),
            "strata_drawn": sum(1 for s in self.strata.values()
                                if (s.exact if s.exact is not None else s.probability) > 0),
            "exact_size_strata": sum(1 for s in self.strata.values() if s.exact is not None),
            "input_records": sum(s.population for s in self.strata.values()),
            "expected_records": expected,
            "quota_total": sum(s.quota for s in self.strata.values()),
        }


def systematic_round(values: dict[str, float], seed: int | str) -> dict[str, int]:
    """Integers k_s with P(k_s = ceil(v_s)) = frac(v_s) exactly, summing to floor or ceil of sum v.

    Systematic sampling of the fractional parts (strata in a seeded hash order, one random start):
    a stratum expecting 0.4 records gets one with probability 0.4, as Bernoulli sampling would give
    it, while the total stays within one record of the budget. Largest-remainder rounding would
    instead always drop every stratum expecting less than about half a record.
    """
    salt = f"round:{seed}"
    base = {k: math.floor(v + 1e-9) for k, v in values.items()}
    start = unit_hash("start", salt)
    cum = 0.0
    for k in sorted(values, key=lambda k: (unit_hash(k, salt), k)):
        frac = max(values[k] - base[k], 0.0)
        # points start + j (j = 0, 1, ...) falling in [cum, cum + frac): at most one, as frac < 1
        base[k] += math.ceil(cum + frac - start) - math.ceil(cum - start)
        cum += frac
    return base


def make_plan(counts: Mapping[str, tuple[int, float]], config: SamplingConfig) -> SamplePlan:
    """counts: stratum -> (records, size in the budget's unit), from the Beam combine."""
    total = sum(size for _, size in counts.values())
    budget = config.budget
    if budget is None and config.budget_fraction is not None:
        budget = config.budget_fraction * total
    q = quotas({k: v[1] for k, v in counts.items()}, budget, config)
    prob = {k: (min(1.0, q[k] / counts[k][1]) if counts[k][1] > 0 else 1.0) for k in q}
    expected = {k: prob[k] * counts[k][0] for k in q}
    exact_keys = [k for k in sorted(q) if prob[k] < 1.0 and expected[k] <= config.exact_max]
    ks = systematic_round({k: expected[k] for k in exact_keys}, config.seed)
    sizes = {k: min(ks[k], int(counts[k][0])) for k in ks}
    population = {k: int(counts[k][0]) for k in q}
    weights = sample_weights(population, prob, sizes)
    strata = {k: StratumPlan(population[k], float(counts[k][1]), q[k], prob[k], sizes.get(k),
                             weights[k]) for k in q}
    return SamplePlan(strata, None if budget is None else float(budget), config.unit, config.policy)


def sample_weights(population: Mapping[str, int], prob: Mapping[str, float],
                   exact: Mapping[str, int]) -> dict[str, float]:
    """The weight of a kept record per stratum, calibrated to the population entering the sampler.

    - Bernoulli strata (not in `exact`): 1 / p_s, Horvitz-Thompson.
    - Exact-size strata expecting a record or more (v_s = p_s N_s >= 1, so k_s >= 1): N_s / k_s;
      their kept records add up to N_s exactly (post-stratified).
    - The tail, exact-size strata expecting less than one record (k_s is 0 or 1): a drawn one
      stands for itself and, in proportion to its size, for the tail strata that drew nothing:
      N_s * N_tail / N_drawn. The weights then add up to the tail's population, which 1 / p_s
      alone does only on average (its total swings with which strata the rounding drew: 87
      instead of 201 records in issue 12), and N_s / k_s alone never (it drops every stratum
      that drew nothing). If no tail stratum drew, the tail is spread over the other strata.
    """
    weights = {k: 1.0 / p if p > 0 else 0.0 for k, p in prob.items()}
    tail = [k for k in exact if prob[k] * population[k] < 1.0 - 1e-9]
    for k, n in exact.items():
        if n > 0:
            weights[k] = population[k] / n
    tail_population = sum(population[k] for k in tail)
    drawn = sum(population[k] for k in tail if exact[k] > 0)
    if drawn > 0:
        for k in tail:
            weights[k] *= tail_population / drawn
    elif tail_population:
        rest = [k for k in prob if k not in tail]
        covered = sum(population[k] for k in rest)
        for k in rest:
            weights[k] *= (covered + tail_population) / covered if covered else 1.0
    return weights


def select(u: float, rid: str, plan: StratumPlan, cutoff: tuple[float, str] | None) -> bool:
    """Keep? Bernoulli: u < p_s. Exact size: (u, id) among the k_s smallest of its stratum."""
    if plan.exact is not None:
        return plan.exact > 0 and cutoff is not None and (u, rid) <= cutoff
    return u < plan.probability


# ---------------------------------------------------------------------------------------------
# Beam wiring: counts (combine) -> plan (side input) -> exact-size cut-offs -> selection.


class _SumPairs(beam.CombineFn):
    def create_accumulator(self):
        return (0, 0.0)

    def add_input(self, acc, value):
        return (acc[0] + value[0], acc[1] + value[1])

    def merge_accumulators(self, accs):
        n, s = 0, 0.0
        for a, b in accs:
            n, s = n + a, s + b
        return (n, s)

    def extract_output(self, acc):
        return acc


def _cutoffs(
    bottoms: dict[str, list[tuple[float, str]]], plan: SamplePlan
) -> dict[str, tuple[float, str]]:
    """The k_s-th smallest (hash, id) of each exact-size stratum."""
    out = {}
    for key, items in bottoms.items():
        k = plan.strata[key].exact or 0
        if k > 0:
            out[key] = sorted(items)[k - 1]
    return out


class _SelectFn(beam.DoFn):
    def __init__(self, salt: str, drop: bool = True):
        self._salt = salt
        self._drop = drop
        self._in = Metrics.counter(METRICS_NAMESPACE, f"{STAGE}.in")
        self._kept = Metrics.counter(METRICS_NAMESPACE, f"{STAGE}.kept")
        self._dropped = Metrics.counter(METRICS_NAMESPACE, f"{STAGE}.dropped.{STAGE}")

    def process(self, doc: dict[str, Any], plan: SamplePlan, cutoffs: dict[str, tuple[float, str]]):
        self._in.inc()
        key = doc["stratum"]
        sp = plan.strata[key]
        rid = record_id(doc)
        out = {**doc, "stratum_population": sp.population, "inclusion_probability": sp.probability}
        if select(unit_hash(rid, self._salt), rid, sp, cutoffs.get(key)):
            out["sample_weight"] = sp.weight
            self._kept.inc()
            yield out
            return
        out["sample_weight"] = None
        self._dropped.inc()
        out = rejected(out, STAGE, f"{STAGE}:stratum={key},p={sp.probability:.6g}", self._drop)
        yield pvalue.TaggedOutput(REJECTED, out) if self._drop else out


def _stratum_size(doc: dict[str, Any], tokens: bool) -> tuple[str, tuple[int, float]]:
    """(stratum, (1 record, its size in the budget's unit)) for the per-stratum combine."""
    size = float(token_count(doc.get("text") or "")) if tokens else 1.0
    return doc["stratum"], (1, size)


class StratifiedSample(beam.PTransform):
    """docs -> ``StageOutputs``: the sample, the others (reject_stage="sample"), no errors. After
    expansion ``self.plan`` is the one-element PCollection of the ``SamplePlan`` (for stats).
    ``drop=False`` (tag mode) keeps every record, marking those the sample would drop.

    Adds `stratum`, `stratum_population`, `inclusion_probability` and `sample_weight` (kept only).
    Memory: the plan holds one small entry per stratum on every worker, and an exact-size stratum
    keeps at most `exact_max` (hash, id) pairs in its combiner; documents are never grouped.
    """

    def __init__(self, config: SamplingConfig, label: str | None = None, drop: bool = True):
        super().__init__(label)
        self._config = config
        self._drop = drop
        self.plan: Any = None

    def expand(self, docs: Any) -> StageOutputs:
        cfg = self._config
        keys, tokens = cfg.keys, cfg.unit == "tokens"
        salt = f"{STAGE}:{cfg.seed}"

        def with_stratum(doc: dict[str, Any]) -> dict[str, Any]:
            return {**doc, "stratum": stratum_key(doc, keys)}

        stratified = docs | "Stratum" >> beam.Map(with_stratum)
        plan = (
            stratified
            | "Size" >> beam.Map(_stratum_size, tokens)
            | "CountPerStratum" >> beam.CombinePerKey(_SumPairs())
            | "AllCounts" >> beam.combiners.ToDict()
            | "Plan" >> beam.Map(make_plan, cfg)
        )
        plan_side = pvalue.AsSingleton(plan)

        def exact_candidates(doc: dict[str, Any], plan: SamplePlan):
            if plan.strata[doc["stratum"]].exact:
                rid = record_id(doc)
                yield doc["stratum"], (unit_hash(rid, salt), rid)

        cutoffs = (
            stratified
            | "ExactCandidates" >> beam.FlatMap(exact_candidates, plan_side)
            | "BottomK"
            >> beam.CombinePerKey(beam.combiners.TopCombineFn(max(cfg.exact_max, 1), reverse=True))
            | "Bottoms" >> beam.combiners.ToDict()
            | "Cutoffs" >> beam.Map(_cutoffs, plan_side)
        )
        out = stratified | "Select" >> beam.ParDo(
            _SelectFn(salt, self._drop), plan_side, pvalue.AsSingleton(cutoffs)
        ).with_outputs(REJECTED, main=KEPT)
        self.plan = plan
        return StageOutputs(out[KEPT], out[REJECTED], empty(docs.pipeline, "NoErrors"))

"""The keyed stages' decisions, applied to the staged documents in one streaming pass.

The streaming pass (``ApplyStages`` over the per-document stages) writes every document that
reaches the keyed stages to staged files (``io/staged.py``). Exact dedup, near dedup, topics and
the sampler then decide on keys read from those files; their decisions come here keyed by staged
file (``decisions_by_file``, a ``CoGroupByKey`` of small records: a file name and the ids it
holds that are duplicates), and ``ApplyDecisions`` reads each staged file once and emits every
record as the stages would have in order: exact dedup -> the deferred synthetic outcome -> near
dedup -> topics -> sampling. The rules (who is kept, what a record says) stay in the stage
modules; this module only routes.

A staged row's fate (``row_fate``), in pipeline order, run mode:
  no id or exact hash (exact dedup on)  -> error at exact_dedup
  exact duplicate of another document    -> rejected, ``exact_duplicate_of:<id>``
  a deferred outcome (synthetic score's drop or error, signing error) -> rejected / error
  near duplicate (near dedup on)         -> rejected, ``near_duplicate_of:<id>``
  otherwise                              -> enters topics and the sampler
In tag mode nothing is dropped: each record keeps the first stage that would have dropped it and
continues (errors still leave the stream), as ``rejected(..., drop=False)`` says.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.metrics import Metrics
from ouroboros.transforms.base import (
    ERRORS,
    METRICS_NAMESPACE,
    PENDING_ERROR,
    PENDING_ERROR_TYPE,
    PENDING_REASON,
    PENDING_STAGE,
    REJECTED,
    DocumentStage,
    Verdict,
    document_error,
    pending_outcome,
    rejected,
)
from ouroboros.transforms.dedup.components import ClusterInfo
from ouroboros.transforms.dedup.exact import EXACT, has_exact_keys
from ouroboros.transforms.dedup.exact import STAGE as EXACT_STAGE
from ouroboros.transforms.dedup.near import NEAR
from ouroboros.transforms.dedup.near import STAGE as NEAR_STAGE
from ouroboros.transforms.dedup.representative import NEW_TIER, PRIOR_TIER, score_value
from ouroboros.transforms.io.staged import BANDS, INTERNAL, SIGNATURE, SIZE, STRATUM, staged_batches
from ouroboros.transforms.sampling.quotas import STAGE as SAMPLE_STAGE
from ouroboros.transforms.sampling.quotas import (
    SamplePlan,
    _SelectFn,
    token_count,
    unit_hash,
)
from ouroboros.transforms.sampling.strata import stratum_key

CURATED, ENTERING, INDEX = "curated", "entering_sample", "index"
PENDING_COLUMNS = (PENDING_STAGE, PENDING_REASON, PENDING_ERROR_TYPE, PENDING_ERROR)


@dataclass(frozen=True)
class FileDecisions:
    """The keyed decisions about the documents of one staged file (duplicates only: a document
    not named here is its hash's representative and a near-dedup cluster of one)."""

    exact: Mapping[str, str] = field(default_factory=dict)  # id -> the id it duplicates
    near: Mapping[str, ClusterInfo] = field(default_factory=dict)  # id -> its cluster


@dataclass(frozen=True)
class KeyedStages:
    """Which keyed stages run, and how (fixed when the graph is built)."""

    drop: bool = True  # False: `ouroboros tag`, annotate only
    exact: bool = True
    near: bool = True
    topics: bool = False
    sampling: bool = False
    strata_keys: tuple[str, ...] = ("language",)
    tokens: bool = False  # the sampling budget counts tokens
    sample_salt: str = f"{SAMPLE_STAGE}:0"
    index_params: str | None = None  # write band-index rows of near-dedup representatives


def _collect(element: tuple[str, dict[str, list]]) -> tuple[str, FileDecisions]:
    path, joined = element
    exact, near = {}, {}
    for kind, doc_id, value in joined.get("decisions", ()):
        if kind == EXACT:
            exact[doc_id] = value
        elif kind == NEAR:
            near[doc_id] = value
    return path, FileDecisions(exact, near)


class DecisionsByFile(beam.PTransform):
    """Staged file paths + decision records ``(file, (kind, id, value))`` -> ``(file,
    FileDecisions)``, one per staged file (a ``CoGroupByKey`` of small records)."""

    def __init__(self, decisions: Sequence[Any], label: str | None = None):
        super().__init__(label)
        self._decisions = list(decisions)

    def expand(self, files: Any) -> Any:
        keyed = files | "KeyFiles" >> beam.Map(lambda path: (path, None))
        decisions = (self._decisions
                     | "FlattenDecisions" >> beam.Flatten(pipeline=files.pipeline)
                     if self._decisions else files.pipeline | "NoDecisions" >> beam.Create([]))
        return ({"file": keyed, "decisions": decisions}
                | "Join" >> beam.CoGroupByKey()
                | "Collect" >> beam.Map(_collect))


# ---------------------------------------------------------------------------------------------
# A staged row's fate, from its key columns and its file's decisions (no text needed).

KEY_COLUMNS = ("id", "exact_hash", *PENDING_COLUMNS)


def exact_error(row: Mapping[str, Any], plan: KeyedStages) -> str | None:
    if not plan.exact or has_exact_keys(row):
        return None
    return "document without id" if not row.get("id") else "document without exact_hash"


def reaches_near(row: Mapping[str, Any], fd: FileDecisions, plan: KeyedStages) -> bool:
    """Does the row survive exact dedup and the deferred outcomes (the near-dedup input)?"""
    if exact_error(row, plan):
        return False
    pending = pending_outcome(row)
    if plan.drop:
        return row.get("id") not in fd.exact and pending is None
    return pending is None or pending[1] != "error"


def reaches_sample(row: Mapping[str, Any], fd: FileDecisions, plan: KeyedStages) -> bool:
    """Does the row enter topics and the sampler?"""
    if not reaches_near(row, fd, plan):
        return False
    if not plan.drop or not plan.near:
        return True
    info = fd.near.get(row["id"])
    return info is None or info.representative == row["id"]


def near_member(plan: KeyedStages) -> Any:
    """The predicate ``NearDecisions`` uses: a row of the near-dedup input."""
    return lambda row, fd: reaches_near(row, fd, plan)


class _Survivors(beam.DoFn):
    """(file, decisions) -> one small record per document entering topics and the sampler:
    ``(stratum, size, id, file)``; the stratum needs the text only when topics are one of its keys
    (then the fitted model comes as a side input)."""

    def __init__(self, plan: KeyedStages, with_stratum: bool = True):
        self._plan = plan
        self._with_stratum = with_stratum

    def process(self, element: tuple[str, FileDecisions], model: Any = None) -> Iterable[tuple]:
        path, fd = element
        plan = self._plan
        needs_text = self._with_stratum and plan.topics and "topic" in plan.strata_keys
        columns = [*KEY_COLUMNS, STRATUM, SIZE, *(_STRATUM_FIELDS if needs_text else ())]
        for batch in staged_batches(path, list(dict.fromkeys(columns))):
            for row in batch.to_pylist():
                if not reaches_sample(row, fd, plan):
                    continue
                stratum, size = row[STRATUM], row[SIZE]
                if needs_text:
                    topic = model.assign(row.get("text") or "") if model is not None else None
                    stratum = stratum_key({**row, "topic": topic}, plan.strata_keys)
                    size = float(token_count(row.get("text") or "")) if plan.tokens else 1.0
                yield stratum, size, row["id"], path


_STRATUM_FIELDS = ("text", "language", "domain", "url", "provenance_class", "quality_model_score",
                   "quality_pass")


class StratumKeys(DocumentStage):
    """Per-document (streaming pass, sampling on): the document's stratum (``_stratum``) and size
    in the budget's unit (``_size``), so the sampler's plan is made from the staged key columns.
    The stratum is left null when topics are one of its keys (the topic model is fitted later)."""

    name = "strata"
    batch_size = 256

    def __init__(self, keys: Sequence[str], tokens: bool):
        self.keys = tuple(keys)
        self.tokens = tokens

    def process(self, doc: Mapping[str, Any]) -> Verdict:
        size = float(token_count(doc.get("text") or "")) if self.tokens else 1.0
        stratum = None if "topic" in self.keys else stratum_key(doc, self.keys)
        return Verdict({STRATUM: stratum, SIZE: size})


class SamplingPlan(beam.PTransform):
    """(file, decisions) -> (the ``SamplePlan``, the exact-size cut-offs), each a one-element
    PCollection, made from the survivors' key columns as ``StratifiedSample`` makes them from
    documents: counts per stratum -> plan; the k smallest (hash, id) of each exact-size stratum."""

    def __init__(self, config: Any, plan: KeyedStages, model: Any = None):
        super().__init__(label=SAMPLE_STAGE)
        self._config = config
        self._plan = plan
        self._model = model

    def expand(self, decided: Any) -> tuple[Any, Any]:
        from ouroboros.transforms.sampling.quotas import _cutoffs, _SumPairs, make_plan

        cfg, salt = self._config, self._plan.sample_salt
        model = [pvalue.AsSingleton(self._model)] if self._model is not None else []
        plan = (decided
                | "Survivors" >> beam.ParDo(_Survivors(self._plan), *model)
                | "Size" >> beam.Map(lambda s: (s[0], (1, s[1])))
                | "CountPerStratum" >> beam.CombinePerKey(_SumPairs())
                | "AllCounts" >> beam.combiners.ToDict()
                | "Plan" >> beam.Map(make_plan, cfg))
        plan_side = pvalue.AsSingleton(plan)

        def exact_candidates(survivor: tuple, plan: SamplePlan):
            stratum, _, rid, _ = survivor
            if plan.strata[stratum].exact:
                yield stratum, (unit_hash(rid, salt), rid)

        cutoffs = (decided
                   | "SurvivorsAgain" >> beam.ParDo(_Survivors(self._plan), *model)
                   | "ExactCandidates" >> beam.FlatMap(exact_candidates, plan_side)
                   | "BottomK" >> beam.CombinePerKey(
                       beam.combiners.TopCombineFn(max(cfg.exact_max, 1), reverse=True))
                   | "Bottoms" >> beam.combiners.ToDict()
                   | "Cutoffs" >> beam.Map(_cutoffs, plan_side))
        return plan, cutoffs


class _SampleTexts(beam.DoFn):
    """(file, decisions) -> {"id", "text"} of the survivors chosen for the topic model's fit."""

    def __init__(self, plan: KeyedStages):
        self._plan = plan

    def process(self, element: tuple[str, FileDecisions], chosen: list[tuple]) -> Iterable[dict]:
        path, fd = element
        ids = {rid for _, rid, p in chosen if p == path}
        if not ids:
            return
        for batch in staged_batches(path, [*KEY_COLUMNS, "text"]):
            for row in batch.to_pylist():
                if row["id"] in ids and reaches_sample(row, fd, self._plan):
                    yield {"id": row["id"], "text": row["text"]}


class TopicModelFromStaged(beam.PTransform):
    """(file, decisions) -> the fitted ``TopicModel`` (one element): the ``sample_size``
    survivors with the smallest hash of (id, seed), as ``FitTopics`` chooses them, are read back
    from their staged files (a bounded sample) and fitted on."""

    def __init__(self, config: Any, plan: KeyedStages):
        super().__init__(label="topics")
        self._config = config
        self._plan = plan

    def expand(self, decided: Any) -> Any:
        from ouroboros.transforms.sampling.topics import FitTopics

        cfg = self._config
        salt = f"topics:{cfg.seed}"
        chosen = (decided
                  | "Survivors" >> beam.ParDo(_Survivors(self._plan, with_stratum=False))
                  | "Hash" >> beam.Map(lambda s: (unit_hash(s[2], salt), s[2], s[3]))
                  | "Smallest" >> beam.combiners.Top.Smallest(cfg.sample_size))
        # The sample is read in a step of its own (after a shuffle of the small (file,
        # decisions) pairs): fused with the apply pass, which waits for the fitted model, it
        # would wait for itself (Beam's in-process runner stalls: "watermark-pending bundles").
        return (decided
                | "Apart" >> beam.Reshuffle()
                | "ReadSample" >> beam.ParDo(_SampleTexts(self._plan), pvalue.AsSingleton(chosen))
                | "Fit" >> FitTopics(cfg))


# ---------------------------------------------------------------------------------------------
# The apply pass.


class ApplyDecisions(beam.DoFn):
    """(file, decisions) -> every record of the staged file, as the keyed stages decide it.

    Main output: curated records (run) or every record (tag); tagged outputs: ``rejected``,
    ``errors``, ``entering_sample`` (the sampler's input, for the diversity statistics) and
    ``index`` (band-index rows of near-dedup representatives, run mode). Side inputs: the sample
    plan and cut-offs, the topic model (each None when the stage is off)."""

    def __init__(self, plan: KeyedStages):
        self._plan = plan
        self._counters: dict[str, Any] = {}
        self._select = _SelectFn(plan.sample_salt, plan.drop) if plan.sampling else None

    def _inc(self, name: str) -> None:
        counter = self._counters.get(name)
        if counter is None:
            counter = self._counters[name] = Metrics.counter(METRICS_NAMESPACE, name)
        counter.inc()

    def process(self, element: tuple[str, FileDecisions], sample_plan: Any = None,
                cutoffs: Any = None, model: Any = None) -> Iterable[Any]:
        path, fd = element
        for batch in staged_batches(path):
            for row in batch.to_pylist():
                yield from self._apply(row, fd, sample_plan, cutoffs, model)

    def _reject(self, doc: dict[str, Any], stage: str, reason: str) -> tuple[dict, bool]:
        """(the record, whether it left the stream)."""
        return rejected(doc, stage, reason, self._plan.drop), self._plan.drop

    def _apply(self, row: dict[str, Any], fd: FileDecisions, sample_plan: Any, cutoffs: Any,
               model: Any) -> Iterable[Any]:
        plan = self._plan
        pending = pending_outcome(row)
        bands, signature = row.get(BANDS), row.get(SIGNATURE)
        doc = {k: v for k, v in row.items() if k not in INTERNAL}
        problem = exact_error(row, plan)
        if problem is not None:
            yield pvalue.TaggedOutput(ERRORS, document_error(doc, EXACT_STAGE, problem,
                                                             error_type="bad_document"))
            return
        if plan.exact:
            duplicate_of = fd.exact.get(doc["id"])
            if duplicate_of is not None:
                doc, gone = self._reject(doc, EXACT_STAGE, f"exact_duplicate_of:{duplicate_of}")
                if gone:
                    yield pvalue.TaggedOutput(REJECTED, doc)
                    return
            else:
                self._inc(f"{EXACT_STAGE}.kept")
        if pending is not None:
            stage, kind, detail = pending
            if kind == "error":
                error_type, _, message = (detail or "").partition(": ")
                yield pvalue.TaggedOutput(ERRORS, document_error(doc, stage, message,
                                                                 error_type=error_type))
                return
            doc, gone = self._reject(doc, stage, detail or stage)
            if gone:
                yield pvalue.TaggedOutput(REJECTED, doc)
                return
        if plan.near:
            info = fd.near.get(doc["id"]) or ClusterInfo(doc["id"], 1, NEW_TIER)
            is_rep = info.representative == doc["id"]
            doc = {**doc, "dup_cluster_id": info.representative,
                   "dup_cluster_size": info.size, "dup_representative": is_rep}
            if not is_rep:
                if info.representative_tier == PRIOR_TIER:
                    self._inc(f"{NEAR_STAGE}.dropped_by_earlier_run")
                self._inc(f"{NEAR_STAGE}.dropped.near_duplicate_of")
                doc, gone = self._reject(doc, NEAR_STAGE, f"near_duplicate_of:{info.representative}")
                if gone:
                    yield pvalue.TaggedOutput(REJECTED, doc)
                    return
            else:
                self._inc(f"{NEAR_STAGE}.kept")
            if plan.index_params is not None and is_rep:  # unsigned ones too: their id says "kept"
                yield pvalue.TaggedOutput(INDEX, {
                    "id": doc["id"], "crawl_date": doc.get("crawl_date"),
                    "synthetic_score": score_value(doc.get("synthetic_score")),
                    "bands": list(bands or ()), "signature": signature,
                    "index_params": plan.index_params})
        if plan.topics:
            topic = model.assign(doc.get("text") or "") if model is not None else None
            self._inc("topics.assigned" if topic else "topics.no_words")
            doc = {**doc, "topic": topic}
        if plan.sampling:
            doc = {**doc, "stratum": stratum_key(doc, plan.strata_keys)}
            yield pvalue.TaggedOutput(ENTERING, doc)
            yield from self._select.process(doc, sample_plan, cutoffs)
            return
        yield pvalue.TaggedOutput(ENTERING, doc)
        yield doc


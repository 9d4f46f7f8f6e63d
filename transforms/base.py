"""The stage contract, and the plumbing shared by every stage: one rule in one place, routing here.

Every stage is a composite transform with one result shape, ``StageOutputs(kept, rejected,
errors)``: three PCollections, ``errors`` empty for a stage that cannot fail. A stage never changes
its input elements (Beam may hand one element to several consumers, and runners may check): it
emits new dicts.

A per-document stage is a plain Python object (a ``DocumentStage``), testable without Beam:

- ``process(doc) -> Verdict``: the columns it adds or replaces, and a rejection reason or None.
  It reads ``doc`` and never writes to it.
- ``process_batch(docs) -> list[Verdict]``: the same for many documents, one verdict per document
  in order. The default maps ``process``; a model stage (language ID, quality model, synthetic
  scorer) overrides it to score the whole batch in one call, as datatrove's ``filter_batch``.
- ``setup()``/``teardown()``: load and release models once per worker.

``ApplyStage`` wraps one in Beam: documents are grouped by ``beam.BatchElements`` (at most
``batch_size`` documents and about 1M characters per batch), ``process_batch`` decides, and the
plumbing builds each output element as ``{**doc, **verdict.columns}`` (minus the stage's
``consumes`` keys, e.g. the raw HTML payload), with ``reject_stage``/``reject_reason`` when rejected.
An exception on a batch is retried document by document, so only the culprit becomes an error
record. Every decision is counted in Beam metrics (``<stage>.in``, ``.kept``, ``.errors``,
``.dropped.<reason>``).

Deciding (a ``Verdict`` per document) is kept apart from applying it (building the new record), so
a stage can later decide on small keyed records and apply its decisions in a streaming pass over
the documents without changing what its callers see.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.metrics import Metrics
from pydantic import BaseModel, ConfigDict

KEPT = "kept"
REJECTED = "rejected"
ERRORS = "errors"

# Beam metric namespace for every counter the pipeline emits.
METRICS_NAMESPACE = "ouroboros"
BATCH_CHARS = 1 << 20  # text characters per batch, at most (a longer text is a batch of its own)


class StrictModel(BaseModel):
    """Base of every config section: unknown keys and wrong types are errors that name the key."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class StageOutputs(NamedTuple):
    """What every stage returns: documents kept, documents rejected (with stage and reason) and
    error records (inputs the stage could not judge)."""

    kept: Any
    rejected: Any
    errors: Any


class Verdict(NamedTuple):
    """A per-document stage's decision: the columns it adds or replaces, and why it drops the
    document (None: keep)."""

    columns: dict[str, Any]
    reason: str | None = None


class DocumentStage:
    """Base of the per-document stages (see the module docstring)."""

    name: str = "stage"
    consumes: tuple[str, ...] = ()  # input keys the stage uses up: left out of its outputs
    batch_size: int = 64  # documents per ``process_batch`` call, at most

    def setup(self) -> None:
        """Load models (once per worker process)."""

    def teardown(self) -> None:
        """Release what ``setup`` holds."""

    def finish_bundle(self) -> None:
        """Let go of what the bundle built up (per-worker caches that only speed up the next
        documents): a cache kept past its stage holds memory through every later stage."""

    def process(self, doc: Mapping[str, Any]) -> Verdict:
        raise NotImplementedError

    def process_batch(self, docs: Sequence[Mapping[str, Any]]) -> list[Verdict]:
        return [self.process(doc) for doc in docs]


def reason_key(reason: str) -> str:
    """The stable part of a reason (`rule:signal=value` -> `rule`), used for counters and stats."""
    return reason.split(":", 1)[0].split("=", 1)[0]


def rejected(doc: Mapping[str, Any], stage: str, reason: str, drop: bool = True) -> dict[str, Any]:
    """A new record: ``doc`` with ``reject_stage``/``reject_reason``. With ``drop=False`` (tag
    mode) a record keeps the first stage that would have dropped it."""
    out = dict(doc)
    if drop or not doc.get("reject_stage"):
        out["reject_stage"] = stage
        out["reject_reason"] = reason
    return out


def apply_verdict(doc: Mapping[str, Any], verdict: Verdict, stage: str,
                  consumes: Iterable[str] = (), drop: bool = True) -> dict[str, Any]:
    """The stage's output record: a new dict ``{**doc, **columns}`` without the consumed keys,
    marked rejected when the verdict has a reason."""
    gone = set(consumes)
    out = {k: v for k, v in doc.items() if k not in gone} if gone else dict(doc)
    out.update(verdict.columns)
    if verdict.reason is not None and (drop or not doc.get("reject_stage")):
        out["reject_stage"] = stage
        out["reject_reason"] = verdict.reason
    return out


def run_stage(stage: DocumentStage, doc: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    """One document through a stage, outside Beam: (its output record, the reason or None)."""
    verdict = stage.process_batch([doc])[0]
    return apply_verdict(doc, verdict, stage.name, stage.consumes), verdict.reason


def error_record(source_uri: str, source_format: str, location: str, stage: str,
                 exc: BaseException | str, *, error_type: str | None = None,
                 record_id: str | None = None, raw: bytes | str | None = None,
                 run_id: str | None = None, count: int = 1) -> dict[str, Any]:
    """A quarantined input that could not become a document, with where it was and why;
    `count` > 1 for a summary that stands for that many inputs (`read.max_errors_per_shard`)."""
    if isinstance(raw, bytes):
        raw = raw[:200].decode("utf-8", "replace")
    return {
        "source_uri": source_uri,
        "source_format": source_format,
        "source_location": location,
        "source_record_id": record_id,
        "error_stage": stage,
        "error_type": error_type or (type(exc).__name__ if isinstance(exc, BaseException) else "error"),
        "error_message": str(exc)[:2000],
        "raw_excerpt": raw[:200] if raw else None,
        "run_id": run_id,
        "error_count": count,
    }


def document_error(doc: Mapping[str, Any], stage: str, exc: BaseException | str,
                   error_type: str | None = None) -> dict[str, Any]:
    """The error record of a document a stage could not judge."""
    return error_record(doc.get("source_uri") or "", doc.get("source_format") or "",
                        f"record:{doc.get('source_record_id')}", stage, exc, error_type=error_type,
                        record_id=doc.get("id"), run_id=doc.get("run_id"))


def text_units(doc: Mapping[str, Any], chars_per_unit: int = 2048) -> int:
    """Batch weight of a document for ``BatchElements``: one unit per ``chars_per_unit``
    characters of text (rounded up), at least one."""
    text = doc.get("text")
    return max(1, -(-len(text) // chars_per_unit)) if isinstance(text, str) else 1


def empty(pipeline: beam.Pipeline, label: str) -> Any:
    """An empty PCollection: the ``errors`` of a stage that cannot fail."""
    return pipeline | label >> beam.Create([])


DEFER = "defer"  # a stage whose outcome is recorded on the document, applied later (`pending`)

# Transient columns of a deferred outcome: a stage that runs early (in the streaming pass) but
# whose drop or error takes effect after a keyed decision (exact dedup) that comes first in the
# pipeline's order. ``pending_outcome`` reads them back.
PENDING_STAGE, PENDING_REASON = "_pending_stage", "_pending_reason"
PENDING_ERROR_TYPE, PENDING_ERROR = "_pending_error_type", "_pending_error"


def doc_units(doc: Mapping[str, Any], chars_per_unit: int) -> int:
    """Batch weight of a document: its text or its raw payload, whichever is longer."""
    text, payload = doc.get("text"), doc.get("_payload")
    size = max(len(text) if isinstance(text, str) else 0,
               len(payload) if isinstance(payload, (bytes, str)) else 0)
    return max(1, -(-size // chars_per_unit))


class _StagesDoFn(beam.DoFn):
    """Runs a chain of per-document stages over one batch: each stage decides on the documents the
    previous one kept, in sub-batches of its own ``batch_size``. A stage in ``deferred`` records
    its drop or error on the document (``_pending_*``) instead of applying it."""

    def __init__(self, stages: Sequence[DocumentStage], drop: bool,
                 deferred: Sequence[str] = ()):
        self._stages = list(stages)
        self._drop = drop
        self._deferred = frozenset(deferred)
        self._counters: dict[str, Any] = {}
        self._setup_seconds: dict[str, float] = {}

    def _counter(self, name: str) -> Any:
        counter = self._counters.get(name)
        if counter is None:
            counter = self._counters[name] = Metrics.counter(METRICS_NAMESPACE, name)
        return counter

    def setup(self) -> None:
        # Models are loaded here, once per worker process (the model stages share them through
        # `apache_beam.utils.shared.Shared`); the time is reported at the first bundle, as
        # `<stage>.setup_msecs` and `<stage>.setups`, since counters only count inside a bundle.
        for stage in self._stages:
            t0 = time.perf_counter()
            stage.setup()
            self._setup_seconds[stage.name] = time.perf_counter() - t0

    def teardown(self) -> None:
        for stage in self._stages:
            stage.teardown()

    def finish_bundle(self) -> None:
        for stage in self._stages:
            stage.finish_bundle()

    def start_bundle(self) -> None:
        for name, seconds in self._setup_seconds.items():
            self._counter(f"{name}.setups").inc()
            self._counter(f"{name}.setup_msecs").inc(int(seconds * 1000))
        self._setup_seconds = {}

    def _decide(self, stage: DocumentStage, docs: list[dict[str, Any]]) -> list[Verdict | Exception]:
        """One verdict per document; a failing batch is retried one document at a time, so that
        only the document that fails becomes an error."""
        try:
            verdicts = stage.process_batch(docs)
            if len(verdicts) != len(docs):
                raise RuntimeError(f"{stage.name}: {len(verdicts)} verdicts for "
                                   f"{len(docs)} documents")
            return list(verdicts)
        except Exception as exc:  # noqa: BLE001 - a stage bug or hostile input must not crash the run
            if len(docs) == 1:
                return [exc]
        outcomes: list[Verdict | Exception] = []
        for doc in docs:
            outcomes += self._decide(stage, [doc])
        return outcomes

    def _run(self, stage: DocumentStage, docs: list[dict[str, Any]]) -> list[Verdict | Exception]:
        size = max(1, stage.batch_size)
        t0 = time.perf_counter()
        out: list[Verdict | Exception] = []
        for i in range(0, len(docs), size):
            out += self._decide(stage, docs[i:i + size])
        self._counter(f"{stage.name}.msecs").inc(int((time.perf_counter() - t0) * 1000))
        return out

    def _skips(self, deferred: bool, doc: Mapping[str, Any]) -> bool:
        """An earlier deferred outcome takes the document out before a deferred stage (a drop in
        a tagging run only annotates, so the stage still runs on that document)."""
        return deferred and bool(doc.get(PENDING_STAGE)) and (
            self._drop or bool(doc.get(PENDING_ERROR_TYPE)))

    def process(self, batch: Sequence[dict[str, Any]]) -> Iterable[Any]:
        docs = list(batch)
        for stage in self._stages:
            if not docs:
                return
            name = stage.name
            deferred = name in self._deferred
            alive = [doc for doc in docs if self._skips(deferred, doc)]
            todo = [doc for doc in docs if not self._skips(deferred, doc)]
            self._counter(f"{name}.in").inc(len(todo))
            for doc, verdict in zip(todo, self._run(stage, todo) if todo else []):
                if isinstance(verdict, Exception):
                    self._counter(f"{name}.errors").inc()
                    if deferred:  # reported later as an error of the stage that would meet it
                        alive.append({**doc, PENDING_STAGE: getattr(stage, "error_stage", name),
                                      PENDING_ERROR_TYPE: getattr(verdict, "error_type",
                                                                  type(verdict).__name__),
                                      PENDING_ERROR: str(verdict)[:2000]})
                    else:
                        yield pvalue.TaggedOutput(ERRORS, document_error(doc, name, verdict))
                    continue
                if verdict.reason is not None:
                    self._counter(f"{name}.dropped.{reason_key(verdict.reason)}").inc()
                else:
                    self._counter(f"{name}.kept").inc()
                if deferred:
                    out = apply_verdict(doc, verdict._replace(reason=None), name, stage.consumes)
                    if verdict.reason is not None and not doc.get(PENDING_STAGE):
                        out[PENDING_STAGE], out[PENDING_REASON] = name, verdict.reason
                    alive.append(out)
                    continue
                out = apply_verdict(doc, verdict, name, stage.consumes, self._drop)
                if verdict.reason is not None and self._drop:
                    yield pvalue.TaggedOutput(REJECTED, out)
                    continue
                alive.append(out)
            docs = alive
        yield from docs


def pending_outcome(doc: Mapping[str, Any]) -> tuple[str, str, str | None] | None:
    """A deferred stage's outcome recorded on `doc`: (stage, "reject" | "error", reason or
    "type: message"), or None."""
    stage = doc.get(PENDING_STAGE)
    if not stage:
        return None
    if doc.get(PENDING_ERROR_TYPE):
        return stage, "error", f"{doc[PENDING_ERROR_TYPE]}: {doc.get(PENDING_ERROR) or ''}"
    return stage, "reject", doc.get(PENDING_REASON)


class ApplyStages(beam.PTransform):
    """Runs a chain of per-document stages in one step; returns ``StageOutputs``.

    One ``ParDo`` for the whole chain keeps every document in one fused, streaming step with one
    ``rejected`` and one ``errors`` output (a runner that materialises a multi-input ``Flatten``,
    as Beam's in-process runner does, would otherwise hold every rejected document in memory).
    Batches hold at most ``max(batch_size)`` documents and about ``BATCH_CHARS`` characters of
    text or raw payload. ``deferred``: names of stages whose drops and errors are recorded on the
    document (``pending_outcome``) rather than applied. ``drop=False`` only annotates.
    """

    def __init__(self, stages: Sequence[DocumentStage], drop: bool = True,
                 deferred: Sequence[str] = (), label: str | None = None):
        super().__init__(label=label or "+".join(s.name for s in stages))
        self._stages = list(stages)
        self._drop = drop
        self._deferred = tuple(deferred)

    def expand(self, docs: Any) -> StageOutputs:
        size = max(max(1, s.batch_size) for s in self._stages)
        # A document weighs one unit per BATCH_CHARS / size characters (at least one), so a batch
        # holds at most `size` documents and about BATCH_CHARS characters. Fixed-size batches
        # (min = max; a bundle's last one is smaller): Beam's adaptive sizing would start every
        # bundle at one document per model call.
        out = (docs
               | "Batch" >> beam.BatchElements(
                   min_batch_size=size, max_batch_size=size,
                   element_size_fn=partial(doc_units, chars_per_unit=max(1, BATCH_CHARS // size)))
               | "Apply" >> beam.ParDo(_StagesDoFn(self._stages, self._drop, self._deferred))
               .with_outputs(REJECTED, ERRORS, main=KEPT))
        return StageOutputs(out[KEPT], out[REJECTED], out[ERRORS])


class ApplyStage(ApplyStages):
    """Runs one per-document stage over batches of documents; returns ``StageOutputs``.

    With ``drop=False`` (``ouroboros tag``) the stage only annotates: nothing is rejected.
    """

    def __init__(self, stage: DocumentStage, drop: bool = True):
        super().__init__([stage], drop, label=stage.name)

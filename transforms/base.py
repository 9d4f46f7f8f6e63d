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


class _StageDoFn(beam.DoFn):
    def __init__(self, stage: DocumentStage, drop: bool):
        self._stage = stage
        self._drop = drop
        name = stage.name
        self._in = Metrics.counter(METRICS_NAMESPACE, f"{name}.in")
        self._out = Metrics.counter(METRICS_NAMESPACE, f"{name}.kept")
        self._errors = Metrics.counter(METRICS_NAMESPACE, f"{name}.errors")
        self._reasons: dict[str, Any] = {}

    def setup(self) -> None:
        self._stage.setup()

    def teardown(self) -> None:
        self._stage.teardown()

    def _count_reason(self, reason: str) -> None:
        key = reason_key(reason)
        counter = self._reasons.get(key)
        if counter is None:
            counter = self._reasons[key] = Metrics.counter(
                METRICS_NAMESPACE, f"{self._stage.name}.dropped.{key}")
        counter.inc()

    def _decide(self, docs: list[dict[str, Any]]) -> list[Verdict | Exception]:
        """One verdict per document; a failing batch is retried one document at a time, so that
        only the document that fails becomes an error."""
        try:
            verdicts = self._stage.process_batch(docs)
            if len(verdicts) != len(docs):
                raise RuntimeError(f"{self._stage.name}: {len(verdicts)} verdicts for "
                                   f"{len(docs)} documents")
            return list(verdicts)
        except Exception as exc:  # noqa: BLE001 - a stage bug or hostile input must not crash the run
            if len(docs) == 1:
                return [exc]
        outcomes: list[Verdict | Exception] = []
        for doc in docs:
            outcomes += self._decide([doc])
        return outcomes

    def process(self, batch: Sequence[dict[str, Any]]) -> Iterable[Any]:
        docs = list(batch)
        self._in.inc(len(docs))
        stage = self._stage
        for doc, verdict in zip(docs, self._decide(docs)):
            if isinstance(verdict, Exception):
                self._errors.inc()
                yield pvalue.TaggedOutput(ERRORS, document_error(doc, stage.name, verdict))
                continue
            out = apply_verdict(doc, verdict, stage.name, stage.consumes, self._drop)
            if verdict.reason is not None:
                self._count_reason(verdict.reason)
                if self._drop:
                    yield pvalue.TaggedOutput(REJECTED, out)
                    continue
            self._out.inc()
            yield out


class ApplyStage(beam.PTransform):
    """Runs one per-document stage over batches of documents; returns ``StageOutputs``.

    With ``drop=False`` (``ouroboros tag``) the stage only annotates: nothing is rejected.
    """

    def __init__(self, stage: DocumentStage, drop: bool = True):
        super().__init__(label=stage.name)
        self._stage = stage
        self._drop = drop

    def expand(self, docs: Any) -> StageOutputs:
        size = max(1, self._stage.batch_size)
        # A document weighs one unit per BATCH_CHARS / size characters (at least one), so a batch
        # holds at most `size` documents and about BATCH_CHARS characters. Fixed-size batches
        # (min = max; a bundle's last one is smaller): Beam's adaptive sizing would start every
        # bundle at one document per model call.
        out = (docs
               | "Batch" >> beam.BatchElements(
                   min_batch_size=size, max_batch_size=size,
                   element_size_fn=partial(text_units, chars_per_unit=max(1, BATCH_CHARS // size)))
               | "Apply" >> beam.ParDo(_StageDoFn(self._stage, self._drop)).with_outputs(
                   REJECTED, ERRORS, main=KEPT))
        return StageOutputs(out[KEPT], out[REJECTED], out[ERRORS])

"""Plumbing shared by the per-document stages: one rule in one place, the routing here.

A per-document stage is an object with a ``name``, an optional ``setup()`` (load models once per
worker process) and ``process(doc) -> reason | None``: it adds its columns to ``doc`` (a plain dict of
schema columns) and returns a rejection reason, or None to keep the document. It is a plain Python
object, testable without Beam; ``ApplyStage`` wraps it for a pipeline, routes rejected documents to a
tagged output with ``reject_stage``/``reject_reason`` and counts every decision in Beam metrics.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.metrics import Metrics
from pydantic import BaseModel, ConfigDict

KEPT = "kept"
REJECTED = "rejected"
ERRORS = "errors"

# Beam metric namespace for every counter the pipeline emits.
METRICS_NAMESPACE = "ouroboros"


class StrictModel(BaseModel):
    """Base of every config section: unknown keys and wrong types are errors that name the key."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class DocumentStage(Protocol):
    name: str

    def setup(self) -> None: ...

    def process(self, doc: dict[str, Any]) -> str | None: ...


def reason_key(reason: str) -> str:
    """The stable part of a reason (`rule:signal=value` -> `rule`), used for counters and stats."""
    return reason.split(":", 1)[0].split("=", 1)[0]


def reject(doc: dict[str, Any], stage: str, reason: str) -> dict[str, Any]:
    doc["reject_stage"] = stage
    doc["reject_reason"] = reason
    return doc


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
        setup = getattr(self._stage, "setup", None)
        if setup is not None:
            setup()

    def teardown(self) -> None:
        teardown = getattr(self._stage, "teardown", None)
        if teardown is not None:
            teardown()

    def _count_reason(self, reason: str) -> None:
        key = reason_key(reason)
        counter = self._reasons.get(key)
        if counter is None:
            counter = self._reasons[key] = Metrics.counter(
                METRICS_NAMESPACE, f"{self._stage.name}.dropped.{key}")
        counter.inc()

    def process(self, doc: dict[str, Any]) -> Iterable[Any]:
        self._in.inc()
        try:
            reason = self._stage.process(doc)
        except Exception as exc:  # a stage bug or hostile input must not crash the run
            self._errors.inc()
            yield pvalue.TaggedOutput(ERRORS, error_record(
                doc.get("source_uri") or "", doc.get("source_format") or "",
                f"record:{doc.get('source_record_id')}", self._stage.name, exc,
                record_id=doc.get("id"), run_id=doc.get("run_id")))
            return
        if reason is not None:
            self._count_reason(reason)
            if self._drop:
                yield pvalue.TaggedOutput(REJECTED, reject(doc, self._stage.name, reason))
                return
            if not doc.get("reject_stage"):  # tag mode: record the first stage that would drop it
                reject(doc, self._stage.name, reason)
        self._out.inc()
        yield doc


class ApplyStage(beam.PTransform):
    """Runs one per-document stage; outputs ``kept`` (main), ``rejected`` and ``errors``.

    With ``drop=False`` (``ouroboros tag``) the stage only annotates: nothing is rejected.
    """

    def __init__(self, stage: DocumentStage, drop: bool = True):
        super().__init__(label=stage.name)
        self._stage = stage
        self._drop = drop

    def expand(self, docs):
        return docs | "Apply" >> beam.ParDo(_StageDoFn(self._stage, self._drop)).with_outputs(
            REJECTED, ERRORS, main=KEPT)

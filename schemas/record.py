"""The output record: the single source of truth for every column ouroboros writes.

Writers, readers of earlier runs, the README's column table and the tests all derive from the
definitions here; nothing else restates a column. A document flows through the pipeline as a plain
``dict`` whose keys are column names; ``conform`` turns it into a row of exactly this schema.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from ouroboros.transforms.quality.rules import SIGNALS

SCHEMA_VERSION = "1.0"


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    group: str
    doc: str


# Per-document quality signal values (not only pass/fail), so a user can re-threshold later without
# re-running: (name, meaning), in column order. Their single list is the rule families' table in
# transforms/quality/rules.py (a data-only module); null where a rule family did not run.
QUALITY_SIGNALS: tuple[tuple[str, str], ...] = tuple((s.name, s.doc) for s in SIGNALS)

QUALITY_SIGNALS_TYPE = pa.struct([pa.field(n, pa.float64()) for n, _ in QUALITY_SIGNALS])

COLUMNS: tuple[Column, ...] = (
    # identity
    Column("id", pa.string(), "identity",
           "stable record id: sha256 of source_uri + source_record_id (first 32 hex chars; + the "
           "byte offset for a WARC-Record-ID repeated within its shard)"),
    Column("text", pa.string(), "identity", "the document text (extracted from HTML where needed, normalized)"),
    Column("content_sha256", pa.string(), "identity", "sha256 of `text` as stored (hex)"),
    # source
    Column("source_uri", pa.string(), "source", "the shard the record came from (path or URI)"),
    Column("source_format", pa.string(), "source", "warc | wet | jsonl | parquet | hf_dataset"),
    Column("source_record_id", pa.string(), "source",
           "WARC-Record-ID, or `line:N` / `row:N` (0-based) for JSONL, Parquet and HF datasets"),
    Column("source_offset", pa.int64(), "source",
           "byte offset of the WARC record in the (compressed) shard, or the line/row number"),
    Column("url", pa.string(), "source", "the page URL (WARC-Target-URI or the source's url field)"),
    Column("domain", pa.string(), "source", "registered domain of `url` (public-suffix aware, offline)"),
    Column("crawl_date", pa.string(), "source", "crawl date as the source gives it (ISO 8601 when valid)"),
    Column("content_type", pa.string(), "source", "HTTP Content-Type of the payload (WARC) or null"),
    Column("http_status", pa.int32(), "source", "HTTP status of the WARC response, or null"),
    Column("source_metadata", pa.string(), "source",
           "JSON object of the source record's other fields (JSONL/Parquet/HF), or null"),
    Column("extractor", pa.string(), "source", "HTML-to-text extractor and version, null for plain text"),
    # language
    Column("language", pa.string(), "language", "ISO 639 code from fastText lid.176, or null"),
    Column("language_score", pa.float32(), "language", "fastText probability of `language`"),
    # quality
    Column("quality_signals", QUALITY_SIGNALS_TYPE, "quality",
           "per-rule signal values (see the quality signal table)"),
    Column("quality_pass", pa.bool_(), "quality", "true if every enabled quality rule passed"),
    Column("quality_reasons", pa.list_(pa.string()), "quality",
           "failing rules, each `rule:signal=value` (empty when quality_pass)"),
    Column("quality_model_score", pa.float32(), "quality",
           "score of the optional trained fastText quality classifier, or null"),
    # dedup
    Column("exact_hash", pa.string(), "dedup", "sha256 of the dedup-normalized text (first 32 hex)"),
    Column("dup_cluster_id", pa.string(), "dedup",
           "near-duplicate cluster id (the representative's id), null if near-dedup did not run"),
    Column("dup_cluster_size", pa.int64(), "dedup", "documents in the near-duplicate cluster (1 = unique)"),
    Column("dup_representative", pa.bool_(), "dedup", "true if this record represents its cluster"),
    # synthetic
    Column("synthetic_score", pa.float32(), "synthetic",
           "calibrated probability that the text is machine-written, or null"),
    Column("provenance_class", pa.string(), "synthetic", "human | ai_assisted | synthetic | unknown"),
    Column("synthetic_model", pa.string(), "synthetic", "scorer name and version"),
    # sampling
    Column("topic", pa.string(), "sampling",
           "unsupervised topic label t00.. fitted on the run (transforms/sampling/topics.py), or null"),
    Column("stratum", pa.string(), "sampling", "the stratum key the sampler used"),
    Column("stratum_population", pa.int64(), "sampling", "records in the stratum before sampling"),
    Column("inclusion_probability", pa.float64(), "sampling",
           "design probability that the sampler keeps a record of this stratum (> 0 for every stratum)"),
    Column("sample_weight", pa.float64(), "sampling",
           "Horvitz-Thompson weight, calibrated: the weights of the sample add up to the records "
           "that entered the sampler (N_s / k_s for an exact-size stratum)"),
    # run
    Column("pipeline_version", pa.string(), "run", "ouroboros version and schema version"),
    Column("config_sha256", pa.string(), "run", "sha256 of the effective configuration (canonical JSON)"),
    Column("run_id", pa.string(), "run", "id of the run that wrote the record"),
    Column("processed_at", pa.timestamp("us", tz="UTC"), "run", "when the run started (UTC)"),
)

DECISION_COLUMNS: tuple[Column, ...] = (
    Column("reject_stage", pa.string(), "decision", "stage that dropped the record"),
    Column("reject_reason", pa.string(), "decision", "why, naming the rule and the failing value"),
)

ERROR_COLUMNS: tuple[Column, ...] = (
    Column("source_uri", pa.string(), "error", "the shard"),
    Column("source_format", pa.string(), "error", "reader that failed"),
    Column("source_location", pa.string(), "error", "`offset:N`, `line:N`, `row:N` or `shard`"),
    Column("source_record_id", pa.string(), "error", "record id where known"),
    Column("error_stage", pa.string(), "error", "read | extract | <stage name>"),
    Column("error_type", pa.string(), "error", "exception class or limit name"),
    Column("error_message", pa.string(), "error", "the exception message"),
    Column("raw_excerpt", pa.string(), "error", "the first bytes of the bad input, when available"),
    Column("run_id", pa.string(), "error", "id of the run"),
    Column("error_count", pa.int64(), "error",
           "input records this error stands for: 1, or more for the summary of a shard's errors "
           "beyond read.max_errors_per_shard"),
)


def _schema(columns: tuple[Column, ...], kind: str) -> pa.Schema:
    return pa.schema([pa.field(c.name, c.type) for c in columns],
                     metadata={"ouroboros.schema_version": SCHEMA_VERSION, "ouroboros.kind": kind})


RECORD_SCHEMA = _schema(COLUMNS, "curated")
REJECTED_SCHEMA = _schema(COLUMNS + DECISION_COLUMNS, "rejected")
ERROR_SCHEMA = _schema(ERROR_COLUMNS, "errors")
COLUMN_NAMES = frozenset(c.name for c in COLUMNS + DECISION_COLUMNS)

# Columns every curated record must fill (the provenance contract).
PROVENANCE_COLUMNS = ("source_uri", "source_record_id", "content_sha256", "run_id",
                      "pipeline_version", "config_sha256")


def conform(doc: dict[str, Any], schema: pa.Schema = RECORD_SCHEMA) -> dict[str, Any]:
    """A row with exactly the schema's columns: missing ones become null, extra keys are dropped."""
    row = {}
    for field in schema:
        value = doc.get(field.name)
        if field.name == "quality_signals" and value is not None:
            value = {n: value.get(n) for n, _ in QUALITY_SIGNALS}
        elif field.name == "source_metadata" and value is not None and not isinstance(value, str):
            value = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
        row[field.name] = value
    return row


def markdown_table(columns: tuple[Column, ...] = COLUMNS + DECISION_COLUMNS) -> str:
    """The column table of the README, generated from the schema (a test keeps them equal)."""
    lines = ["| column | type | group | meaning |", "|---|---|---|---|"]
    for c in columns:
        lines.append(f"| `{c.name}` | {c.type} | {c.group} | {c.doc} |")
    return "\n".join(lines)


def signals_table() -> str:
    lines = ["| signal | meaning |", "|---|---|"]
    lines += [f"| `{n}` | {d} |" for n, d in QUALITY_SIGNALS]
    return "\n".join(lines)

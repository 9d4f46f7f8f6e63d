from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
from ouroboros.schemas.record import (
    COLUMNS,
    RECORD_SCHEMA,
    REJECTED_SCHEMA,
    conform,
    markdown_table,
    signals_table,
)

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_column_tables_are_generated_from_the_schema():
    text = README.read_text()
    assert markdown_table() in text, "README column table is stale: run `ouroboros schema`"
    assert signals_table() in text, "README quality-signal table is stale"
    from ouroboros.schemas.readme import rules_table

    assert rules_table() in text, "README quality-rule table is stale: python -m ouroboros.schemas.readme"


def test_conform_fills_missing_columns_and_drops_transient_keys():
    row = conform({"id": "x", "text": "t", "_payload": b"raw", "source_metadata": {"a": 1},
                   "processed_at": dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),
                   "quality_signals": {"n_words": 3.0}})
    assert set(row) == {c.name for c in COLUMNS}
    assert row["source_metadata"] == '{"a": 1}' and row["language"] is None
    assert row["quality_signals"]["n_words"] == 3.0
    pa.Table.from_pylist([row], schema=RECORD_SCHEMA)  # types line up
    assert REJECTED_SCHEMA.names[-2:] == ["reject_stage", "reject_reason"]

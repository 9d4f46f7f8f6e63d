"""`ouroboros inspect OUT --id ID | --url URL`: one record, where it came from and why it ended where it did.

Looks the record up in the curated, rejected (or tagged) and error outputs, and explains each stage
from the columns the stage wrote: kept, dropped (with the reason), not reached or not run. For a
duplicate it shows the record it duplicates and the other members: near duplicates through
`dup_cluster_id` (every member carries its cluster's id, which is the representative's id) and
`near_duplicate_of:<id>`, exact duplicates through `exact_duplicate_of:<id>`. Reads only the row
groups that hold a match (see `pipeline/outputs.py`).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

from ouroboros.pipeline.outputs import find_rows, find_values, mode, read_stats
from ouroboros.pipeline.profile import STAGE_ORDER
from ouroboros.schemas.record import COLUMNS

# A stage's switch in the config (section, key); a stage whose switch is off did not run.
STAGE_SWITCH = {"language_id": ("langid", "enabled"), "quality": ("quality", "enabled"),
                "quality_model": ("quality_model", "model_path"),
                "exact_dedup": ("exact_dedup", "enabled"), "synthetic": ("synthetic", "enabled"),
                "near_dedup": ("near_dedup", "enabled"), "sample": ("sampling", "enabled")}
RELATED_COLUMNS = ["url", "reject_stage", "reject_reason", "dup_representative", "crawl_date",
                   "synthetic_score"]


@dataclass
class Decision:
    stage: str
    verdict: str  # kept | dropped | would drop | not reached | not run
    detail: str


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _evidence(stage: str, r: dict[str, Any]) -> str:
    """What the stage wrote on the record, in a line."""
    if stage == "read":
        return f"{r.get('source_format')} record {r.get('source_record_id')} of {r.get('source_uri')}"
    if stage == "extract":
        return (f"extractor={r.get('extractor') or 'none (plain text)'}, "
                f"content_type={r.get('content_type')}, http_status={r.get('http_status')}")
    if stage == "normalize":
        return f"{len(r.get('text') or ''):,} characters, content_sha256={r.get('content_sha256')}"
    if stage == "language_id":
        score = r.get("language_score")
        return f"language={r.get('language')} (score {_fmt(score) if score is not None else '-'})"
    if stage == "quality":
        reasons = r.get("quality_reasons") or []
        if r.get("quality_pass") is None:
            return "no verdict"
        return "every rule passed" if r.get("quality_pass") else "failed: " + "; ".join(reasons)
    if stage == "quality_model":
        return f"quality_model_score={_fmt(r.get('quality_model_score'))}"
    if stage == "exact_dedup":
        return f"exact_hash={r.get('exact_hash')}"
    if stage == "synthetic":
        return (f"synthetic_score={_fmt(r.get('synthetic_score'))} -> {r.get('provenance_class')} "
                f"({r.get('synthetic_model')})")
    if stage == "near_dedup":
        role = "its representative" if r.get("dup_representative") else "a duplicate member"
        return (f"cluster {r.get('dup_cluster_id')} of {r.get('dup_cluster_size')} documents; "
                f"this record is {role}")
    if stage == "sample":
        if r.get("stratum") is None:
            return "no stratum"
        return (f"stratum {r.get('stratum')} (population {r.get('stratum_population')}), "
                f"inclusion_probability={_fmt(r.get('inclusion_probability'))}, "
                f"sample_weight={_fmt(r.get('sample_weight'))}")
    return ""


def decisions(record: dict[str, Any], config: dict[str, Any] | None, tagged: bool) -> list[Decision]:
    """Each stage in pipeline order: what it decided about this record, and on what evidence."""
    config = config or {}
    stage_dropped = record.get("reject_stage")
    reached = True
    out = []
    for stage in STAGE_ORDER:
        switch = STAGE_SWITCH.get(stage)
        if switch and config and not (config.get(switch[0]) or {}).get(switch[1]):
            state = "is not set" if switch[1].endswith("path") else "is false"
            out.append(Decision(stage, "not run", f"{switch[0]}.{switch[1]} {state}"))
            continue
        if not reached:
            out.append(Decision(stage, "not reached", ""))
            continue
        if stage == stage_dropped:
            verdict = "would drop" if tagged else "dropped"
            out.append(Decision(stage, verdict,
                                f"{record.get('reject_reason')}; {_evidence(stage, record)}"))
            reached = tagged
            continue
        out.append(Decision(stage, "kept", _evidence(stage, record)))
    return out


def _members(out: str, column: str, values: list[str], parts: list[str]) -> list[dict[str, Any]]:
    rows = []
    for part in parts:
        rows += find_values(out, part, column, values, ["id", *RELATED_COLUMNS])
    return rows


def related(out: str, record: dict[str, Any], parts: list[str]) -> dict[str, Any]:
    """The near-duplicate cluster and the exact copies a record belongs to."""
    found: dict[str, Any] = {}
    rid, reason = record.get("id"), record.get("reject_reason") or ""
    cluster, size = record.get("dup_cluster_id"), record.get("dup_cluster_size") or 0
    if cluster and (size > 1 or reason.startswith("near_duplicate_of:")):
        members = _members(out, "dup_cluster_id", [cluster], parts)
        rep = next((m for m in members if m["id"] == cluster), None)
        found["near_duplicates"] = {
            "cluster_id": cluster, "size": size,
            "representative": rep or {"id": cluster, "_part": None,
                                      "note": "not in this output: kept by an earlier run (--state)"},
            "members": [m for m in members if m["id"] != cluster],
        }
    target = reason.split(":", 1)[1] if reason.startswith("exact_duplicate_of:") else rid
    copies = _members(out, "reject_reason", [f"exact_duplicate_of:{target}"], parts)
    if copies or target != rid:
        kept = _members(out, "id", [target], parts)
        found["exact_duplicates"] = {
            "kept": kept[0] if kept else {"id": target, "_part": None, "note": "not in this output"},
            "copies": copies,
        }
    return found


def lookup(out: str, record_id: str | None = None, url: str | None = None) -> list[dict[str, Any]]:
    """Every record with this id or URL, each with `_part` (curated | rejected | tagged | errors)."""
    parts = ["tagged"] if mode(out) == "tag" else ["curated", "rejected"]
    column, value = ("id", record_id) if record_id else ("url", url)
    rows = []
    for part in parts:
        rows += find_rows(out, part, column, [value])
    if record_id:  # a stage error keeps the document's id in source_record_id
        rows += find_rows(out, "errors", "source_record_id", [record_id])
    return rows


def explain(out: str, record_id: str | None = None, url: str | None = None) -> list[dict[str, Any]]:
    """The records found, each with its decisions and related records (JSON-able)."""
    tagged = mode(out) == "tag"
    parts = ["tagged"] if tagged else ["curated", "rejected"]
    try:
        config = read_stats(out).get("config")
    except FileNotFoundError:
        config = None
    result = []
    for row in lookup(out, record_id, url):
        entry: dict[str, Any] = {"part": row.pop("_part"), "record": row}
        if entry["part"] != "errors":
            entry["decisions"] = [d.__dict__ for d in decisions(row, config, tagged)]
            entry["related"] = related(out, row, parts)
        result.append(entry)
    return result


def _where(m: dict[str, Any]) -> str:
    if m.get("_part") is None:
        return m.get("note", "")
    if m.get("reject_stage"):
        return f"{m['_part']} ({m['reject_stage']}: {m.get('reject_reason')})"
    return m["_part"]


def format_text(entries: list[dict[str, Any]], text_chars: int = 600) -> str:
    lines: list[str] = []
    groups: dict[str, list[str]] = {}
    for c in COLUMNS:
        groups.setdefault(c.group, []).append(c.name)
    for entry in entries:
        r, part = entry["record"], entry["part"]
        if part == "errors":
            lines += ["error record (no document was made) in errors/:"]
            lines += [f"  {k:<18} {v}" for k, v in r.items()]
            lines.append("")
            continue
        where = f"{part}" + (f", dropped at {r['reject_stage']}" if r.get("reject_stage") else "")
        lines += [f"record {r.get('id')}  [{where}]", f"  url: {r.get('url')}", ""]
        for group, names in groups.items():
            if group in ("quality",):
                continue
            shown = [(n, r.get(n)) for n in names if n != "text"]
            lines.append(f"{group}:")
            lines += [f"  {n:<22} {_fmt(v)}" for n, v in shown]
        lines += ["", "decisions (pipeline order):"]
        for d in entry["decisions"]:
            lines.append(f"  {d['stage']:<14} {d['verdict']:<12} {d['detail']}")
        signals = r.get("quality_signals") or {}
        if signals:
            lines += ["", "quality signals: " + ", ".join(
                f"{k}={_fmt(v)}" for k, v in signals.items() if v is not None)]
        rel = entry["related"]
        near = rel.get("near_duplicates")
        if near:
            rep = near["representative"]
            lines += ["", f"near-duplicate cluster {near['cluster_id']} ({near['size']} documents):",
                      f"  representative {rep['id']}  {_where(rep)}  {rep.get('url') or ''}"]
            for m in near["members"]:
                mark = "  <- this record" if m["id"] == r.get("id") else ""
                lines.append(f"  member         {m['id']}  {_where(m)}  {m.get('url') or ''}{mark}")
        exact = rel.get("exact_duplicates")
        if exact:
            kept = exact["kept"]
            lines += ["", "exact duplicates (same normalized text):",
                      f"  kept copy  {kept['id']}  {_where(kept)}  {kept.get('url') or ''}"]
            for m in exact["copies"]:
                mark = "  <- this record" if m["id"] == r.get("id") else ""
                lines.append(f"  dropped    {m['id']}  {_where(m)}  {m.get('url') or ''}{mark}")
        text = r.get("text") or ""
        if text_chars:
            shown = text if text_chars < 0 else text[:text_chars]
            lines += ["", f"text ({len(shown):,} of {len(text):,} characters):"]
            lines += ["  " + line for line in shown.splitlines()]
        lines.append("")
    return "\n".join(lines)


def inspect_command(out: str, record_id: str | None = None, url: str | None = None,
                    as_json: bool = False, text_chars: int = 600) -> int:
    entries = explain(out, record_id, url)
    if not entries:
        what = f"id {record_id}" if record_id else f"url {url}"
        print(f"error: no record with {what} in {out} (curated, rejected, tagged or errors)",
              file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps(entries, indent=2, default=str, ensure_ascii=False))
    else:
        print(format_text(entries, text_chars))
    return 0

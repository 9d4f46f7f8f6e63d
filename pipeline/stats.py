"""Run statistics: counts per output, stage and reason, computed in the pipeline, as `stats.json`.

The accounting identity is checked here: input records (documents read + read errors) equal
curated + rejected + errors. Counting happens in a Beam combine, so it is exact on every runner.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from ouroboros.transforms.base import reason_key


def _keys(kind: str):
    """(key, how many input records the element stands for): an error record summarising a
    shard's capped errors stands for `error_count` of them."""
    if kind == "rejected":
        return lambda d: ((kind, d.get("reject_stage") or "",
                           reason_key(d.get("reject_reason") or "")), 1)
    if kind == "errors":
        return lambda e: ((kind, e.get("error_stage") or "", e.get("error_type") or ""),
                          int(e.get("error_count") or 1))
    if kind == "skipped":
        return lambda t: ((kind, t, ""), 1)
    return lambda _: ((kind, "", ""), 1)


def summarize(counts: list[tuple[tuple[str, str, str], int]], run: Any,
              shards: list[str], extras: dict[str, Any] | None = None) -> dict[str, Any]:
    totals: dict[str, int] = defaultdict(int)
    by_stage: dict[str, dict[str, dict[str, int]]] = {"rejected": {}, "errors": {}}
    skipped: dict[str, int] = {}
    for (kind, stage, reason), n in counts:
        totals[kind] += n
        if kind in by_stage:
            by_stage[kind].setdefault(stage, {})[reason] = n
        elif kind == "skipped":
            skipped[stage] = n
    read_errors = sum(by_stage["errors"].get("read", {}).values())
    input_records = totals["input"] + read_errors
    output_key = "tagged" if "tagged" in totals else "curated"
    accounted = totals[output_key] + totals["rejected"] + totals["errors"]
    stats = {
        "run_id": run.run_id,
        "pipeline_version": run.pipeline_version,
        "config_sha256": run.config_sha256,
        "started_at": run.started_at.isoformat(),
        "shards": len(shards),
        "input_records": input_records,
        output_key: totals[output_key],
        "rejected": totals["rejected"],
        "errors": totals["errors"],
        "accounting": {
            "identity": f"input_records = {output_key} + rejected + errors",
            "holds": input_records == accounted,
            "documents_read": totals["input"],
            "read_errors": read_errors,
        },
        "rejected_by_stage": {s: dict(sorted(r.items())) for s, r in sorted(by_stage["rejected"].items())},
        "errors_by_stage": {s: dict(sorted(r.items())) for s, r in sorted(by_stage["errors"].items())},
        "skipped_non_documents": dict(sorted(skipped.items())),
    }
    stats.update(extras or {})
    return stats


def write_json(path: str, data: dict[str, Any]) -> None:
    with FileSystems.create(path) as f:
        f.write(json.dumps(data, indent=2, sort_keys=False, default=str).encode("utf-8"))


class WriteStats(beam.PTransform):
    """Counts a dict of named PCollections and writes `OUTPUT/stats.json`."""

    def __init__(self, output: str, run: Any, shards: list[str],
                 extras: dict[str, beam.PCollection] | None = None):
        super().__init__()
        self._output = output
        self._run = run
        self._shards = shards
        self._extras = extras or {}

    def expand(self, named):
        keyed = [pcoll | f"Key{kind}" >> beam.Map(_keys(kind)) for kind, pcoll in named.items()]
        counts = (keyed
                  | "FlattenKeys" >> beam.Flatten()
                  | "CountKeys" >> beam.CombinePerKey(sum)
                  | "AllCounts" >> beam.combiners.ToList())
        extra_views = {name: beam.pvalue.AsSingleton(pc) for name, pc in self._extras.items()}
        run, shards, output = self._run, self._shards, self._output

        def _write(all_counts, **extras):
            stats = summarize(all_counts, run, shards, extras)
            write_json(f"{output}/stats.json", stats)
            return stats

        return counts | "WriteStatsJson" >> beam.Map(_write, **extra_views)

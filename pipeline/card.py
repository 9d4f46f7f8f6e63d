"""`OUT/README.md`: a Hugging Face dataset card, so that `datasets.load_dataset(OUT)` just works.

Without it `load_dataset` sees `curated/`, `rejected/`, `errors/` and `minhash-index/` side by side
and fails on their different columns. The card's YAML header declares the curated records as the
default config and the rejected ones as a second config (`load_dataset(OUT, "rejected")`); `errors/`
and `minhash-index/` stay outside both. The body holds the schema (generated from
`schemas/record.py`), the run's provenance and statistics, and a section on sources and licence for
the user to fill in, which `ouroboros report` and later runs into the same directory keep.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from ouroboros.pipeline.outputs import mode, read_stats, read_text, write_text
from ouroboros.pipeline.profile import funnel
from ouroboros.schemas.record import COLUMNS, DECISION_COLUMNS, markdown_table, signals_table

NOTES_START, NOTES_END = "<!-- notes:start -->", "<!-- notes:end -->"
NOTES_PLACEHOLDER = """_To fill in before you share this dataset:_

- **Sources:** where the shards came from (crawl, date range, who collected them), and any filtering
  done before ouroboros.
- **Licence:** the terms under which the source texts may be used and redistributed. Curation does
  not change them. Set `license:` in the header to match (it says `unknown` until you do).
- **Personal data and known issues:** what the data may contain that users should know about."""
_SIZES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
          (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"))


def size_category(n: int) -> str:
    return next((label for limit, label in _SIZES if n < limit), "n>1B")


def configs(tagged: bool) -> list[dict[str, Any]]:
    """The `configs` of the card: each a name and its Parquet parts (one `train` split)."""
    if tagged:
        return [{"config_name": "tagged", "default": True,
                 "data_files": [{"split": "train", "path": "tagged/*.parquet"}]}]
    return [{"config_name": "curated", "default": True,
             "data_files": [{"split": "train", "path": "curated/*.parquet"}]},
            {"config_name": "rejected",
             "data_files": [{"split": "train", "path": "rejected/*.parquet"}]}]


def _kept_notes(previous: str | None) -> tuple[str, str | None]:
    """The user's notes and licence from an earlier card, if they filled them in."""
    if not previous:
        return NOTES_PLACEHOLDER, None
    notes = NOTES_PLACEHOLDER
    m = re.search(re.escape(NOTES_START) + r"\n?(.*?)\n?" + re.escape(NOTES_END), previous, re.DOTALL)
    if m:
        notes = m.group(1).strip("\n")
    lic = re.search(r"^license:\s*(\S.*?)\s*$", previous, re.MULTILINE)
    licence = lic.group(1) if lic and lic.group(1) not in ("unknown", "other") else None
    return notes, licence


def header(stats: dict[str, Any], tagged: bool, languages: list[str], licence: str | None) -> str:
    out_key = "tagged" if tagged else "curated"
    meta: dict[str, Any] = {
        "pretty_name": f"ouroboros {out_key} web text (run {stats.get('run_id')})",
        "license": licence or "unknown",
        "language": languages or None,
        "size_categories": [size_category(int(stats.get(out_key, 0)))],
        "task_categories": ["text-generation"],
        "tags": ["ouroboros", "web-text", "curated", "provenance"],
        "configs": configs(tagged),
    }
    meta = {k: v for k, v in meta.items() if v is not None}
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n"


def _languages(stats: dict[str, Any], out: str, tagged: bool) -> list[str]:
    """Languages of the curated records, most frequent first (lid.176 codes)."""
    from collections import Counter

    from ouroboros.pipeline.outputs import iter_batches

    counts: Counter[str] = Counter()
    for batch in iter_batches(out, "tagged" if tagged else "curated", ["language", "reject_stage"]):
        langs = batch.column("language").to_pylist()
        if tagged and "reject_stage" in batch.schema.names:
            stages = batch.column("reject_stage").to_pylist()
            langs = [lang for lang, s in zip(langs, stages) if s is None]
        counts.update(lang for lang in langs if lang)
    return [lang for lang, _ in counts.most_common()]


def body(stats: dict[str, Any], tagged: bool, notes: str) -> str:
    out_key = "tagged" if tagged else "curated"
    timing, runner = stats.get("timing", {}), stats.get("runner", {})
    lines = [f"# ouroboros {out_key} web text (run `{stats.get('run_id')}`)", ""]
    lines.append(
        f"Curated by {stats.get('pipeline_version', 'ouroboros')}: "
        f"{stats.get('input_records', 0):,} input records from {stats.get('shards', 0):,} shards, "
        f"{stats.get(out_key, 0):,} {out_key}, {stats.get('rejected', 0):,} rejected (each with its "
        f"stage and reason), {stats.get('errors', 0):,} errors. Every record carries its provenance: "
        "the shard and record it came from, its language, quality signals, duplicate cluster, "
        "synthetic-content score and sampling weight. `report.html` beside this card shows the run.")
    lines += ["", "## Loading", "", "```python", "from datasets import load_dataset", ""]
    if tagged:
        lines += ['tagged = load_dataset("path/to/this/directory")  # every record, nothing dropped']
    else:
        lines += ['curated = load_dataset("path/to/this/directory")              # the default config',
                  'rejected = load_dataset("path/to/this/directory", "rejected")  # dropped records']
    lines += ["```", ""]
    if not stats.get(out_key):
        lines += [(f"This run kept no records: `load_dataset` will say that the {out_key} "
                   "`train` split corresponds to no data."), ""]
    lines += [("`errors/` (inputs that could not become documents: shard, location, stage, "
               "exception) and `minhash-index/` (the band index for cross-run dedup) sit beside "
               "them with other columns; read them with "
               "`load_dataset(\"parquet\", data_files=\"errors/*.parquet\")`. `stats.json` holds "
               "every count, per stage, reason and shard."), "",
              "## Sources and licence", "", NOTES_START, notes, NOTES_END, ""]
    lines += ["## Provenance", "", "| | |", "|---|---|",
              f"| run id | `{stats.get('run_id')}` |",
              f"| pipeline | {stats.get('pipeline_version', '')} |",
              f"| config sha256 | `{stats.get('config_sha256', '')}` (effective config in `stats.json`) |"]
    if timing:
        lines.append(f"| started / finished | {timing.get('started_at')} / {timing.get('finished_at')} "
                     f"({timing.get('duration_seconds', 0):,.1f} s) |")
    if runner:
        lines.append(f"| runner | {runner.get('name')} |")
    if stats.get("inputs"):
        lines.append("| inputs | " + ", ".join(f"`{i}`" for i in stats["inputs"]) + " |")
    if stats.get("versions"):
        lines.append("| versions | " + ", ".join(f"{k} {v}" for k, v in stats["versions"].items()) + " |")
    lines += ["", "## Statistics", "", "| stage | in | dropped | reasons | out |", "|---|---:|---:|---|---:|"]
    for r in funnel(stats):
        reasons = ", ".join(f"{k} {v:,}" for k, v in r["reasons"].items())
        errors = f" (+{r['errors']:,} errors)" if r["errors"] else ""
        lines.append(f"| {r['stage']} | {r['in']:,} | {r['dropped']:,}{errors} | {reasons} | {r['out']:,} |")
    acc = stats.get("accounting", {})
    lines += ["", (f"Accounting: {acc.get('identity', '')}: "
                  f"{'holds' if acc.get('holds') else 'DOES NOT HOLD'}.")]
    div = stats.get("diversity_output") or {}
    if div:
        lines += ["", (f"Diversity of the {out_key} set: {div.get('strata', 0):,} strata, Shannon "
                      f"{div.get('shannon', 0):.3f} nats, coverage of the input strata "
                      f"{div.get('coverage', 0):.3f}, distinct-2 {div.get('distinct_2', 0):.3f}.")]
    where = ("every record" if tagged else
             "the `rejected` config; the curated records have every other column")
    lines += ["", "## Schema", "",
              f"Generated from `schemas/record.py`. `reject_stage` and `reject_reason` are in {where}.",
              "", markdown_table(COLUMNS + DECISION_COLUMNS), ""]
    lines += ["### Quality signals (`quality_signals`)", "", signals_table(), ""]
    return "\n".join(lines)


def render(out: str, stats: dict[str, Any], previous: str | None = None) -> str:
    tagged = mode(out) == "tag"
    notes, licence = _kept_notes(previous)
    return header(stats, tagged, _languages(stats, out, tagged), licence) + "\n" + body(stats, tagged, notes)


def write_card(out: str, stats: dict[str, Any] | None = None, keep_from: str | None = None) -> str:
    """Writes `OUT/README.md`, keeping the sources/licence notes of the card in `keep_from`
    (default: `out` itself, as `ouroboros report` rewrites it)."""
    stats = read_stats(out) if stats is None else stats
    previous = read_text(keep_from or out, "README.md")
    return write_text(out, "README.md", render(out, stats, previous))

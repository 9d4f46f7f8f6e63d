"""The `ouroboros` command: run, tag, demo, report, inspect, config, schema, train-*.

The command runs exactly what was asked or refuses before any work (exit code 2, one line naming
the problem): arguments it does not define must be Beam pipeline options (`--runner`,
`--direct_num_workers`, `--project`, ..., checked by `pipeline/options.py`), so the same command
submits to the DirectRunner, Dataflow, Flink or Dask, and a typo is an error, not a warning.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import ExitStack
from typing import Any

BEAM_EPILOG = """\
Beam pipeline options pass through: any option this command does not define goes to Beam, and is
checked against Beam's options (an unknown or misspelled one is an error). Examples:
  --direct_running_mode=multi_processing --direct_num_workers=2       (both cores, locally)
  --runner=DataflowRunner --project=P --region=R --temp_location=gs://B/tmp
  --runner=ouroboros.pipeline.runners.DaskRunner --dask_client_address=tcp://HOST:8786
See README, Runners."""
BARE_WORD_HINT = (": every input goes after --input (--input a.jsonl b.jsonl, or a quoted glob "
                  "--input 'shards/*.jsonl.gz')")


def _run_id(value: str) -> str:
    from ouroboros.pipeline.publish import staging_dir

    try:
        staging_dir("out", value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def _duration(text: str) -> float:
    from ouroboros.pipeline.locks import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, not {value!r}")
    return number


def _log_level_args(parser: argparse.ArgumentParser) -> None:
    from ouroboros.pipeline.logs import LEVELS

    parser.add_argument("--log-level", type=str.upper, choices=LEVELS, metavar="LEVEL",
                        help="show log records from LEVEL up (DEBUG, INFO, WARNING, ERROR), "
                             "Beam's and other libraries' included; by default only ouroboros's "
                             "warnings and anyone's errors")


def _pipeline_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", "-i", nargs="+", action="extend", required=True, metavar="PATH",
                        help="shard paths, globs or directories (one or more, and repeatable); "
                             "gs:// and s3:// work with the matching Beam extra installed")
    parser.add_argument("--output", "-o", required=True, help="output directory")
    parser.add_argument("--state", help="state directory for cross-run dedup: earlier runs' band "
                                        "indexes are read from it, this run's is added on success; "
                                        "in `run`, shards an earlier run processed are skipped")
    parser.add_argument("--reprocess", action="store_true",
                        help="with --state: process every shard, also those earlier runs processed")
    parser.add_argument("--lock-timeout", type=_duration, metavar="DURATION",
                        help="take over an output or state lock older than this (e.g. 6h, 90m), "
                             "also one held from another host; without it only locks whose "
                             "process is provably dead (same host) are taken over")
    _common_args(parser)


def _common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", help="YAML or TOML config file (see `ouroboros config`)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one config value (repeatable)")
    parser.add_argument("--run-id", type=_run_id,
                        help="id recorded on every row (default: time + random)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the outputs of an earlier run in --output")
    parser.add_argument("--limit", type=_positive_int, metavar="N",
                        help="process only the first N input records (shards in sorted order, "
                             "records in file order), for a quick look; stats.json says so")
    parser.add_argument("--dry-run", "--dry_run", action="store_true",
                        help="check the config, inputs and options, list the shards with their "
                             "format and size, then stop: nothing runs, nothing is written")


def _check_output(output: str, overwrite: bool) -> None:
    """Refuses to replace an earlier run's outputs unless asked; the commit replaces them."""
    from ouroboros.pipeline.publish import PARTS

    if "://" in output:
        return
    existing = [p for p in PARTS if os.path.exists(os.path.join(output, p))]
    if existing and not overwrite:
        from ouroboros.pipeline.options import UsageError

        raise UsageError(f"{output} already holds outputs ({', '.join(existing)}); "
                         "choose another --output or pass --overwrite")


def execute(inputs: list[str], output: str, config_path: str | None = None,
            overrides: list[str] | None = None, beam_args: list[str] | None = None,
            mode: str = "run", run_id: str | None = None, overwrite: bool = False,
            quiet: bool = False, state: str | None = None, reprocess: bool = False,
            limit: int | None = None, dry_run: bool = False,
            lock_timeout: float | None = None) -> dict[str, Any]:
    """Validates everything, runs the pipeline to completion, returns the stats.

    Every check comes first, before any work and before the output directory exists: Beam options
    and runner (`UsageError`), configuration and model paths (`ConfigError`), inputs
    (`FileNotFoundError`). `dry_run` stops there and lists the shards. `limit` processes only the
    first `limit` input records (`graph.FirstRecords`).

    With `state` in run mode this is a nightly, incremental run: it holds the state's lock,
    finishes or undoes what a killed run left (`state.reconcile`), and reads only shards no
    earlier run committed (all with `reprocess`); with nothing new it does nothing, successfully,
    so a quiet night does not fail a cron job. OUT is locked too, and published all or nothing
    (`publish.py`); a crash at any point after publication is finished by the next run."""
    import apache_beam as beam
    from ouroboros.pipeline import state as nightly
    from ouroboros.pipeline.config import check_model_paths, load_config
    from ouroboros.pipeline.finish import finish_outputs
    from ouroboros.pipeline.graph import WORK_DIR, RunInfo, build_pipeline
    from ouroboros.pipeline.manifest import plan, state_lock
    from ouroboros.pipeline.options import UsageError, pipeline_options
    from ouroboros.pipeline.progress import enabled as progress_enabled
    from ouroboros.pipeline.progress import progress_line, runner_name
    from ouroboros.pipeline.publish import staged_output
    from ouroboros.transforms.io.read import expand_inputs
    from ouroboros.transforms.io.staged import delete_work

    options = pipeline_options(beam_args or [])
    config = load_config(config_path, overrides)
    check_model_paths(config)
    shards = expand_inputs(inputs)
    incremental = bool(state) and mode == "run"
    if limit is not None and incremental:
        raise UsageError("--limit cannot be combined with --state in `run`: a run over part of "
                         "the shards must not record them as processed (use another --output "
                         "without --state for a quick look)")
    if run_id is not None:  # the command line checks it in its parser; callers of execute here
        try:
            from ouroboros.pipeline.publish import staging_dir

            staging_dir(output, run_id)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if dry_run:
        return dry_run_report(shards, output, config, options, state if incremental else None,
                              reprocess=reprocess, overwrite=overwrite, limit=limit, quiet=quiet)
    run = RunInfo.new(config, run_id)
    selection = None
    with ExitStack() as held:
        if incremental:
            held.enter_context(state_lock(state, run.run_id, lock_timeout, _say))
            nightly.reconcile(state, _say)
            selection = plan(state, shards, reprocess)
            if not quiet:
                print(selection.message())
            if not selection.new:
                if not quiet:
                    print(f"nothing new to process: not running the pipeline, {output} untouched")
                return {"shards": 0, "shards_skipped_already_processed": len(selection.skipped)}
            shards = [s.path for s in selection.new]
        _check_output(output, overwrite)
        extra = ({"shards_skipped_already_processed": len(selection.skipped)}
                 if selection is not None else {})
        show_progress = progress_enabled(runner_name(options), quiet=quiet)
        release_idle_stages()
        start = time.monotonic()
        if selection is not None:  # journaled first: a kill from here on is reconciled
            nightly.begin_run(state, run.run_id, output, selection.new)
        try:
            # Written into OUT/.staging-<run_id>/ and published only after success, with the
            # report and the dataset card: a crash never leaves partial Parquet where a reader
            # looks, and a rerun replaces, not duplicates.
            with staged_output(output, run.run_id, lock_timeout, _say) as target:
                try:
                    with progress_line(shards, show_progress) as progress, \
                            beam.Pipeline(options=options) as p:
                        build_pipeline(p, shards, target, config, run, mode=mode, state=state,
                                       progress=progress, limit=limit,
                                       earlier_shards=[s.path for s in selection.seen]
                                       if selection else (), reprocess=reprocess)
                finally:  # the staged documents (README, The flow) are the run's scratch space
                    delete_work(f"{target.rstrip('/')}/{WORK_DIR}")
                stats = finish_outputs(target, inputs=inputs, config=config, options=options,
                                       result=p.result, started_at=run.started_at,
                                       seconds=time.monotonic() - start, extra=extra,
                                       keep_from=output, quiet=quiet)
        except BaseException:
            if selection is not None:
                nightly.abandon_run(state, run.run_id, output)
            raise
        if selection is not None:  # the index, then the manifest: it claims the work
            nightly.commit_run(state, run.run_id, output, selection.new)
    if not quiet:
        print_summary(stats, output)
    return stats


def shard_sizes(paths: list[str]) -> list[int | None]:
    """Bytes of each shard (a dataset directory: all its files); None where it cannot be listed."""
    from apache_beam.io.filesystems import FileSystems

    sizes: list[int | None] = []
    for path in paths:
        if "://" not in path and os.path.isdir(path):
            sizes.append(sum(os.path.getsize(os.path.join(d, f))
                             for d, _, files in os.walk(path) for f in files))
            continue
        try:
            sizes.append(sum(m.size_in_bytes for m in FileSystems.match([path])[0].metadata_list))
        except (OSError, ValueError):  # a listing error: an unknown size, not a failed dry run
            sizes.append(None)
    return sizes


def human_bytes(n: int | None) -> str:
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def dry_run_report(shards: list[str], output: str, config: Any, options: Any, state: str | None,
                   *, reprocess: bool, overwrite: bool, limit: int | None,
                   quiet: bool) -> dict[str, Any]:
    """What a run would do, after every check passed; runs nothing and writes nothing."""
    from apache_beam.options.pipeline_options import StandardOptions
    from ouroboros.pipeline.manifest import plan
    from ouroboros.transforms.io.read import detect_format

    _check_output(output, overwrite)
    skipped = set()
    if state:
        skipped = {s.path for s in plan(state, shards, reprocess).skipped}
    rows = [{"path": path, "format": detect_format(path) or "unknown", "bytes": size,
             "skip": path in skipped}
            for path, size in zip(shards, shard_sizes(shards))]
    report = {"dry_run": True, "shards": rows, "config_sha256": config.sha256(),
              "runner": options.view_as(StandardOptions).runner or "DirectRunner",
              "limit": limit}
    if quiet:
        return report
    total = sum(r["bytes"] or 0 for r in rows)
    print(f"dry run: every check passed; nothing was run and nothing was written\n"
          f"  runner: {report['runner']}\n"
          f"  config: valid, sha256 {report['config_sha256'][:16]}...\n"
          f"  output: {output}\n"
          f"  {len(rows)} shards, {human_bytes(total)}:")
    width = max(len(r["format"]) for r in rows)
    for r in rows:
        note = ""
        if r["format"] == "unknown":
            note = "  (unknown format by name: becomes an error record)"
        elif r["skip"]:
            note = "  (processed by an earlier run: skipped)"
        print(f"    {r['format']:<{width}}  {human_bytes(r['bytes']):>10}  {r['path']}{note}")
    if skipped:
        print(f"  {len(skipped)} shards already processed would be skipped (--reprocess: all)")
    if limit is not None:
        print(f"  --limit {limit}: only the first {limit} input records would be processed")
    return report


def _say(message: str) -> None:
    """Messages about recovery (a lock taken over, a dead run's work finished or undone)."""
    print(message, file=sys.stderr)


def print_summary(stats: dict[str, Any], output: str) -> None:
    """A few lines: the outcome, the drops per stage, where to look (the counters are in stats.json)."""
    from ouroboros.pipeline.profile import stage_order

    if not stats:
        return
    out_key = "tagged" if "tagged" in stats else "curated"
    timing = stats.get("timing", {})
    took = (f" in {timing['duration_seconds']:,.1f} s ({timing['records_per_second']:,.1f} records/s)"
            if timing.get("records_per_second") else "")
    holds = "accounting holds" if stats["accounting"]["holds"] else "ACCOUNTING DOES NOT HOLD"
    print(f"\nrun {stats['run_id']}: {stats['input_records']:,} input records from "
          f"{stats['shards']:,} shards{took} -> {stats[out_key]:,} {out_key}, "
          f"{stats['rejected']:,} rejected, {stats['errors']:,} errors ({holds})")
    for stage in stage_order(stats):
        reasons = stats["rejected_by_stage"].get(stage)
        if reasons:
            print(f"  rejected at {stage}: " + ", ".join(f"{r}={n:,}" for r, n in reasons.items()))
        kinds = stats["errors_by_stage"].get(stage)
        if kinds:
            print(f"  errors at {stage}: " + ", ".join(f"{k}={n:,}" for k, n in kinds.items()))
    if stats.get("limit"):
        print(f"  limited: {stats['limit']['note']}")
    if "shards_skipped_already_processed" in stats:
        print(f"  shards skipped (processed by earlier runs): "
              f"{stats['shards_skipped_already_processed']}")
    parts = "tagged/" if out_key == "tagged" else "curated/, rejected/"
    print(f"output: {output}/ ({parts}, errors/, stats.json)\n"
          f"report: {output}/report.html   dataset card: {output}/README.md")


def demo_inputs() -> list[str]:
    from importlib.resources import files

    corpus = files("ouroboros.pipeline") / "demo_corpus"
    return [str(corpus / "demo.jsonl"), str(corpus / "demo.warc")]


PIPELINE_COMMANDS = ("run", "tag", "demo")


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The command's parser and one parser per subcommand (no Beam import: `--help` stays fast)."""
    parser = argparse.ArgumentParser(prog="ouroboros", description=__doc__.split("\n")[0],
                                     allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", required=True)
    beam_help = {"epilog": BEAM_EPILOG, "formatter_class": argparse.RawDescriptionHelpFormatter}

    def add(name: str, help: str, **kwargs: Any) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, allow_abbrev=False, **kwargs)
        _log_level_args(p)
        return p

    commands = {
        "run": add("run", "curate: read, filter, dedup, score, sample, write", **beam_help),
        "tag": add("tag", "compute every signal, write every record, drop none", **beam_help),
        "demo": add("demo", "run the whole pipeline on the bundled sample corpus", **beam_help),
        "train-quality": add("train-quality",
                             "train the optional fastText quality classifier (DCLM-style)"),
        "train-synthetic": add("train-synthetic",
                               "train the synthetic-content scorer from labelled JSONL"),
        "report": add("report", "rebuild OUT/report.html and OUT/README.md from a run's outputs"),
        "inspect": add("inspect", "show one record, its provenance and every stage's decision"),
        "config": add("config", "print the default configuration with every key documented"),
        "schema": add("schema", "print the output columns (Markdown)"),
        "simulate": add("simulate", "recursive training on real text: how much curation slows "
                                    "model collapse"),
    }
    _pipeline_args(commands["run"])
    _pipeline_args(commands["tag"])
    commands["demo"].add_argument("--output", "-o", default="ouroboros-demo-output")
    _common_args(commands["demo"])
    tq = commands["train-quality"]
    tq.add_argument("data", help="labelled JSONL: {\"text\": ..., \"label\": 0|1} (1 = good)")
    tq.add_argument("output", help="model file to write: .ftz = quantized (a few MB, what workers "
                                   "should load), .bin = full size (about 520 MB)")
    tq.add_argument("--seed", type=int, default=0)
    tq.add_argument("--holdout", type=float, default=0.2,
                    help="share of texts held out (by text hash) for the printed precision, recall "
                         "and AUROC; 0 = train on all")
    tq.add_argument("--cutoff", type=int, default=100_000,
                    help="words and n-gram buckets a .ftz keeps (fastText quantize -cutoff)")
    ts = commands["train-synthetic"]
    ts.add_argument("--data", nargs="+", required=True,
                    help="labelled JSONL: {\"text\": ..., \"label\": 0|1 or human|machine, \"source\"?, "
                         "\"group\"?}; calibrated on held-out sources (default source: the file name)")
    ts.add_argument("--output", required=True, help="model directory (use as synthetic.model_path)")
    ts.add_argument("--seed", type=int, default=0)
    ins = commands["inspect"]
    ins.add_argument("out", help="output directory of a finished run")
    which = ins.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", help="record id (the `id` column)")
    which.add_argument("--url", help="page URL (every record with this URL)")
    ins.add_argument("--json", action="store_true", help="print the record(s) as JSON")
    ins.add_argument("--text-chars", type=int, default=600,
                     help="characters of the text to show (0: none, -1: all)")
    commands["report"].add_argument("out", help="output directory of a finished run")
    from ouroboros.pipeline.simulate import add_arguments as simulate_arguments

    simulate_arguments(commands["simulate"])
    return parser, commands


def choose_arrow_pool() -> None:
    """Arrow's system pool (glibc malloc) for this process and the workers it starts, unless the
    user chose one.

    Parquet reading and writing allocate and free Arrow buffers for every row group. pyarrow's
    default pool on Linux (mimalloc) keeps the pages it frees, so a long local run's resident
    memory crept up file after file (10,000 documents, in-process peak RSS 568 MB; jemalloc 523
    MB). jemalloc in turn keeps freed pages until they decay; with
    ``tune_malloc``'s fixed mmap threshold, glibc gives every Arrow buffer over 128 KiB its own
    mapping and returns it when freed (``bench/memory_by_stage.py``, 4 MiB row groups: peak
    463 -> 451 MB at 10,000 documents, 542 -> 519 MB at 50,000; same wall time). Arrow reads the
    variable when pyarrow is first imported, so this runs first."""
    if sys.platform.startswith("linux"):
        os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")


# Seconds a finished stage's bundle processor may sit idle in an in-process worker (Beam: 60).
IDLE_STAGE_SECONDS = 2.0


def release_idle_stages(seconds: float = IDLE_STAGE_SECONDS) -> None:
    """Let the in-process runner's worker drop a finished stage's bundle processor (its DoFns and
    operations) after `seconds` idle, not Beam's 60.

    A local run executes its fused stages one after another, each as one or a few back-to-back
    bundles, and the worker keeps every finished stage's processor until it has been idle for
    ``sdk_worker.DEFAULT_BUNDLE_PROCESSOR_CACHE_SHUTDOWN_THRESHOLD_S`` seconds, checked as often.
    The keyed stages and the apply pass start seconds after the streaming pass, so the finished
    stages' processors were still held at the apply pass's peak and given back a minute into it
    (``bench/memory_by_stage.py`` at 200,000 documents: ~80 MB at once; with the quality
    caches emptied too, apply-pass peak 591 -> 490 MB, the keyed stages' end 482 -> 428 MB). A
    stage is never idle for two seconds between its own bundles here, so no model is loaded
    twice. Beam reads the constant when its worker starts (this process's; the multi-process
    DirectRunner's workers keep 60);
    ``tests/test_scale.py::test_a_local_run_lets_a_finished_stage_go_while_later_stages_run``
    fails if a Beam release renames it or stops honouring it."""
    from apache_beam.runners.worker import sdk_worker

    sdk_worker.DEFAULT_BUNDLE_PROCESSOR_CACHE_SHUTDOWN_THRESHOLD_S = seconds


# glibc's malloc settings (mallopt(3)) and the environment variables that set them for processes
# this one starts (the multi-process DirectRunner's workers).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MALLOC_SETTINGS = {"MALLOC_MMAP_THRESHOLD_": (_M_MMAP_THRESHOLD, 128 * 1024),
                   "MALLOC_TRIM_THRESHOLD_": (_M_TRIM_THRESHOLD, 128 * 1024)}


def tune_malloc() -> dict[str, int]:
    """Fixed glibc mmap and trim thresholds (128 KiB) for this process and the workers it starts,
    unless the user set them; returns the settings applied here.

    glibc raises its mmap threshold each time a large block is freed (up to 32 MiB), so after the
    first big buffers the runner's data-channel chunks, grouped shuffle data and side inputs are
    carved from the heap, which fragments and is never given back: a local run kept the memory of
    every keyed stage until it ended. With a fixed threshold a large block is its own mapping and
    goes back to the system when freed. (README, "Scale": 200,000 documents, peak RSS 836 MB ->
    730 MB in ``bench/memory_by_stage.py``.) Nothing happens off glibc."""
    if not sys.platform.startswith("linux"):
        return {}
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries: no glibc mallopt
        return {}
    applied = {}
    for name, (param, value) in MALLOC_SETTINGS.items():
        if name in os.environ:  # the user's choice; glibc read it when this process started
            continue
        os.environ[name] = str(value)
        if mallopt(param, value) == 1:
            applied[name] = value
    return applied


def main(argv: list[str] | None = None) -> int:
    choose_arrow_pool()
    tune_malloc()
    parser, commands = build_parser()
    args, rest = parser.parse_known_args(argv)
    from ouroboros.pipeline import logs

    logs.configure(args.log_level)  # before anything imports Beam (see pipeline/logs.py)

    from ouroboros.pipeline.config import ConfigError
    from ouroboros.pipeline.manifest import StateError, StateLocked
    from ouroboros.pipeline.options import (
        UsageError,
        check_beam_args,
        is_local_direct,
        option_strings,
        unknown_arguments,
    )
    from ouroboros.transforms.io.read import AmbiguousInput

    command = commands[args.command]
    try:
        if args.command in PIPELINE_COMMANDS:
            hint = BARE_WORD_HINT if args.command != "demo" else ""
            _, runner = check_beam_args(rest, option_strings(command), hint)
            if is_local_direct(runner):  # its worker processes print to this terminal
                rest = logs.harness_args(rest, args.log_level)
        elif rest:
            raise UsageError(unknown_arguments(rest, option_strings(command)))
        if args.command == "config":
            from ouroboros.pipeline.config import defaults_yaml

            print(defaults_yaml(), end="")
        elif args.command == "schema":
            from ouroboros.schemas.record import markdown_table

            print(markdown_table())
        elif args.command == "report":
            from ouroboros.pipeline.finish import write_documents

            for path in write_documents(args.out):
                print(path)
        elif args.command == "inspect":
            from ouroboros.pipeline.inspect import inspect_command

            return inspect_command(args.out, record_id=args.id, url=args.url, as_json=args.json,
                                   text_chars=args.text_chars)
        elif args.command == "report":
            from ouroboros.pipeline.finish import write_documents

            for path in write_documents(args.out):
                print(path)
        elif args.command == "inspect":
            from ouroboros.pipeline.inspect import inspect_command

            return inspect_command(args.out, record_id=args.id, url=args.url, as_json=args.json,
                                   text_chars=args.text_chars)
        elif args.command == "train-quality":
            from ouroboros.transforms.quality.model import train_quality

            print(json.dumps(train_quality(args.data, args.output, seed=args.seed,
                                           holdout=args.holdout, cutoff=args.cutoff), indent=2))
        elif args.command == "train-synthetic":
            from ouroboros.transforms.synthetic.train import format_metrics, train_synthetic

            print(format_metrics(train_synthetic(args.data, args.output, seed=args.seed)))
        elif args.command == "simulate":
            from ouroboros.pipeline.simulate import run_from_args

            return run_from_args(args)
        else:
            if args.command == "demo":
                inputs, overwrite = demo_inputs(), True
            else:
                inputs, overwrite = args.input, args.overwrite
            execute(inputs, args.output, args.config, args.set, rest,
                    mode="tag" if args.command == "tag" else "run", run_id=args.run_id,
                    overwrite=overwrite, state=getattr(args, "state", None),
                    reprocess=getattr(args, "reprocess", False), limit=args.limit,
                    dry_run=args.dry_run, lock_timeout=getattr(args, "lock_timeout", None))
    except (ConfigError, UsageError, FileNotFoundError, StateLocked, AmbiguousInput) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (StateError, OSError) as exc:  # a damaged state file, a full disk: named, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

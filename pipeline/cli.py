"""The `ouroboros` command: run, tag, demo, config, schema.

Arguments this parser does not know are Beam pipeline options (`--runner`, `--direct_num_workers`,
`--project`, ...), so the same command submits to the DirectRunner, Dataflow, Flink or Dask.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from contextlib import nullcontext
from typing import Any


def _pipeline_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", "-i", action="append", required=True,
                        help="shard glob, path or directory (repeatable); gs:// and s3:// work "
                             "with the matching Beam extra installed")
    parser.add_argument("--output", "-o", required=True, help="output directory")
    parser.add_argument("--state", help="state directory for cross-run dedup: earlier runs' band "
                                        "indexes are read from it, this run's is added on success; "
                                        "in `run`, shards an earlier run processed are skipped")
    parser.add_argument("--reprocess", action="store_true",
                        help="with --state: process every shard, also those earlier runs processed")
    _common_args(parser)


def _common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", help="YAML or TOML config file (see `ouroboros config`)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one config value (repeatable)")
    parser.add_argument("--run-id", help="id recorded on every row (default: time + random)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the outputs of an earlier run in --output")


def _check_output(output: str, overwrite: bool) -> None:
    """Refuses to replace an earlier run's outputs unless asked; the commit replaces them."""
    from ouroboros.pipeline.publish import PARTS

    if "://" in output:
        return
    existing = [p for p in PARTS if os.path.exists(os.path.join(output, p))]
    if existing and not overwrite:
        raise SystemExit(f"error: {output} already holds outputs ({', '.join(existing)}); "
                         "choose another --output or pass --overwrite")


def execute(inputs: list[str], output: str, config_path: str | None = None,
            overrides: list[str] | None = None, beam_args: list[str] | None = None,
            mode: str = "run", run_id: str | None = None, overwrite: bool = False,
            quiet: bool = False, state: str | None = None, reprocess: bool = False) -> dict[str, Any]:
    """Validates everything, runs the pipeline to completion, returns the stats.

    With `state` in run mode this is a nightly, incremental run: it holds the state's lock and reads
    only shards no earlier run committed (all with `reprocess`); with nothing new it does nothing,
    successfully, so a quiet night does not fail a cron job."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from ouroboros.pipeline.config import ConfigError, load_config
    from ouroboros.pipeline.finish import finish_outputs
    from ouroboros.pipeline.graph import RunInfo, build_pipeline
    from ouroboros.pipeline.manifest import plan, state_lock, write_manifest
    from ouroboros.pipeline.models import check_model_paths
    from ouroboros.pipeline.progress import enabled as progress_enabled
    from ouroboros.pipeline.progress import progress_line, runner_name
    from ouroboros.pipeline.publish import staged_output
    from ouroboros.transforms.io.read import expand_inputs

    config = load_config(config_path, overrides)  # errors here, before any work starts
    problems = check_model_paths(config)  # before any output or state directory is made
    if problems:
        raise ConfigError("\nerror: ".join(problems))
    shards = expand_inputs(inputs)
    incremental = bool(state) and mode == "run"
    with state_lock(state) if incremental else nullcontext():
        selection = plan(state, shards, reprocess) if incremental else None
        if selection is not None:
            if not quiet:
                print(selection.message())
            if not selection.new:
                if not quiet:
                    print(f"nothing new to process: not running the pipeline, {output} untouched")
                return {"shards": 0, "shards_skipped_already_processed": len(selection.skipped)}
            shards = [s.path for s in selection.new]
        _check_output(output, overwrite)
        run = RunInfo.new(config, run_id)
        options = PipelineOptions(beam_args or [])
        extra = ({"shards_skipped_already_processed": len(selection.skipped)}
                 if selection is not None else {})
        show_progress = progress_enabled(runner_name(options), quiet=quiet)
        start = time.monotonic()
        # Written into OUT/.staging-<run_id>/ and renamed into place only after success: a crash
        # never leaves partial Parquet where a reader looks, and a rerun replaces, not duplicates.
        # The report and the dataset card are written into the staging directory too.
        with staged_output(output, run.run_id) as target:
            with progress_line(shards, show_progress) as progress, \
                    beam.Pipeline(options=options) as p:
                build_pipeline(p, shards, target, config, run, mode=mode, state=state,
                               progress=progress)
            stats = finish_outputs(target, inputs=inputs, config=config, options=options,
                                   result=p.result, started_at=run.started_at,
                                   seconds=time.monotonic() - start, extra=extra,
                                   keep_from=output, quiet=quiet)
        if selection is not None:  # the manifest last: it claims the work the index vouches for
            commit_index(output, state, run.run_id)
            write_manifest(state, run.run_id, selection.new)
    if not quiet:
        print_summary(stats, output)
    return stats


def commit_index(output: str, state: str, run_id: str) -> None:
    """Adds this run's band index to the state, only after the run succeeded (rename = atomic)."""
    from ouroboros.pipeline.graph import INDEX_DIR

    if "://" in output or "://" in state:
        _commit_index_remote(output, state, run_id)
        return
    src = os.path.join(output, INDEX_DIR)
    if not os.path.isdir(src):
        return
    dest_root = os.path.join(state, INDEX_DIR)
    os.makedirs(dest_root, exist_ok=True)
    tmp = os.path.join(dest_root, f".incoming-{run_id}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    os.replace(tmp, os.path.join(dest_root, run_id))


def _commit_index_remote(output: str, state: str, run_id: str) -> None:
    """The same commit through Beam's FileSystems (gs://, s3://), where there is no atomic rename:
    files are copied under their final names; the manifest, written after this, is the commit."""
    from apache_beam.io.filesystems import FileSystems
    from ouroboros.pipeline.graph import INDEX_DIR

    src = FileSystems.join(output, INDEX_DIR)
    files = [m.path for r in FileSystems.match([FileSystems.join(src, "*")]) for m in r.metadata_list]
    if not files:
        return
    dest = FileSystems.join(state, INDEX_DIR, run_id)
    try:
        FileSystems.mkdirs(dest)  # object stores have no directories; a local one may exist
    except OSError:
        pass
    FileSystems.copy(files, [FileSystems.join(dest, f.rsplit("/", 1)[-1]) for f in files])


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


def main(argv: list[str] | None = None) -> int:
    from ouroboros.pipeline.config import ConfigError
    from ouroboros.pipeline.manifest import StateLocked

    parser = argparse.ArgumentParser(prog="ouroboros", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _pipeline_args(sub.add_parser("run", help="curate: read, filter, dedup, score, sample, write"))
    _pipeline_args(sub.add_parser("tag", help="compute every signal, write every record, drop none"))
    demo = sub.add_parser("demo", help="run the whole pipeline on the bundled sample corpus")
    demo.add_argument("--output", "-o", default="ouroboros-demo-output")
    _common_args(demo)
    tq = sub.add_parser("train-quality", help="train the optional fastText quality classifier (DCLM-style)")
    tq.add_argument("data", help="labelled JSONL: {\"text\": ..., \"label\": 0|1} (1 = good)")
    tq.add_argument("output", help="model file to write: .ftz = quantized (a few MB, what workers "
                                   "should load), .bin = full size (about 520 MB)")
    tq.add_argument("--seed", type=int, default=0)
    tq.add_argument("--holdout", type=float, default=0.2,
                    help="share of texts held out (by text hash) for the printed precision, recall "
                         "and AUROC; 0 = train on all")
    tq.add_argument("--cutoff", type=int, default=100_000,
                    help="words and n-gram buckets a .ftz keeps (fastText quantize -cutoff)")
    ts = sub.add_parser("train-synthetic", help="train the synthetic-content scorer from labelled JSONL")
    ts.add_argument("--data", nargs="+", required=True,
                    help="labelled JSONL: {\"text\": ..., \"label\": 0|1 or human|machine, \"group\"?}")
    ts.add_argument("--output", required=True, help="model directory (use as synthetic.model_path)")
    ts.add_argument("--seed", type=int, default=0)
    rep = sub.add_parser("report", help="rebuild OUT/report.html and OUT/README.md from a run's outputs")
    rep.add_argument("out", help="output directory of a finished run")
    ins = sub.add_parser("inspect", help="show one record, its provenance and every stage's decision")
    ins.add_argument("out", help="output directory of a finished run")
    which = ins.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", help="record id (the `id` column)")
    which.add_argument("--url", help="page URL (every record with this URL)")
    ins.add_argument("--json", action="store_true", help="print the record(s) as JSON")
    ins.add_argument("--text-chars", type=int, default=600,
                     help="characters of the text to show (0: none, -1: all)")
    sub.add_parser("config", help="print the default configuration with every key documented")
    sub.add_parser("schema", help="print the output columns (Markdown)")

    args, beam_args = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
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
        elif args.command == "train-quality":
            from ouroboros.transforms.quality.model import train_quality

            print(json.dumps(train_quality(args.data, args.output, seed=args.seed,
                                           holdout=args.holdout, cutoff=args.cutoff), indent=2))
        elif args.command == "train-synthetic":
            from ouroboros.transforms.synthetic.train import format_metrics, train_synthetic

            print(format_metrics(train_synthetic(args.data, args.output, seed=args.seed)))
        elif args.command in ("run", "tag", "demo"):
            if args.command == "demo":
                inputs, overwrite = demo_inputs(), True
            else:
                inputs, overwrite = args.input, args.overwrite
            execute(inputs, args.output, args.config, args.set, beam_args,
                    mode="tag" if args.command == "tag" else "run", run_id=args.run_id,
                    overwrite=overwrite, state=getattr(args, "state", None),
                    reprocess=getattr(args, "reprocess", False))
        unknown = [a for a in beam_args if args.command not in ("run", "tag", "demo")]
        if unknown:
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, StateLocked) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

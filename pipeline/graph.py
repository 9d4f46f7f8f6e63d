"""Assembles the Beam graph: read -> the configured stages -> write.

The stages (``stages``) run in order, cheap per-document ones first: extract -> normalize ->
language ID -> quality -> [quality model] -> exact dedup -> synthetic score -> near dedup ->
[topics] -> [sample]. Each returns ``StageOutputs(kept, rejected, errors)``; ``build_pipeline``
feeds each stage's ``kept`` to the next and collects every ``rejected`` and ``errors``, so every
input record ends in exactly one output.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.metrics import Metrics
from ouroboros.pipeline.config import Config
from ouroboros.pipeline.stats import WriteStats
from ouroboros.schemas.record import (
    ERROR_SCHEMA,
    RECORD_SCHEMA,
    REJECTED_SCHEMA,
    SCHEMA_VERSION,
    conform,
)
from ouroboros.transforms.base import (
    ERRORS,
    METRICS_NAMESPACE,
    REJECTED,
    ApplyStage,
    ApplyStages,
    DocumentStage,
    error_record,
)
from ouroboros.transforms.decisions import (
    CURATED,
    ENTERING,
    INDEX,
    KEY_COLUMNS,
    ApplyDecisions,
    DecisionsByFile,
    KeyedStages,
    SamplingPlan,
    StratumKeys,
    TopicModelFromStaged,
    near_member,
)
from ouroboros.transforms.dedup.earlier import EarlierRuns
from ouroboros.transforms.dedup.exact import ExactDecisions, ExactDedup, exact_key
from ouroboros.transforms.dedup.near import (
    INDEX_SCHEMA,
    MinHashKeys,
    NearDecisions,
    NearDedup,
    band_keys,
)
from ouroboros.transforms.dedup.sketch import sketch_keys, store_sketch
from ouroboros.transforms.io.extract import Extract
from ouroboros.transforms.io.normalize import Normalize
from ouroboros.transforms.io.read import ReadConfig, detect_format, read_shard
from ouroboros.transforms.io.staged import StageDocuments
from ouroboros.transforms.quality.filters import Quality
from ouroboros.transforms.quality.langid import LanguageID
from ouroboros.transforms.quality.model import QualityModel
from ouroboros.transforms.sampling.diversity import DiversityStats, StratumCounts
from ouroboros.transforms.sampling.quotas import STAGE as SAMPLE_STAGE
from ouroboros.transforms.sampling.quotas import StratifiedSample
from ouroboros.transforms.sampling.topics import AssignTopics
from ouroboros.transforms.synthetic.score import SyntheticScore

import ouroboros

SKIPPED = "skipped"
POSITIONED = "positioned"  # with --limit: ((shard, position), kind, record) for FirstRecords
INDEX_DIR = "minhash-index"
WORK_DIR = ".work"  # staged documents, under the run's (staging) output directory; removed after
PIPELINE_VERSION = f"ouroboros {ouroboros.__version__} (schema {SCHEMA_VERSION})"


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    config_sha256: str
    started_at: dt.datetime
    pipeline_version: str = PIPELINE_VERSION

    @classmethod
    def new(cls, config: Config, run_id: str | None = None) -> RunInfo:
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        return cls(run_id=run_id or f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}",
                   config_sha256=config.sha256(), started_at=now)

    def columns(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "pipeline_version": self.pipeline_version,
                "config_sha256": self.config_sha256, "processed_at": self.started_at}


class ReadShard(beam.DoFn):
    """One shard in, its documents out (streamed); unreadable parts become error records.

    With `limit`, a shard is read only up to its first `limit` records (documents and errors), and
    each goes out positioned, for `FirstRecords` to keep the first `limit` over all shards."""

    def __init__(self, config: ReadConfig, run: RunInfo, progress: Any = None,
                 limit: int | None = None):
        self._config = config
        self._run = run
        self._progress = progress  # a ProgressChannel on local runs with a terminal, else None
        self._limit = limit
        self._docs = Metrics.counter(METRICS_NAMESPACE, "read.documents")
        self._errors = Metrics.counter(METRICS_NAMESPACE, "read.errors")
        self._skipped = Metrics.counter(METRICS_NAMESPACE, "read.skipped_non_documents")

    def process(self, shard: tuple[str, str]):
        uri, fmt = shard
        run_columns = self._run.columns()
        taken = 0
        for kind, item in read_shard(uri, fmt, self._config):
            if kind == "doc":
                self._docs.inc()
                item.update(run_columns)
            elif kind == "error":
                self._errors.inc()
                item["run_id"] = self._run.run_id
                if self._progress is not None:
                    self._progress.add(read_errors=1)
            else:
                self._skipped.inc()
                yield pvalue.TaggedOutput(SKIPPED, item)
                continue
            if self._progress is not None:
                self._progress.add(read=1)
            if self._limit is None:
                yield item if kind == "doc" else pvalue.TaggedOutput(ERRORS, item)
                continue
            yield pvalue.TaggedOutput(POSITIONED, ((uri, taken), kind, item))
            taken += 1
            if taken == self._limit:  # no later record of this shard can be among the first
                break
        if self._progress is not None:
            self._progress.add(shards=1, shard_bytes=_local_size(uri))
            self._progress.flush()


def _local_size(uri: str) -> int:
    try:
        return os.path.getsize(uri)
    except OSError:
        return 0


def _position(positioned: tuple) -> tuple[str, int]:
    return positioned[0]


def _unposition(positioned: tuple):
    _, kind, item = positioned
    return item if kind == "doc" else pvalue.TaggedOutput(ERRORS, item)


class FirstRecords(beam.PTransform):
    """`--limit`: the first `limit` input records, shards in sorted order, records in file order.

    Documents and read errors count alike, so the accounting identity holds over what was taken.
    Every shard was read only up to `limit` records; the cut is one `Top` combine, so the taken
    records meet on one worker (the option is for a quick look, not for a sample of a corpus)."""

    def __init__(self, limit: int):
        super().__init__()
        self._limit = limit

    def expand(self, positioned):
        first = (positioned
                 | "Smallest" >> beam.combiners.Top.Of(self._limit, key=_position, reverse=True))
        out = (first
               | "Each" >> beam.FlatMap(lambda records: records)
               | "Unposition" >> beam.Map(_unposition).with_outputs(ERRORS, main="docs"))
        limit = self._limit
        summary = first | "Summary" >> beam.Map(lambda records: {
            "max_input_records": limit, "input_records": len(records),
            "shards_read": len({r[0][0] for r in records}),
            "note": f"--limit {limit}: only the first {limit} input records (shards in sorted "
                    "order, records in file order) were processed"})
        return {"docs": out.docs, ERRORS: out[ERRORS], "summary": summary}


def document_stages(config: Config) -> list[DocumentStage]:
    """The per-document stages in order (cheap first)."""
    stages: list[DocumentStage] = [Extract(config.extract), Normalize(config.normalize)]
    if config.langid.enabled:
        stages.append(LanguageID(config.langid))
    if config.quality.enabled:
        stages.append(Quality(config.quality))
    if config.quality_model.model_path:
        stages.append(QualityModel(config.quality_model))
    return stages


def stages(config: Config, drop: bool = True, index_out: str | None = None,
           index_in: list[str] | tuple[str, ...] = (), earlier_shards: Sequence[str] = (),
           reprocess: bool = False) -> list[beam.PTransform]:
    """Every configured stage in order, each a transform returning ``StageOutputs``.

    The synthetic score comes before near-dedup: a cluster's representative prefers the lowest
    score. ``index_out``/``index_in``: this run's and earlier runs' MinHash band indexes.
    ``earlier_shards``: shards an earlier run processed, read again (`EarlierRuns`).
    """
    out: list[beam.PTransform] = [ApplyStage(stage, drop) for stage in document_stages(config)]
    if earlier_shards and index_in:
        out.append(EarlierRuns(index_in, earlier_shards, reprocess, drop))
    if config.exact_dedup.enabled:
        out.append(ExactDedup(drop))
    if config.synthetic.enabled:
        out.append(ApplyStage(SyntheticScore(config.synthetic), drop))
    if config.near_dedup.enabled:
        out.append(NearDedup(config.near_dedup, drop=drop, index_out=index_out, index_in=index_in))
    if config.topics.enabled:
        out.append(AssignTopics(config.topics, label="topics"))
    if config.sampling.enabled:
        out.append(StratifiedSample(config.sampling, label="sample", drop=drop))
    return out


def shard_list(shards: list[str], run: RunInfo) -> tuple[list[tuple[str, str]], list[dict]]:
    """(uri, format) pairs, and error records for shards whose format is unknown."""
    known, unknown = [], []
    for uri in shards:
        fmt = detect_format(uri)
        if fmt is None:
            unknown.append(error_record(uri, "unknown", "shard", "read",
                                        "unknown shard format (by file name)",
                                        error_type="unknown_format", run_id=run.run_id))
        else:
            known.append((uri, fmt))
    return known, unknown


def _write_parquet(pcoll, label: str, path: str, schema, config: Config):
    out = config.output
    return (pcoll
            | f"Conform{label}" >> beam.Map(conform, schema)
            | f"Write{label}" >> beam.io.WriteToParquet(
                path, schema, codec=out.compression, row_group_buffer_size=out.row_group_bytes,
                file_name_suffix=".parquet", num_shards=out.num_shards))


def prior_index_files(state: str | None) -> list[str]:
    """Band-index files that earlier committed runs left in the state directory (each checked to
    be readable, so a damaged one is named before any work starts)."""
    from ouroboros.pipeline.state import index_files

    return index_files(state)


def keyed_stages(config: Config, drop: bool, index_params: str | None) -> KeyedStages:
    """Which keyed stages run (``transforms/decisions.py``)."""
    return KeyedStages(
        drop=drop, exact=config.exact_dedup.enabled, near=config.near_dedup.enabled,
        topics=config.topics.enabled, sampling=config.sampling.enabled,
        strata_keys=tuple(config.sampling.keys), tokens=config.sampling.unit == "tokens",
        sample_salt=f"{SAMPLE_STAGE}:{config.sampling.seed}", index_params=index_params)


def streaming_stages(config: Config) -> tuple[list[DocumentStage], tuple[str, ...]]:
    """The per-document stages of the streaming pass, and which of them are deferred: the
    synthetic score and the MinHash signature run on every document that reaches the keyed
    stages, their drops and errors taking effect after exact dedup, where the pipeline's order
    puts them."""
    chain = document_stages(config)
    deferred = []
    if config.synthetic.enabled:
        chain.append(SyntheticScore(config.synthetic))
        deferred.append(chain[-1].name)
    if config.near_dedup.enabled:
        chain.append(MinHashKeys(config.near_dedup))
        deferred.append(chain[-1].name)
    if config.sampling.enabled:
        chain.append(StratumKeys(config.sampling.keys, config.sampling.unit == "tokens"))
    return chain, tuple(deferred)


def build_pipeline(p: beam.Pipeline, shards: list[str], output: str, config: Config,
                   run: RunInfo, mode: str = "run", state: str | None = None,
                   progress: Any = None, limit: int | None = None,
                   earlier_shards: Sequence[str] = (), reprocess: bool = False) -> None:
    """Adds the whole curation graph to `p`. mode="tag" annotates every record and drops none.

    Documents stream from reader to writer and never cross a shuffle (README, Architecture):
      1. streaming pass: read -> the per-document stages (``ApplyStages``) -> staged Parquet
         files under `output`/.work (``StageDocuments``); rejected and error records go straight
         to their writers; the exact hashes and band keys are sketched on the way;
      2. keyed decisions, on key columns read back from the staged files: exact dedup, near dedup
         (with earlier runs' band indexes), the topic model, the sampling plan;
      3. apply pass: each staged file is read once, its decisions applied (``ApplyDecisions``),
         curated/rejected/tagged written.

    `state`: directory of earlier runs' band indexes (cross-run near-dedup); this run writes its
    own index to `output/minhash-index/`, which the command moves into `state` after success.
    `earlier_shards`: shards an earlier run processed; their documents that run kept are not output
    again (with `reprocess`, they are kept as themselves: `transforms/dedup/earlier.py`).
    `progress`: a `pipeline.progress.ProgressChannel` the workers report to (local runs), or None.
    `limit`: process only the first `limit` input records (`FirstRecords`).
    """
    drop = mode == "run"
    extras: dict[str, Any] = {}
    read, read_docs, errors = _read(p, shards, config, run, progress, limit, extras)
    index_in = prior_index_files(state)
    kept, rejected, more_errors = _streaming_pass(read_docs, config, drop, index_in,
                                                  earlier_shards, reprocess)
    errors += more_errors
    files = kept | "stage" >> StageDocuments(f"{output}/{WORK_DIR}/staged")
    index_params = (config.near_dedup.index_params()
                    if drop and config.near_dedup.enabled else None)
    keyed = keyed_stages(config, drop, index_params)
    decided, sides = _keyed_decisions(kept, files, config, keyed, index_in, extras,
                                      f"{output}/{WORK_DIR}/sketches")
    applied = decided | "apply" >> beam.ParDo(ApplyDecisions(keyed), *sides).with_outputs(
        REJECTED, ERRORS, ENTERING, INDEX, main=CURATED)
    errors.append(applied[ERRORS])
    rejected.append(applied[REJECTED])
    out_docs = applied[CURATED]
    _diversity(applied[ENTERING], out_docs, config.sampling.keys, extras,
               same=drop and not config.sampling.enabled)
    all_errors = errors | "FlattenErrors" >> beam.Flatten()
    _write_outputs(output, config, drop, out_docs, rejected, all_errors,
                   applied[INDEX] if index_params is not None else None)
    named = {"input": read_docs, "curated" if drop else "tagged": out_docs, "errors": all_errors,
             "skipped": read[SKIPPED]}
    named.update({f"rejected#{i}": pcoll for i, pcoll in enumerate(rejected)})
    _ = named | "Stats" >> WriteStats(output, run, shards, extras, progress=progress)


def _read(p: beam.Pipeline, shards: list[str], config: Config, run: RunInfo, progress: Any,
          limit: int | None, extras: dict[str, Any]) -> tuple[Any, Any, list]:
    """(the reader's outputs, the documents read, error collections); with `limit`, only the
    first `limit` records (``FirstRecords``) go on, and its summary goes into `extras`."""
    known, unknown = shard_list(shards, run)
    read = (p
            | "Shards" >> beam.Create(known)
            | "SpreadShards" >> beam.Reshuffle()
            | "Read" >> beam.ParDo(ReadShard(config.read, run, progress, limit)).with_outputs(
                ERRORS, SKIPPED, POSITIONED, main="docs"))
    if limit is None:
        return read, read.docs, [read[ERRORS], p | "UnknownShards" >> beam.Create(unknown)]
    unknown_positioned = [((e["source_uri"], 0), "error", e) for e in unknown]
    first = ((read[POSITIONED], p | "UnknownShards" >> beam.Create(unknown_positioned))
             | "FlattenPositioned" >> beam.Flatten()
             | "FirstRecords" >> FirstRecords(limit))
    extras["limit"] = first["summary"]
    return read, first["docs"], [first[ERRORS]]


def _streaming_pass(read_docs: Any, config: Config, drop: bool, index_in: list[str],
                    earlier_shards: Sequence[str], reprocess: bool) -> tuple[Any, list, list]:
    """1. The per-document stages over the documents as they stream: (kept, rejected collections,
    error collections)."""
    chain, deferred = streaming_stages(config)
    rejected, errors = [], []
    if earlier_shards and index_in:
        # Documents an earlier run kept, read again (`EarlierRuns`), are decided between the
        # per-document stages and the deferred ones, as in the stage order; only documents of
        # shards read again cross its join.
        n = len(document_stages(config))
        first = read_docs | "documents" >> ApplyStages(chain[:n], drop)
        again = first.kept | EarlierRuns(index_in, earlier_shards, reprocess, drop)
        rejected += [first.rejected, again.rejected]
        errors += [first.errors, again.errors]
        streamed = (again.kept | "keys" >> ApplyStages(chain[n:], drop, deferred)
                    if chain[n:] else None)
        kept = streamed.kept if streamed is not None else again.kept
    else:
        streamed = read_docs | "documents" >> ApplyStages(chain, drop, deferred)
        kept = streamed.kept
    if streamed is not None:
        rejected.append(streamed.rejected)
        errors.append(streamed.errors)
    return kept, rejected, errors


def _keyed_decisions(kept: Any, files: Any, config: Config, keyed: KeyedStages,
                     index_in: list[str], extras: dict[str, Any],
                     sketch_dir: str) -> tuple[Any, list]:
    """2. Decisions on keys: exact and near dedup, the topic model, the sampling plan. Returns the
    staged files with their decisions and the apply pass's side inputs. The key sketches are
    stored under `sketch_dir` and cross to their readers as paths (``sketch.SketchFile``)."""
    decisions = []
    if keyed.exact:
        exact_sketch = (kept
                        | "ExactKeys" >> beam.Map(exact_key)
                        | "SketchExactKeys" >> sketch_keys(log2_cells=24)
                        | "StoreExactSketch" >> beam.Map(store_sketch, sketch_dir, "exact"))
        decisions.append(files | ExactDecisions(exact_sketch))
    if keyed.near:
        band_sketch = (kept
                       | "BandKeys" >> beam.Map(band_keys)
                       | "SketchBandKeys" >> sketch_keys(log2_cells=26)
                       | "StoreBandSketch" >> beam.Map(store_sketch, sketch_dir, "bands"))
        after_exact = files | "AfterExact" >> DecisionsByFile(decisions)
        decisions.append(after_exact | NearDecisions(
            config.near_dedup, band_sketch, near_member(keyed), KEY_COLUMNS,
            index_in=index_in, sketch_dir=sketch_dir))
    decided = files | "Decisions" >> DecisionsByFile(decisions)
    model = sample_plan = cutoffs = None
    if keyed.topics:
        model = decided | TopicModelFromStaged(config.topics, keyed)
    if keyed.sampling:
        sample_plan, cutoffs = decided | SamplingPlan(config.sampling, keyed, model)
        extras["sampling"] = sample_plan | "PlanSummary" >> beam.Map(lambda plan: plan.summary())
    sides = [pvalue.AsSingleton(pc) if pc is not None else None
             for pc in (sample_plan, cutoffs, model)]
    return decided, sides


def _diversity(entering: Any, out_docs: Any, keys: Sequence[str], extras: dict[str, Any],
               same: bool = False) -> None:
    """The diversity statistics of the documents entering the sampler and of those output.
    `same`: they are the same documents (a run without the sampler), measured once (at 200k the
    two passes took 60 and 46 of 630 wall seconds; the one pass, 66)."""
    input_strata = entering | "InputStrata" >> StratumCounts(keys)
    extras["diversity_input"] = entering | "DiversityInput" >> DiversityStats(
        keys, counts=input_strata)
    if same:
        extras["diversity_output"] = extras["diversity_input"]
        return
    extras["diversity_output"] = out_docs | "DiversityOutput" >> DiversityStats(
        keys, reference=input_strata)


def _write_outputs(output: str, config: Config, drop: bool, out_docs: Any, rejected: list,
                   all_errors: Any, index: Any) -> None:
    """3. The writers. Each document output has its own writer in the step that produces it (a
    multi-input Flatten of documents would be materialised by Beam's in-process runner)."""
    if drop:
        _write_parquet(out_docs, "Curated", f"{output}/curated/part", RECORD_SCHEMA, config)
        if config.output.write_rejected:
            for i, pcoll in enumerate(rejected):
                name = "part" if i == 0 else f"part{i}"
                _write_parquet(pcoll, "Rejected" + ("" if i == 0 else str(i)),
                               f"{output}/rejected/{name}", REJECTED_SCHEMA, config)
        if index is not None:
            _ = (index
                 | "WriteIndex" >> beam.io.WriteToParquet(
                     f"{output}/{INDEX_DIR}/minhash-index", INDEX_SCHEMA,
                     row_group_buffer_size=config.output.row_group_bytes,
                     file_name_suffix=".parquet"))
    else:
        _write_parquet(out_docs, "Tagged", f"{output}/tagged/part", REJECTED_SCHEMA, config)
    _write_parquet(all_errors, "Errors", f"{output}/errors/part", ERROR_SCHEMA, config)

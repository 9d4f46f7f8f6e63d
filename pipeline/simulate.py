"""`ouroboros simulate`: recursive training on real text, with and without curation.

Each generation a small generative model (a word n-gram model, `pipeline/ngram_lm.py`) is trained
on the generation's training set, writes the synthetic part of the next "crawl" with truncated
(top-p / top-k) sampling, and a share of fresh real documents joins it. The next training set is
then built in up to four regimes, side by side, from the same seeds:

- ``replace``: the new crawl only, uncurated (`docs` documents drawn from it at random);
- ``accumulate``: everything before plus that draw (Gerstgrasser et al. 2024);
- ``curated``: the new crawl through the real ouroboros pipeline (`execute()`, with a budget of
  `docs` for its sampler), replacing the previous training set: curation alone;
- ``curated_accumulate``: the same curated crawl added to everything kept before, run as the
  nightly command runs (`--state`: near-dedup against every earlier kept document).

Provenance is kept in the simulation's own books (every document has an id, an origin, real or
generated, and the generation that wrote it) and travels through the pipeline as JSONL metadata,
so the share of generated documents the pipeline let through is counted, not estimated.
Metrics: `pipeline/collapse_metrics.py`; table, CSV, JSON and plots: `pipeline/simulate_report.py`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections import Counter
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
from ouroboros.pipeline.collapse_metrics import (
    TailReference,
    WordIndex,
    distinct_n,
    first_words,
    tail_kept,
    tail_mass,
    vocabulary,
)
from ouroboros.pipeline.ngram_lm import KneserNeyLM, Vocabulary, detokenize, tokenize, truncate

REGIMES = ("replace", "accumulate", "curated", "curated_accumulate")
CURATED = ("curated", "curated_accumulate")

# The curation a user would configure against model collapse (see README, "Model collapse"):
# drop what the scorer calls `synthetic` (its stricter operating point), keep every quality filter
# and near-dedup on, and sample the budget tail-preservingly over language x topic strata.
DEFAULT_CURATION = (
    "synthetic.drop_classes=[synthetic]",
    "topics.enabled=true",
    "sampling.keys=[language, topic]",
    "sampling.policy=floor_and_cap",
)


class SimulationError(ValueError):
    """A problem with the simulation's arguments or input, reported before the work starts."""


@dataclass(frozen=True)
class SimConfig:
    inputs: tuple[str, ...]
    output: str
    generations: int = 10
    docs: int = 1000
    crawl_docs: int | None = None
    fresh_share: float = 0.2
    test_docs: int = 500
    order: int = 3
    top_p: float = 0.9
    top_k: int = 0
    max_doc_tokens: int = 400
    tail_top_k: int = 1000
    metric_tokens: int = 100_000
    regimes: tuple[str, ...] = ("replace", "accumulate", "curated")
    pipeline_config: str | None = None
    overrides: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    seed: int = 0
    workers: int = 1
    overwrite: bool = False

    @property
    def crawl(self) -> int:
        return self.crawl_docs or self.docs

    @property
    def fresh(self) -> int:
        return round(self.crawl * self.fresh_share)

    def check(self) -> None:
        """Every wrong value is an error before any work starts."""
        problems = []
        if self.generations < 1:
            problems.append("--generations must be >= 1")
        if self.docs < 1 or self.crawl < 1 or self.test_docs < 1:
            problems.append("--docs, --crawl-docs and --test-docs must be >= 1")
        if not 0 <= self.fresh_share <= 1:
            problems.append("--fresh-share must be in [0, 1]")
        if not 0 < self.top_p <= 1:
            problems.append("--top-p must be in (0, 1]")
        if self.top_k < 0 or self.order < 1 or self.max_doc_tokens < 1 or self.tail_top_k < 1:
            problems.append("--top-k >= 0, --order >= 1, --max-doc-tokens >= 1, --tail-top-k >= 1")
        if self.metric_tokens < 1 or self.workers < 1:
            problems.append("--metric-tokens and --workers must be >= 1")
        bad = [r for r in self.regimes if r not in REGIMES]
        if bad or not self.regimes:
            problems.append(f"--regimes: unknown {bad}; choose from {', '.join(REGIMES)}")
        for ex in self.excludes:
            if "=" not in ex:
                problems.append(f"--exclude must be FIELD=VALUE: {ex!r}")
        if problems:
            raise SimulationError("; ".join(problems))


@dataclass
class SimDoc:
    """One document in the simulation's books: where it came from, and its tokens."""

    id: str
    origin: str          # "real" | "generated"
    generation: int      # the crawl it entered (generated: written by generation - 1's model)
    tokens: np.ndarray = field(repr=False)


# ---------------------------------------------------------------------------------------------
# The real corpus, read with the project's own readers.


def read_real_texts(inputs: list[str], config: Any, excludes: list[str]) -> tuple[list[str], dict]:
    """Texts of every document in the shards (HTML extracted, normalized, exact duplicates and
    excluded records counted and dropped), and an account of what happened to each record."""
    from ouroboros.transforms.base import run_stage
    from ouroboros.transforms.io.extract import Extract
    from ouroboros.transforms.io.normalize import Normalize, exact_dedup_key
    from ouroboros.transforms.io.read import detect_format, expand_inputs, read_shard

    rules = [tuple(e.split("=", 1)) for e in excludes]
    report: Counter = Counter()
    texts: list[str] = []
    seen: set[str] = set()
    extract, normalize = Extract(config.extract), Normalize(config.normalize)
    extract.setup()
    try:
        for uri in expand_inputs(inputs):
            fmt = detect_format(uri)
            if fmt is None:
                report["unknown_format_shards"] += 1
                continue
            for kind, item in read_shard(uri, fmt, config.read):
                if kind != "doc":
                    report[f"read_{kind}"] += 1
                    continue
                report["documents_read"] += 1
                meta = item.get("source_metadata") or {}
                if any(str(meta.get(k)) == v for k, v in rules):
                    report["excluded"] += 1
                    continue
                item, reason = run_stage(extract, item)
                if reason is None:
                    item, reason = run_stage(normalize, item)
                if reason is not None:
                    report["no_text"] += 1
                    continue
                key = exact_dedup_key(item["text"])
                if key in seen:
                    report["exact_duplicates"] += 1
                    continue
                seen.add(key)
                texts.append(item["text"])
    finally:
        extract.teardown()
    report["kept"] = len(texts)
    return texts, dict(report)


# ---------------------------------------------------------------------------------------------
# One model step: fit, score the held-out real text, write the next crawl's synthetic part.


@dataclass(frozen=True)
class ModelTask:
    train: list[np.ndarray]
    vocab_size: int
    order: int
    n_samples: int
    lengths: np.ndarray
    seed: int
    generation: int
    top_p: float
    top_k: int
    sentence_ends: np.ndarray


def model_step(task: ModelTask, test: list[np.ndarray]) -> tuple[float, list[np.ndarray], float]:
    """(perplexity on the held-out real text, the sampled documents, seconds). Document i of a
    generation draws from its own seeded stream, so every regime sees the same random numbers."""
    t0 = time.perf_counter()
    lm = KneserNeyLM.fit(task.train, task.vocab_size, task.order)
    ppl = lm.perplexity(test)
    out = []
    for i in range(task.n_samples):
        n = int(task.lengths[i])
        ids = lm.sample(np.random.default_rng([task.seed, task.generation, i]), n, task.top_p,
                        task.top_k)
        out.append(truncate(ids, n, task.sentence_ends, open_end=True) if len(ids) == n else ids)
    return ppl, out, time.perf_counter() - t0


_TEST: list[np.ndarray] = []


def _init_worker(test: list[np.ndarray]) -> None:
    global _TEST
    _TEST = test


def _model_step_worker(task: ModelTask) -> tuple[float, list[np.ndarray], float]:
    return model_step(task, _TEST)


class _Inline(Executor):
    """Runs model steps in this process (`--workers 1`)."""

    def __init__(self, test: list[np.ndarray]):
        self._test = test

    def submit(self, fn, /, *args, **kwargs):
        f: Future = Future()
        f.set_result(model_step(args[0], self._test))
        return f


# ---------------------------------------------------------------------------------------------
# The curated regimes: the crawl through `execute()` as a user would run it.


def write_crawl(path: Path, crawl: list[SimDoc], vocab: Vocabulary, generation: int) -> None:
    with path.open("w", encoding="utf-8") as f:
        for d in crawl:
            f.write(json.dumps({
                "text": detokenize(vocab.decode(d.tokens)),
                "sim_id": d.id, "sim_origin": d.origin, "sim_generation": d.generation,
                "crawl_date": f"{2000 + generation:04d}-01-01",
            }, ensure_ascii=False) + "\n")


def curate(crawl: list[SimDoc], vocab: Vocabulary, workdir: Path, generation: int, regime: str,
           cfg: SimConfig, state: str | None) -> tuple[list[SimDoc], dict]:
    """The crawl through the real pipeline; returns the kept documents (from the books, by id)
    and what happened to the generated and the real ones."""
    import pyarrow.parquet as pq
    from ouroboros.pipeline.cli import execute

    gen_dir = workdir / regime / f"gen-{generation:02d}"
    gen_dir.mkdir(parents=True, exist_ok=True)
    shard = gen_dir / "crawl.jsonl"
    write_crawl(shard, crawl, vocab, generation)
    overrides = [*cfg.overrides, "sampling.enabled=true", f"sampling.budget={cfg.docs}",
                 "sampling.budget_fraction=null"]
    if cfg.pipeline_config is None:
        overrides = [*DEFAULT_CURATION, *overrides]
    stats = execute([str(shard)], str(gen_dir / "out"), cfg.pipeline_config, overrides,
                    run_id=f"sim-{regime}-g{generation:02d}", overwrite=True, quiet=True,
                    state=state)
    by_id = {d.id: d for d in crawl}
    kept: list[SimDoc] = []
    fate: dict[str, Counter] = {"generated": Counter(), "real": Counter()}
    for part in ("curated", "rejected"):
        for f in sorted((gen_dir / "out" / part).glob("*.parquet")):
            cols = ["source_metadata"] + (["reject_stage"] if part == "rejected" else [])
            table = pq.read_table(f, columns=cols).to_pylist()
            for row in table:
                doc = by_id[json.loads(row["source_metadata"])["sim_id"]]
                if part == "curated":
                    kept.append(doc)
                    fate[doc.origin]["kept"] += 1
                else:
                    fate[doc.origin][f"rejected_at_{row['reject_stage']}"] += 1
    for origin, counts in fate.items():
        counts["in_crawl"] = sum(1 for d in crawl if d.origin == origin)
    kept.sort(key=lambda d: d.id)
    return kept, {"fate": {k: dict(v) for k, v in fate.items()}, "errors": stats.get("errors", 0),
                  "accounting_holds": stats.get("accounting", {}).get("holds")}


# ---------------------------------------------------------------------------------------------
# The loop.


def run_simulation(cfg: SimConfig) -> dict[str, Any]:
    """Runs every generation of every regime; writes table, CSV, JSON and plots into the output."""
    from ouroboros.pipeline.config import load_config
    from ouroboros.pipeline.simulate_report import write_report

    cfg.check()
    from ouroboros.transforms.io.read import expand_inputs

    pipe_cfg = load_config(cfg.pipeline_config, list(cfg.overrides))  # errors before any work
    expand_inputs(list(cfg.inputs))  # a pattern that matches nothing is an error here too
    out = Path(cfg.output)
    if out.exists() and any(out.iterdir()) and not cfg.overwrite:
        raise SimulationError(f"{out} is not empty; choose another --output or pass --overwrite")
    if out.exists() and cfg.overwrite:
        for name in ("pipeline", "simulation.json", "simulation.csv"):
            p = out / name
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    texts, corpus_report = read_real_texts(list(cfg.inputs), pipe_cfg, list(cfg.excludes))
    tokens = [tokenize(t) for t in texts]
    rng = np.random.default_rng([cfg.seed, 0])
    order = rng.permutation(len(tokens))
    tokens = [tokens[i] for i in order if tokens[i]]
    needed = cfg.test_docs + cfg.docs + cfg.generations * cfg.fresh
    if len(tokens) < needed:
        raise SimulationError(
            f"the input holds {len(tokens)} usable documents; this run needs {needed} "
            f"(test {cfg.test_docs} + generation 0 {cfg.docs} + {cfg.generations} generations x "
            f"{cfg.fresh} fresh): lower --docs, --crawl-docs, --fresh-share or --test-docs")
    vocab = Vocabulary(t for doc in tokens for t in doc)
    ends = vocab.sentence_ends()
    real = [truncate(vocab.encode(t), cfg.max_doc_tokens, ends) for t in tokens]
    test = real[: cfg.test_docs]
    d0 = [SimDoc(f"g00-r{i:06d}", "real", 0, a) for i, a in enumerate(real[cfg.test_docs:
                                                                          cfg.test_docs + cfg.docs])]
    pool = real[cfg.test_docs + cfg.docs:]
    lengths_ref = np.array([len(d.tokens) for d in d0])

    words = WordIndex(vocab.words)
    word_docs = lambda docs: [words.words(d.tokens) for d in docs]
    ref = TailReference.from_docs(word_docs(d0), words.size, cfg.tail_top_k)
    test_words = [words.words(a) for a in test]
    real_reference = output_metrics(test_words, ref, words.size, cfg.metric_tokens)

    n_synth = cfg.crawl - cfg.fresh
    # Spawned, not forked: the Beam pipelines of the curated regimes run threads in this process.
    executor: Executor = (ProcessPoolExecutor(cfg.workers, mp_context=get_context("spawn"),
                                              initializer=_init_worker, initargs=(test,))
                          if cfg.workers > 1 else _Inline(test))

    def task(train: list[SimDoc], g: int) -> ModelTask:
        lengths = np.random.default_rng([cfg.seed, g, 1]).choice(lengths_ref, n_synth)
        return ModelTask([d.tokens for d in train], len(vocab), cfg.order, n_synth, lengths,
                         cfg.seed, g, cfg.top_p, cfg.top_k, ends)

    rows: list[dict] = []
    pipeline_runs: list[dict] = []
    try:
        ppl0, sample0, _ = executor.submit(_model_step_worker, task(d0, 0)).result()
        out0 = [SimDoc(f"g01-s{i:06d}", "generated", 1, a) for i, a in enumerate(sample0)]
        base_row = metrics_row(0, "", d0, out0, ppl0, words, ref, cfg, None)
        tail_out0 = base_row["tail_kept_out_abs"]
        train = {r: d0 for r in cfg.regimes}
        outputs = {r: out0 for r in cfg.regimes}
        for r in cfg.regimes:
            rows.append({**base_row, "regime": r, "tail_kept_out": 1.0})
        state_dir = out / "pipeline" / "curated_accumulate" / "state"
        for g in range(1, cfg.generations + 1):
            fresh = [SimDoc(f"g{g:02d}-r{i:06d}", "real", g, a)
                     for i, a in enumerate(pool[(g - 1) * cfg.fresh: g * cfg.fresh])]
            futures: dict[str, Future] = {}
            curation: dict[str, dict] = {}
            new_train: dict[str, list[SimDoc]] = {}
            for r in sorted(cfg.regimes, key=lambda r: r in CURATED):  # uncurated first: overlap
                crawl = outputs[r] + fresh
                if r in CURATED:
                    kept, info = curate(crawl, vocab, out / "pipeline", g, r, cfg,
                                        str(state_dir) if r == "curated_accumulate" else None)
                    curation[r] = info
                    pipeline_runs.append({"generation": g, "regime": r, **info})
                    new_train[r] = kept if r == "curated" else train[r] + kept
                else:
                    # The same uniform draw of `docs` documents for both uncurated regimes.
                    pick = np.random.default_rng([cfg.seed, g, 2]).permutation(len(crawl))
                    drawn = [crawl[i] for i in np.sort(pick[: cfg.docs])]
                    new_train[r] = drawn if r == "replace" else train[r] + drawn
                if not new_train[r]:
                    raise RuntimeError(f"generation {g}, {r}: the training set is empty (the "
                                       "pipeline kept nothing); see its output under "
                                       f"{out / 'pipeline' / r}")
                futures[r] = executor.submit(_model_step_worker, task(new_train[r], g))
            for r in cfg.regimes:
                ppl, sample, secs = futures[r].result()
                outputs[r] = [SimDoc(f"g{g + 1:02d}-s{i:06d}", "generated", g + 1, a)
                              for i, a in enumerate(sample)]
                row = metrics_row(g, r, new_train[r], outputs[r], ppl, words, ref, cfg,
                                  curation.get(r))
                row["tail_kept_out"] = row["tail_kept_out_abs"] / tail_out0 if tail_out0 else \
                    float("nan")
                row["model_seconds"] = round(secs, 1)
                rows.append(row)
            train = new_train
            print(f"generation {g}/{cfg.generations} done "
                  f"({time.perf_counter() - t_start:.0f} s)", flush=True)
    finally:
        executor.shutdown() if cfg.workers > 1 else None

    result = {
        "config": {**asdict(cfg), "curation_overrides": list(DEFAULT_CURATION)
                   if cfg.pipeline_config is None else []},
        "corpus": {**corpus_report, "usable": len(tokens), "vocabulary_tokens": len(vocab),
                   "test_docs": len(test), "generation0_docs": len(d0),
                   "fresh_per_generation": cfg.fresh, "synthetic_per_crawl": n_synth,
                   "head_words": int(ref.head.sum()), "tail_words": len(ref.tail_words),
                   "real_train_tail_mass": tail_mass(word_docs(d0), ref)},
        "real_heldout_reference": real_reference,
        "rows": rows,
        "pipeline_runs": pipeline_runs,
        "seconds": round(time.perf_counter() - t_start, 1),
    }
    write_report(result, out)
    return result


def output_metrics(word_docs: list[np.ndarray], ref: TailReference, n_words: int,
                   budget: int) -> dict[str, float]:
    sample = first_words(word_docs, budget)
    return {"out_words": int(sum(len(d) for d in sample)),
            "vocab_out": vocabulary(sample, n_words),
            "tail_mass_out": tail_mass(sample, ref),
            "tail_kept_out_abs": tail_kept(sample, ref),
            "distinct1_out": distinct_n(sample, 1),
            "distinct2_out": distinct_n(sample, 2)}


def metrics_row(g: int, regime: str, train: list[SimDoc], output: list[SimDoc], ppl: float,
                words: WordIndex, ref: TailReference, cfg: SimConfig,
                curation: dict | None) -> dict[str, Any]:
    train_words = [words.words(d.tokens) for d in train]
    row: dict[str, Any] = {
        "generation": g, "regime": regime,
        "train_docs": len(train),
        "train_words": int(sum(len(w) for w in train_words)),
        "synthetic_share": sum(d.origin == "generated" for d in train) / len(train),
        "vocab_train": vocabulary(train_words, words.size),
        "tail_mass_train": tail_mass(train_words, ref),
        "tail_kept_train": tail_kept(train_words, ref),
        "perplexity": ppl,
        **output_metrics([words.words(d.tokens) for d in output], ref, words.size,
                         cfg.metric_tokens),
    }
    if curation is not None:
        gen, real = curation["fate"]["generated"], curation["fate"]["real"]
        row["let_through"] = gen.get("kept", 0) / gen["in_crawl"] if gen["in_crawl"] else None
        row["real_kept"] = real.get("kept", 0) / real["in_crawl"] if real["in_crawl"] else None
    return row


# ---------------------------------------------------------------------------------------------
# Command line (registered in pipeline/cli.py).


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", "-i", nargs="+", action="extend", required=True, metavar="PATH",
                   help="real text: shard paths, globs or directories (one or more, and "
                        "repeatable), read with the project's readers")
    p.add_argument("--output", "-o", required=True, help="directory for the table, CSV, JSON, "
                                                         "plots and the pipeline runs")
    p.add_argument("--generations", "-g", type=int, default=10)
    p.add_argument("--docs", type=int, default=1000,
                   help="training documents per generation (the budget)")
    p.add_argument("--crawl-docs", type=int, default=None,
                   help="documents in each generation's crawl (default: --docs)")
    p.add_argument("--fresh-share", type=float, default=0.2,
                   help="share of each crawl that is fresh real text")
    p.add_argument("--test-docs", type=int, default=500, help="held-out real documents")
    p.add_argument("--order", type=int, default=3, help="n-gram order of the model")
    p.add_argument("--top-p", type=float, default=0.9, help="nucleus sampling (1 = off)")
    p.add_argument("--top-k", type=int, default=0, help="top-k sampling (0 = off)")
    p.add_argument("--max-doc-tokens", type=int, default=400,
                   help="documents (real and generated) are cut to this many tokens")
    p.add_argument("--tail-top-k", type=int, default=1000,
                   help="the real corpus's head: its K most frequent words; the rest is tail")
    p.add_argument("--metric-tokens", type=int, default=100_000,
                   help="words of each model's output the output metrics are measured on")
    p.add_argument("--regimes", default="replace,accumulate,curated",
                   help=f"comma-separated, from {', '.join(REGIMES)}")
    p.add_argument("--config", "-c", help="pipeline config for the curated regimes (default: "
                                          "the documented curation, see README)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one pipeline config value (repeatable)")
    p.add_argument("--exclude", action="append", default=[], metavar="FIELD=VALUE",
                   help="skip input records whose metadata FIELD equals VALUE, e.g. label=machine")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1,
                   help="processes fitting and sampling the models in parallel")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier simulation's output")


def run_from_args(args: argparse.Namespace) -> int:
    from ouroboros.pipeline.simulate_report import format_table

    cfg = SimConfig(
        inputs=tuple(args.input), output=args.output, generations=args.generations,
        docs=args.docs, crawl_docs=args.crawl_docs, fresh_share=args.fresh_share,
        test_docs=args.test_docs, order=args.order, top_p=args.top_p, top_k=args.top_k,
        max_doc_tokens=args.max_doc_tokens, tail_top_k=args.tail_top_k,
        metric_tokens=args.metric_tokens,
        regimes=tuple(r.strip() for r in args.regimes.split(",") if r.strip()),
        pipeline_config=args.config, overrides=tuple(args.set), excludes=tuple(args.exclude),
        seed=args.seed, workers=args.workers, overwrite=args.overwrite)
    try:
        result = run_simulation(cfg)
    except SimulationError as exc:  # a refusal before the work: exit code 2, like every command
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_table(result))
    print(f"\noutput: {os.path.abspath(cfg.output)}/ (simulation.csv, simulation.json, *.png, "
          f"pipeline/) in {result['seconds']:.0f} s")
    return 0

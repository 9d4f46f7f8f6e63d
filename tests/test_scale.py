"""Scale: no document crosses a shuffle, and the key sketch that keeps the shuffles small never
loses a duplicate (issue 14; the figures are in bench/pipeline_vs_datatrove.py)."""

from __future__ import annotations

import pickle
import random
from pathlib import Path
from typing import Any

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.pipeline import PipelineVisitor
from apache_beam.pvalue import PCollection
from apache_beam.testing.util import assert_that, equal_to
from ouroboros.pipeline.cli import execute
from ouroboros.transforms.dedup.sketch import (
    KeySketch,
    LoadedSketches,
    SketchFile,
    SketchKeys,
    as_keys,
    store_sketch,
)

from tests.conftest import read_output

DEMO = Path(__file__).resolve().parents[1] / "pipeline" / "demo_corpus"


def _documents_in(value: Any, depth: int = 0) -> bool:
    """Does `value` hold a document (a dict with a text) anywhere inside?"""
    if depth > 6:
        return False
    if isinstance(value, dict):
        if isinstance(value.get("text"), str) and len(value) > 2:
            return True
        return any(_documents_in(v, depth + 1) for v in value.values())
    if isinstance(value, (tuple, list)):
        return any(_documents_in(v, depth + 1) for v in value)
    return False


def _no_document(element: Any, where: str) -> Any:
    if _documents_in(element):
        raise AssertionError(f"a document crosses the shuffle {where}: {str(element)[:300]}")
    return element


@pytest.mark.slow
def test_no_document_crosses_a_shuffle_and_the_run_is_complete(tmp_path, monkeypatch):
    """The input of every GroupByKey of the graph (the shuffles of Reshuffle, CoGroupByKey and
    the Parquet writers too) also goes to a check: an element holding a document fails the run. A
    combine's GroupByKey is left alone: runners combine before its shuffle (partial accumulators
    cross it, not the inputs).
    All stages on, topics and sampling included; the topic model's fit on a bounded sample of
    texts ({"id", "text"} only) is the one allowed text crossing."""
    from ouroboros.pipeline import graph

    original = graph.build_pipeline
    checked: list[str] = []

    class Shuffles(PipelineVisitor):
        def __init__(self) -> None:
            self.inputs: list[tuple[str, PCollection]] = []

        def visit_transform(self, node) -> None:
            lifted = node.parent is not None and isinstance(node.parent.transform,
                                                            beam.CombinePerKey)
            if isinstance(node.transform, beam.GroupByKey) and not lifted:
                self.inputs.append((node.full_label, node.inputs[0]))

    def build_and_check(p, *args, **kwargs):
        original(p, *args, **kwargs)
        shuffles = Shuffles()
        p.visit(shuffles)
        for i, (where, pcoll) in enumerate(shuffles.inputs):
            checked.append(where)
            _ = pcoll | f"NoDocument{i}" >> beam.Map(_no_document, where)

    monkeypatch.setattr(graph, "build_pipeline", build_and_check)
    out = tmp_path / "out"
    stats = execute([str(DEMO / "demo.jsonl"), str(DEMO / "demo.warc")], str(out), quiet=True,
                    overrides=["topics.enabled=true", "sampling.enabled=true",
                               "sampling.keys=[language,topic]", "sampling.budget_fraction=0.5"])
    monkeypatch.undo()
    assert any("near_dedup" in w for w in checked) and any("exact" in w.lower() for w in checked)
    assert stats["accounting"]["holds"]
    curated, rejected, errors = (read_output(out, p) for p in ("curated", "rejected", "errors"))
    assert len(curated) + len(rejected) + len(errors) == stats["input_records"] > 20
    assert {r["reject_stage"] for r in rejected} >= {"quality", "near_dedup", "sample"}
    assert not (out / ".work").exists()  # the staged documents are removed after the run


def test_key_sketch_never_misses_a_repeated_key_across_partial_sketches():
    rng = random.Random(7)
    once = [rng.getrandbits(64) for _ in range(200_000)]
    twice = [rng.getrandbits(64) for _ in range(2_000)]
    stream = once + twice + twice
    rng.shuffle(stream)
    fn = SketchKeys(log2_cells=20, k=3)
    parts = []
    for i in range(3):  # three workers' partial sketches, merged as a runner would
        acc = fn.create_accumulator()
        for key in stream[i::3]:
            acc = fn.add_input(acc, key)
        parts.append(pickle.loads(pickle.dumps(fn.compact(acc))))  # encoded between workers
    sketch = fn.extract_output(fn.merge_accumulators(parts))
    assert sketch.at_least(as_keys(twice), 2).all()  # no false negative, ever
    assert sketch.at_least(as_keys(once), 1).all()
    # false positives (a key seen once said twice, an unseen key said seen) as a Bloom filter's:
    # all k cells hit by some other key, (1 - exp(-k n / cells))**k, ~8.6% at this heavy load
    fill = 1 - np.exp(-3 * len(set(stream)) / 2**20)
    unseen = as_keys(rng.getrandbits(64) for _ in range(20_000))
    assert sketch.at_least(unseen, 1).mean() < 1.2 * fill**3
    assert sketch.at_least(as_keys(once), 2).mean() < 1.2 * fill**3


def test_key_sketch_is_encoded_compressed_and_decodes_to_a_working_sketch():
    # A runner keeps encoded copies of the sketch (accumulators, side inputs): a sparse one must
    # not cost its full 16 MiB each time, and a decoded one must keep counting and merging.
    keys = as_keys(range(1, 50_001))
    sketch = KeySketch()  # 2**26 cells: 16 MiB of counters
    sketch.add(keys)
    sketch.add(keys[:100])
    data = pickle.dumps(sketch)
    assert len(data) < 2**20
    back = pickle.loads(data)
    assert list(back.at_least(keys[98:102], 2)) == [True, True, False, False]
    back.add(keys[100:101])
    back.merge(pickle.loads(data))
    assert back.at_least(keys[100:102], 2).all()  # 101 added again; 102 seen once on each side


def test_a_stored_sketch_is_read_once_per_bundle_and_let_go_at_its_end(tmp_path):
    # The keyed stages take a sketch's path as their side input: the runner holds a path, and a
    # reader holds the 16 MiB only while its bundle runs.
    keys = as_keys(range(1, 1_001))
    sketch = KeySketch(log2_cells=16)
    sketch.add(keys)
    sketch.add(keys[:10])
    stored = store_sketch(sketch, str(tmp_path / "sketches"), "bands")
    assert isinstance(stored, SketchFile) and len(pickle.dumps(stored)) < 500
    loaded = LoadedSketches()
    first = loaded.get(stored)
    assert list(first.at_least(keys[8:12], 2)) == [True, True, False, False]
    assert loaded.get(stored) is first  # once per bundle
    loaded.clear()
    assert loaded.get(stored) is not first  # read again by the next bundle
    assert loaded.get(sketch) is sketch and loaded.get(None) is None
    (tmp_path / "not-a-sketch.sketch").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ValueError, match="not hold a key sketch"):
        loaded.get(SketchFile(str(tmp_path / "not-a-sketch.sketch")))


def test_key_sketch_counts_a_key_twice_within_one_batch_and_refuses_other_shapes():
    sketch = KeySketch(log2_cells=10, k=2)
    sketch.add(as_keys([5, 5, 9]))
    assert list(sketch.at_least(as_keys([5, 9]), 2)) == [True, False]
    with pytest.raises(ValueError):
        sketch.merge(KeySketch(log2_cells=12, k=2))


@pytest.mark.slow
def test_a_run_in_which_no_document_reaches_dedup_completes_with_and_without_earlier_runs(
        tmp_path):
    """The key sketches come out of combines without defaults: when no document reaches the keyed
    stages there is no sketch at all, and exact dedup, near dedup (also against an earlier run's
    band index) must take that as "no key repeats", not fail. The first run keeps documents (its
    index goes to the state directory); the second rejects every document at quality."""
    state = tmp_path / "state"
    first = execute([str(DEMO / "demo.jsonl")], str(tmp_path / "first"), quiet=True,
                    state=str(state), run_id="first")
    assert first["curated"] > 0 and list(state.rglob("*.parquet"))
    again = tmp_path / "again.jsonl"  # a shard the state has not seen
    again.write_bytes((DEMO / "demo.jsonl").read_bytes())
    for name, kwargs in (("alone", {}), ("after", {"state": str(state)})):
        out = tmp_path / name
        stats = execute([str(again)], str(out), quiet=True, run_id=name,
                        overrides=["quality.gopher_quality.min_doc_words=99999",
                                   "quality.language_aware=false"], **kwargs)
        assert stats.get("accounting", {}).get("holds") and stats["curated"] == 0, (name, stats)
        rejected = read_output(out, "rejected")
        assert len(rejected) == stats["input_records"] - stats["errors"] > 20
        stages = {r["reject_stage"] for r in rejected}
        assert "quality" in stages and not stages & {"exact_dedup", "near_dedup"}


@pytest.mark.slow
def test_the_output_diversity_is_measured_on_the_output_with_and_without_the_sampler(tmp_path):
    """Without the sampler the curated documents are the ones that entered it, and the statistics
    are measured once for both; with it, the output's are the sample's."""
    plain = execute([str(DEMO / "demo.jsonl")], str(tmp_path / "plain"), quiet=True)
    assert plain["diversity_output"] == plain["diversity_input"]
    assert plain["diversity_output"]["docs"] == plain["curated"] > 5
    sampled = execute([str(DEMO / "demo.jsonl")], str(tmp_path / "sampled"), quiet=True,
                      overrides=["sampling.enabled=true", "sampling.budget_fraction=0.5"])
    assert sampled["diversity_output"]["docs"] == sampled["curated"]
    assert sampled["diversity_input"]["docs"] == plain["curated"] > sampled["curated"]


class _MarksTeardown(beam.DoFn):
    def __init__(self, marker: str):
        self._marker = marker

    def process(self, x):
        yield x % 2, x

    def teardown(self):
        Path(self._marker).write_text("torn down")


def _torn_down_by_now(kv, marker: str, wait: float):
    import time

    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and not Path(marker).exists():
        time.sleep(0.1)
    return Path(marker).exists()


def test_a_local_run_lets_a_finished_stage_go_while_later_stages_run(tmp_path, monkeypatch):
    """Beam's in-process worker keeps a finished stage's DoFns (and what they hold) until they
    have been idle 60 s; a local run lets them go after ``cli.IDLE_STAGE_SECONDS``, so the keyed
    stages and the apply pass do not carry the streaming pass (README, "Scale")."""
    from apache_beam.runners.worker import sdk_worker
    from ouroboros.pipeline import cli

    monkeypatch.setattr(sdk_worker, "DEFAULT_BUNDLE_PROCESSOR_CACHE_SHUTDOWN_THRESHOLD_S",
                        sdk_worker.DEFAULT_BUNDLE_PROCESSOR_CACHE_SHUTDOWN_THRESHOLD_S)
    cli.release_idle_stages()
    marker = str(tmp_path / "first-stage-torn-down")
    with beam.Pipeline(runner="DirectRunner") as p:
        seen = (p | beam.Create(range(10)) | "First" >> beam.ParDo(_MarksTeardown(marker))
                | beam.GroupByKey()
                | "Later" >> beam.Map(_torn_down_by_now, marker, 4 * cli.IDLE_STAGE_SECONDS)
                | beam.combiners.ToList())
        assert_that(seen, equal_to([[True, True]]))

"""Every stage as a small labelled composite transform: ``StageOutputs(kept, rejected, errors)``
checked with ``assert_that`` on the DirectRunner (as Beam's ``examples/complete/tfidf_test.py``), and
no stage changing its input elements.

Inputs are ``Frozen`` dicts, which raise on any change: a stage that edited its input would turn every
document into an error record (per-document stages) or fail the pipeline (the others).
"""

from __future__ import annotations

import copy
from typing import Any

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from ouroboros.transforms.base import (
    ApplyStage,
    DocumentStage,
    StageOutputs,
    Verdict,
    apply_verdict,
    run_stage,
)
from ouroboros.transforms.dedup.exact import ExactDedup
from ouroboros.transforms.dedup.near import NearDedup
from ouroboros.transforms.dedup.representative import (
    doc_key,
    pick_representative,
    representative_key,
)
from ouroboros.transforms.io.extract import Extract, ExtractConfig
from ouroboros.transforms.io.normalize import Normalize, NormalizeConfig, exact_dedup_key
from ouroboros.transforms.quality.filters import Quality
from ouroboros.transforms.quality.langid import LangIdConfig, LanguageID
from ouroboros.transforms.sampling.quotas import SamplingConfig, StratifiedSample
from ouroboros.transforms.sampling.topics import AssignTopics, TopicConfig


class Frozen(dict):
    """A dict that raises on every change (and pickles as itself, for Beam's coders)."""

    def _refuse(self, *_args: Any, **_kwargs: Any) -> None:
        raise TypeError("a stage changed its input element")

    __setitem__ = __delitem__ = _refuse
    pop = popitem = clear = update = setdefault = _refuse

    def __reduce__(self):
        return (Frozen, (dict(self),))


def frozen(docs: list[dict]) -> list[Frozen]:
    return [Frozen(d) for d in docs]


def ids(pcoll, label: str):
    return pcoll | label >> beam.Map(lambda d: d["id"])


def reasons(pcoll, label: str):
    return pcoll | label >> beam.Map(lambda d: (d["id"], d["reject_stage"], d["reject_reason"]))


def error_kinds(pcoll, label: str):
    return pcoll | label >> beam.Map(lambda e: (e["source_record_id"], e["error_stage"],
                                                e["error_type"]))


def check(result: StageOutputs, kept: list, rejected: list, errors: list = ()) -> None:
    """assert_that on the three outputs: kept ids, (id, stage, reason), (id, stage, error type)."""
    assert isinstance(result, StageOutputs)
    assert_that(ids(result.kept, "KeptIds"), equal_to(kept), label="kept")
    assert_that(reasons(result.rejected, "Reasons"), equal_to(rejected), label="rejected")
    assert_that(error_kinds(result.errors, "Errors"), equal_to(list(errors)), label="errors")


PROSE = ("The river behind our house floods almost every spring, and we have learned to live with "
         "it. My grandfather kept a notebook of the water levels for many years, and my mother kept "
         "it going after him. Reading it now, you can see the years when the snow came late and the "
         "year the old mill dam finally gave way. Last April the water reached the third step of the "
         "porch. We moved the chickens up to the barn loft and waited for the neighbours to come by "
         "with sandbags and soup.")


# --- per-document stages -------------------------------------------------------------------------

def test_normalize_stage_outputs():
    docs = frozen([{"id": "ok", "text": "  Some   text.\n\n\n\nMore.  "},
                   {"id": "blank", "text": " \n\t "},
                   {"id": "long", "text": "x" * 200},
                   {"id": "bad", "source_record_id": "bad", "text": 12}])
    with TestPipeline() as p:
        result = p | beam.Create(docs) | ApplyStage(Normalize(NormalizeConfig(max_text_chars=100)))
        check(result, ["ok"], [("blank", "normalize", "empty_text:chars=0"),
                               ("long", "normalize", "max_text_chars:chars=200")],
              [("bad", "normalize", "TypeError")])
        assert_that(result.kept | beam.Map(lambda d: (d["text"], d["exact_hash"])),
                    equal_to([("Some text.\n\nMore.", exact_dedup_key("Some text.\n\nMore."))]),
                    label="normalized")


def test_extract_stage_outputs_and_uses_up_the_payload():
    page = b"<html><body><p>" + b"A real paragraph of text here. " * 20 + b"</p></body></html>"
    docs = frozen([
        {"id": "html", "_payload": page, "content_type": "text/html", "http_status": 200},
        {"id": "gone", "_payload": page, "content_type": "text/html", "http_status": 404},
        {"id": "pdf", "_payload": b"%PDF-1.4 x", "content_type": "application/pdf",
         "http_status": 200},
        {"id": "plain", "text": "Already text."}])
    with TestPipeline() as p:
        result = p | beam.Create(docs) | ApplyStage(Extract(ExtractConfig(max_seconds_per_page=0)))
        check(result, ["html", "plain"],
              [("gone", "extract", "http_status:status=404"),
               ("pdf", "extract", "unsupported_content_type:type=application/pdf")])
        assert_that(result.kept | beam.Map(lambda d: ("_payload" in d, "A real paragraph" in
                                                      d["text"] or d["text"] == "Already text.")),
                    equal_to([(False, True), (False, True)]), label="texts")
        assert_that(result.rejected | beam.Map(lambda d: "_payload" in d),
                    equal_to([False, False]), label="no payload")


def test_language_id_stage_outputs_one_model_call_per_batch():
    docs = frozen([{"id": "en", "text": PROSE},
                   {"id": "de", "text": "Der Wochenmarkt auf dem Kirchplatz findet ab Mai wieder "
                                        "jeden Samstag statt."},
                   {"id": "none", "text": "   "},
                   {"id": "bad", "source_record_id": "bad", "text": ["not", "a", "string"]}])
    with TestPipeline() as p:
        result = p | beam.Create(docs) | ApplyStage(LanguageID(LangIdConfig(languages=("en",))))
        check(result, ["en"], [("de", "language_id", "language_id:language=de"),
                               ("none", "language_id", "language_id:language=null")],
              [("bad", "language_id", "AttributeError")])


def test_quality_stage_outputs():
    docs = frozen([{"id": "prose", "text": PROSE, "language": "en"},
                   {"id": "short", "text": "too short", "language": "en"}])
    with TestPipeline() as p:
        result = p | beam.Create(docs) | ApplyStage(Quality())
        check(result, ["prose"], [("short", "quality", "gopher_quality:n_words=2")])
        assert_that(result.kept | beam.Map(lambda d: (d["quality_pass"], d["quality_reasons"])),
                    equal_to([(True, [])]), label="annotated")


@pytest.mark.slow
def test_quality_model_stage_outputs(tmp_path):
    from ouroboros.transforms.quality.model import QualityModel, QualityModelConfig, train_quality

    from tests.conftest import require_data

    train_quality(require_data("quality", "agreement_data.jsonl"), tmp_path / "q.bin", seed=1,
                  epoch=10)
    stage = QualityModel(QualityModelConfig(model_path=str(tmp_path / "q.bin"), threshold=0.5))
    docs = frozen([{"id": "prose", "text": PROSE}, {"id": "list", "text": "Home\nLogin\nCart"},
                   {"id": "empty", "text": ""}])
    scores = {d["id"]: v.columns["quality_model_score"] for d, v in zip(docs, stage.process_batch(docs))}
    assert scores["empty"] == 0.0
    low = sorted(i for i, s in scores.items() if s < 0.5)
    with TestPipeline() as p:
        result = p | beam.Create(docs) | ApplyStage(stage)
        check(result, sorted(set(scores) - set(low)),
              [(i, "quality_model", f"quality_model:quality_model_score={scores[i]:.3f}") for i in low])


def test_synthetic_stage_outputs():
    from ouroboros.transforms.synthetic.score import SyntheticConfig, SyntheticScore

    docs = frozen([{"id": "prose", "text": PROSE + " " + PROSE, "language": "en"},
                   {"id": "short", "text": "Thanks, see you tomorrow.", "language": "en"},
                   {"id": "french", "text": PROSE, "language": "fr"}])
    stage = SyntheticScore(SyntheticConfig(drop_classes=("unknown",)))
    with TestPipeline() as p:
        result = p | beam.Create(docs) | ApplyStage(stage)
        check(result, ["prose"],
              [("short", "synthetic", "synthetic:provenance_class=unknown"),
               ("french", "synthetic", "synthetic:provenance_class=unknown")])
        assert_that(result.kept | beam.Map(lambda d: 0.0 <= d["synthetic_score"] <= 1.0),
                    equal_to([True]), label="scored")


class _FailsOnOne(DocumentStage):
    """Raises for one document; its batch path raises if that document is in the batch."""

    name = "fragile"
    batch_size = 100

    def process_batch(self, docs):
        if any(d["id"] == "poison" for d in docs):
            raise ValueError("cannot judge this one")
        return [Verdict({"seen": True}, "odd" if int(d["id"]) % 2 else None) for d in docs]


def test_a_failing_batch_is_retried_document_by_document():
    docs = frozen([{"id": str(i), "source_record_id": f"line:{i}"} for i in range(6)]
                  + [{"id": "poison", "source_record_id": "line:6"}])
    with TestPipeline() as p:
        result = p | beam.Create(docs) | ApplyStage(_FailsOnOne())
        check(result, ["0", "2", "4"], [(i, "fragile", "odd") for i in ("1", "3", "5")],
              [("poison", "fragile", "ValueError")])


class _NotesItsBundles(DocumentStage):
    name = "notes"

    def __init__(self, log: str):
        self._log = log

    def process(self, doc):
        return Verdict({})

    def finish_bundle(self):
        with open(self._log, "a") as f:
            f.write("end\n")


def test_a_stage_hears_when_its_bundle_ends(tmp_path):
    """Where the stages let go of their per-bundle caches (``DocumentStage.finish_bundle``)."""
    log = tmp_path / "bundles.log"
    with TestPipeline() as p:
        result = p | beam.Create(frozen([{"id": "a"}, {"id": "b"}])) | ApplyStage(
            _NotesItsBundles(str(log)))
        check(result, ["a", "b"], [])
    assert log.read_text().count("end") >= 1


class _CountsItsBatch(DocumentStage):
    name = "counter"
    batch_size = 4

    def process_batch(self, docs):
        return [Verdict({"batch": len(docs)}) for _ in docs]


def test_batches_are_full_and_bounded_in_characters():
    small = [{"id": f"s{i}", "text": "x" * 10} for i in range(10)]
    large = [{"id": f"l{i}", "text": "x" * 400_000} for i in range(6)]  # 2 fit in ~1M characters
    with TestPipeline() as p:
        out = p | "Small" >> beam.Create(small) | "A" >> ApplyStage(_CountsItsBatch())
        assert_that(out.kept | "S" >> beam.Map(lambda d: d["batch"]), equal_to([4] * 8 + [2] * 2),
                    label="small")
        out = p | "Large" >> beam.Create(large) | "B" >> ApplyStage(_CountsItsBatch())
        assert_that(out.kept | "L" >> beam.Map(lambda d: d["batch"]), equal_to([2] * 6),
                    label="large")


def test_process_batch_default_maps_process_and_apply_verdict_builds_a_new_record():
    stage = Normalize(NormalizeConfig())
    docs = [Frozen({"id": "a", "text": " a  b "}), Frozen({"id": "b", "text": ""})]
    verdicts = stage.process_batch(docs)
    assert verdicts == [stage.process(d) for d in docs]
    out = apply_verdict(docs[1], verdicts[1], stage.name)
    assert out["reject_stage"] == "normalize" and out is not docs[1] and "reject_stage" not in docs[1]
    tagged = apply_verdict({**docs[1], "reject_stage": "earlier", "reject_reason": "r"},
                           verdicts[1], stage.name, drop=False)
    assert tagged["reject_stage"] == "earlier"  # tag mode keeps the first stage that would drop


def test_per_document_stages_never_change_their_input():
    """The pure functions of every per-document stage, on deep-frozen documents and on copies."""
    from ouroboros.transforms.synthetic.score import SyntheticScore

    page = b"<html><body><p>" + b"Text of a page. " * 30 + b"</p></body></html>"
    docs = [{"id": "1", "text": PROSE, "language": "en", "source_metadata": {"k": [1, 2]}},
            {"id": "2", "text": "", "_payload": page, "content_type": "text/html",
             "http_status": 200},
            {"id": "3", "text": "short one", "language": "de"}]
    stages = [Extract(ExtractConfig(max_seconds_per_page=0)), Normalize(NormalizeConfig()),
              LanguageID(), Quality(), SyntheticScore()]
    for stage in stages:
        before = copy.deepcopy(docs)
        verdicts = stage.process_batch(frozen(docs))
        assert len(verdicts) == len(docs)
        assert docs == before, stage.name
        for doc in docs:
            out, _ = run_stage(stage, Frozen(doc))
            assert doc == before[docs.index(doc)] and out is not doc


# --- exact dedup ---------------------------------------------------------------------------------

def _exact(i: str, text: str, date: str | None = None, score: float | None = None) -> dict:
    return {"id": i, "text": text, "exact_hash": exact_dedup_key(text), "crawl_date": date,
            "synthetic_score": score, "source_record_id": i}


def test_exact_dedup_keeps_one_per_hash_by_the_representative_rule():
    docs = frozen([
        _exact("late", "Same page.", "2021-01-01"), _exact("early", "same  PAGE.", "2019-05-01"),
        _exact("undated", "Same page.", None),
        _exact("b-human", "Twin text.", "2020-01-01", 0.1), _exact("a-machine", "twin text.",
                                                                   "2020-01-01", 0.9),
        _exact("z", "Tie."), _exact("y", "tie."),
        _exact("solo", "Only one."),
        {"id": "nohash", "text": "x", "source_record_id": "nohash"}])
    with TestPipeline() as p:
        result = p | beam.Create(docs) | ExactDedup()
        check(result, ["early", "b-human", "y", "solo"],
              [("late", "exact_dedup", "exact_duplicate_of:early"),
               ("undated", "exact_dedup", "exact_duplicate_of:early"),
               ("a-machine", "exact_dedup", "exact_duplicate_of:b-human"),
               ("z", "exact_dedup", "exact_duplicate_of:y")],
              [("nohash", "exact_dedup", "bad_document")])


def test_exact_dedup_tag_mode_keeps_every_copy_marked():
    docs = frozen([_exact("a", "Copy.", "2020"), _exact("b", "copy.", "2021"),
                   {**_exact("c", "COPY.", "2022"), "reject_stage": "quality",
                    "reject_reason": "gopher_quality:n_words=1"}])
    with TestPipeline() as p:
        result = p | beam.Create(docs) | ExactDedup(drop=False)
        assert_that(reasons(result.kept | beam.Map(lambda d: {"reject_stage": None,
                                                              "reject_reason": None, **d}), "R"),
                    equal_to([("a", None, None), ("b", "exact_dedup", "exact_duplicate_of:a"),
                              ("c", "quality", "gopher_quality:n_words=1")]), label="kept")
        assert_that(result.rejected, equal_to([]), label="rejected")


def test_one_representative_rule_for_both_dedup_stages():
    """Dated before undated (None or ''), then the lowest score (unscored last), then the smallest
    id; earlier runs' documents first. Exact and near dedup keep the same member of one cluster."""
    assert representative_key("z", "2020-01-01", None) < representative_key("a", "", 0.0)
    assert representative_key("z", "2020-01-01", None) < representative_key("a", None, 0.0)
    assert representative_key("b", "2020", 0.2) < representative_key("a", "2020", None)
    assert representative_key("b", "2020", 0.2) < representative_key("a", "2020", float("nan"))
    assert representative_key("b", None, None) < representative_key("c", None, None)
    assert representative_key("z", None, None, tier=0) < representative_key("a", "1990", 0.0)
    docs = [{"id": "undated", "crawl_date": "", "synthetic_score": 0.0},
            {"id": "dated", "crawl_date": "2020-01-01", "synthetic_score": None}]
    assert pick_representative(docs)["id"] == "dated"
    assert min(docs, key=doc_key)["id"] == "dated"

    words = " ".join(f"w{i}" for i in range(120))
    texts = {"undated": words, "dated": words + " end"}  # near copies of each other
    near_docs = frozen([{"id": i, "text": t, "crawl_date": d["crawl_date"],
                         "synthetic_score": d["synthetic_score"]}
                        for d in docs for i, t in [(d["id"], texts[d["id"]])]])
    exact_docs = frozen([{**d, "text": words, "exact_hash": "h"} for d in docs])
    with TestPipeline() as p:
        near = p | "Near" >> beam.Create(near_docs) | NearDedup()
        exact = p | "Exact" >> beam.Create(exact_docs) | ExactDedup()
        assert_that(ids(near.kept, "NearKept"), equal_to(["dated"]), label="near")
        assert_that(ids(exact.kept, "ExactKept"), equal_to(["dated"]), label="exact")


# --- sampling and topics -------------------------------------------------------------------------

def test_stratified_sample_outputs():
    docs = frozen([{"id": f"en{i}", "text": "x", "language": "en"} for i in range(40)]
                  + [{"id": "sw0", "text": "y", "language": "sw"}])
    cfg = SamplingConfig(enabled=True, budget=11, floor=1, policy="floor_and_cap", seed=3)
    with TestPipeline() as p:
        sample = StratifiedSample(cfg)
        result = p | beam.Create(docs) | sample
        kept = result.kept | "Strata" >> beam.Map(lambda d: d["stratum"])
        assert_that(kept | "Count" >> beam.combiners.Count.PerElement(),
                    equal_to([("language=en", 10), ("language=sw", 1)]), label="kept")
        assert_that(result.rejected | beam.Map(lambda d: (d["reject_stage"], d["stratum"])),
                    equal_to([("sample", "language=en")] * 30), label="rejected")
        assert_that(result.errors, equal_to([]), label="errors")
        assert_that(sample.plan | beam.Map(lambda plan: plan.summary()["strata"]),
                    equal_to([2]), label="plan")


def test_assign_topics_outputs():
    docs = frozen([{"id": f"c{i}", "text": "cats purr and meow on soft cushions"} for i in range(5)]
                  + [{"id": f"r{i}", "text": "rockets launch into orbit with fuel"} for i in range(5)]
                  + [{"id": "empty", "text": ""}])
    with TestPipeline() as p:
        result = p | beam.Create(docs) | AssignTopics(TopicConfig(enabled=True, n_topics=2))
        assert_that(result.kept | beam.Map(lambda d: (d["id"][0], d["topic"] is None)),
                    equal_to([("c", False)] * 5 + [("r", False)] * 5 + [("e", True)]),
                    label="kept")
        assert_that(result.rejected, equal_to([]), label="rejected")
        assert_that(result.errors, equal_to([]), label="errors")


def test_the_graph_runs_the_configured_stages_in_order(tmp_path):
    from ouroboros.pipeline.config import load_config
    from ouroboros.pipeline.graph import stages

    model = tmp_path / "q.bin"
    model.write_bytes(b"")  # only its path is needed to build the stage list
    assert [s.label for s in stages(load_config(None))] == [
        "extract", "normalize", "language_id", "quality", "exact_dedup", "synthetic", "near_dedup"]
    everything = load_config(None, [f"quality_model.model_path={model}", "topics.enabled=true",
                                    "sampling.enabled=true"])
    assert [s.label for s in stages(everything)] == [
        "extract", "normalize", "language_id", "quality", "quality_model", "exact_dedup",
        "synthetic", "near_dedup", "topics", "sample"]
    off = load_config(None, ["langid.enabled=false", "quality.enabled=false",
                             "exact_dedup.enabled=false", "synthetic.enabled=false",
                             "near_dedup.enabled=false"])
    assert [s.label for s in stages(off)] == ["extract", "normalize"]

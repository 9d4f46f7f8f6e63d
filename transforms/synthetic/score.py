"""Synthetic-content scoring: the probability that a document is machine-written, and its class.

Curation that keeps model output out of the next model's training data needs a score on every
document (stored, like every other signal, so the mixer can re-decide later) and a coarse class:

- ``synthetic_score``: calibrated P(machine-written) from the configured scorer, or null when the
  text cannot be judged;
- ``provenance_class``: ``human`` below ``ai_assisted_threshold``, ``ai_assisted`` in the band up to
  ``synthetic_threshold``, ``synthetic`` above, and ``unknown`` for texts too short or not in a
  language the scorer was trained on (a confident guess there would be noise, not evidence);
- ``synthetic_model``: scorer name and version, so scores from different models are never mixed up.

Scorers follow ``SyntheticScorer``; the default one (``DefaultSyntheticScorer``) combines a fastText
n-gram classifier (its log-odds clipped, so it cannot overrule everything on text unlike its
training data) with the signals ``combiner.json`` names from ``synthetic_features`` (by default the
repetition and compressibility ones) through a logistic combiner with isotonic calibration
(``synthetic_train``). ``HFClassifierScorer`` plugs in any local
Hugging Face sequence classifier. Scorers load once per worker process through Beam's ``Shared``.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from apache_beam.metrics import Metrics
from apache_beam.utils.shared import Shared
from ouroboros.transforms.base import METRICS_NAMESPACE, StrictModel
from ouroboros.transforms.model_files import fetch_dir
from ouroboros.transforms.synthetic.features import (
    ENGLISH_FUNCTION_WORDS,
    REPETITION_SIGNALS,
    function_word_rate,
    masked_line,
    normalize,
    words,
    zipf_table,
)
from ouroboros.transforms.synthetic.train import (
    MODEL_FILES,
    PHRASE_BOOK_FILES,
    VIEWS,
    signal_matrix,
)
from pydantic import Field, model_validator

DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[1] / "models" / "synthetic"
PROVENANCE_CLASSES = ("human", "ai_assisted", "synthetic", "unknown")


class SyntheticConfig(StrictModel):
    """Which scorer runs and how its score becomes a provenance class."""

    enabled: bool = Field(True, description="score every document for machine-written content")
    scorer: Literal["default", "hf_classifier"] = Field(
        "default", description="`default`: the shipped fastText + compression + stylometry model; "
        "`hf_classifier`: a local Hugging Face sequence classifier at `model_path`")
    model_path: str | None = Field(
        None, description="model directory (a path, file://, gs://, s3://): a `train-synthetic` "
        "output for `default` (null = the model shipped in the package), or a Hugging Face model "
        "for `hf_classifier`")
    hf_machine_label: str | None = Field(
        None, description="label of the machine class in the HF model's id2label (null: guessed from "
        "names such as `fake`, `machine`, `ai`, `generated`, else label id 1)")
    hf_device: str = Field("cpu", description="torch device for `hf_classifier` (e.g. `cuda:0`)")
    ai_assisted_threshold: float = Field(
        0.5, ge=0, le=1, description="score from which a text is `ai_assisted` (the calibrated even-odds "
        "point: from here machine authorship is at least as likely as not)")
    synthetic_threshold: float = Field(
        0.9, ge=0, le=1, description="score from which a text is `synthetic` (9:1 odds of machine "
        "authorship on the held-out calibration folds)")
    min_words: int = Field(
        50, ge=1, description="texts with fewer words are `unknown`: detectors are unreliable on short "
        "texts (OpenAI's 2023 classifier refused under 1,000 characters, about 150 words)")
    languages: tuple[str, ...] = Field(
        ("en",), description="languages the scorer was trained on; other texts are `unknown`")
    min_function_word_rate: float = Field(
        0.2, ge=0, le=1, description="when no language ID ran: texts whose share of English function "
        "words is below this are treated as not English (English prose is about 0.35-0.5)")
    drop_classes: tuple[Literal["human", "ai_assisted", "synthetic", "unknown"], ...] = Field(
        (), description="provenance classes to reject (default: none; the score is only recorded)")

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> SyntheticConfig:
        if self.ai_assisted_threshold > self.synthetic_threshold:
            raise ValueError("ai_assisted_threshold must not exceed synthetic_threshold")
        return self


class SyntheticScorer(Protocol):
    """A detector: ``score`` returns P(machine-written) in [0, 1] for each text."""

    name: str
    version: str

    def load(self) -> None: ...

    def score(self, texts: Sequence[str]) -> list[float]: ...


class DefaultSyntheticScorer:
    """fastText n-grams + compression + stylometry, combined and calibrated out of fold."""

    name = "ouroboros-synthetic"

    def __init__(self, model_dir: str | Path | None = None):
        self.model_dir = Path(model_dir) if model_dir else DEFAULT_MODEL_DIR
        self.version = "unloaded"
        self._ft = None

    def load(self) -> None:
        import fasttext

        digest = hashlib.sha256()
        # Phrase books (present only when the combiner uses them) hash in their original place.
        for name in ("classifier.ftz", *PHRASE_BOOK_FILES, *MODEL_FILES[1:]):
            if name in MODEL_FILES or (self.model_dir / name).exists():
                digest.update((self.model_dir / name).read_bytes())
        self.version = "1." + digest.hexdigest()[:12]
        self._ft = fasttext.load_model(str(self.model_dir / "classifier.ftz"))
        comb = json.loads((self.model_dir / "combiner.json").read_text(encoding="utf-8"))
        self._signals = tuple(comb["signals"])
        self._clip = comb.get("fasttext_logit_clip")  # absent in models trained before clipping
        self._view = VIEWS[comb.get("fasttext_view", "words")]
        books = [self.model_dir / name for name in PHRASE_BOOK_FILES]
        self._machine, self._human = (p.read_bytes() if p.exists() else None for p in books)
        if self._view is masked_line or not set(self._signals) <= {"fasttext_logit", *REPETITION_SIGNALS}:
            zipf_table()  # the word-frequency table, loaded now rather than on the first document
        self._mean = np.asarray(comb["mean"])
        self._std = np.asarray(comb["std"])
        self._w = np.asarray(comb["weights"])
        self._bias = comb["bias"]
        self._iso = (np.asarray(comb["isotonic_logit"]), np.asarray(comb["isotonic_prob"]))

    def score(self, texts: Sequence[str]) -> list[float]:
        if self._ft is None:
            self.load()
        norm = [normalize(t) for t in texts]
        signals = signal_matrix(self._ft, norm, [self._view(t) for t in norm],
                                self._machine, self._human, self._signals, self._clip)
        # Row-wise sums (not a matrix product) so a score never depends on its batch.
        logit = (((signals - self._mean) / self._std) * self._w).sum(axis=1) + self._bias
        return np.interp(logit, *self._iso).tolist()


class HFClassifierScorer:
    """Any local Hugging Face sequence classifier (e.g. a RoBERTa detector), on CPU or GPU."""

    name = "hf_classifier"

    def __init__(self, model_path: str, machine_label: str | None = None, device: str = "cpu",
                 batch_size: int = 16, max_length: int = 512):
        self.model_path = model_path
        self.machine_label = machine_label
        self.device = device
        self.batch_size = batch_size
        self.max_length = max_length
        self.version = "unloaded"
        self._model = None

    def load(self) -> None:
        import torch  # noqa: F401  (optional dependency: only this scorer needs it)
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self._tok = AutoTokenizer.from_pretrained(self.model_path, local_files_only=True)
        self._model = AutoModelForSequenceClassification.from_pretrained(
            self.model_path, local_files_only=True).to(self.device).eval()
        self._index = machine_label_index(self._model.config.id2label, self.machine_label)
        self.version = f"{Path(self.model_path).name}:{getattr(self._model.config, '_commit_hash', None) or 'local'}"

    def score(self, texts: Sequence[str]) -> list[float]:
        import torch

        if self._model is None:
            self.load()
        out: list[float] = []
        for i in range(0, len(texts), self.batch_size):
            batch = self._tok(list(texts[i:i + self.batch_size]), truncation=True, padding=True,
                              max_length=self.max_length, return_tensors="pt").to(self.device)
            with torch.no_grad():
                probs = torch.softmax(self._model(**batch).logits.float(), dim=-1)
            out.extend(probs[:, self._index].cpu().tolist())
        return out


def machine_label_index(id2label: dict[Any, str], wanted: str | None) -> int:
    """Index of the machine-written class in a classifier's label map."""
    labels = {int(k): str(v) for k, v in id2label.items()}
    if wanted is not None:
        for k, v in labels.items():
            if v.lower() == wanted.lower():
                return k
        raise ValueError(f"label {wanted!r} not in the model's labels {sorted(labels.values())}")
    for k, v in labels.items():
        if any(h in v.lower() for h in ("fake", "machine", "generated", "synthetic", "gpt")) or \
                v.lower() in ("ai", "llm", "label_1"):
            return k
    return 1


def make_scorer(config: SyntheticConfig) -> SyntheticScorer:
    # A model on gs:// or s3:// is copied to a local directory once per process (model_files).
    model_dir = fetch_dir(config.model_path) if config.model_path else None
    if config.scorer == "hf_classifier":
        if not model_dir:
            raise ValueError("synthetic.scorer=hf_classifier needs synthetic.model_path")
        return HFClassifierScorer(model_dir, config.hf_machine_label, config.hf_device)
    return DefaultSyntheticScorer(model_dir)


class _Handle:
    """Weak-referenceable holder of one loaded scorer (what ``Shared`` caches per process)."""

    def __init__(self, scorer: SyntheticScorer):
        scorer.load()
        self.scorer = scorer


_SHARED = Shared()
_LOCK = threading.Lock()


def judgeable(text: str, language: str | None, config: SyntheticConfig) -> str | None:
    """Why a text cannot be judged (`too_short`, `language=xx`, `not_english`), or None."""
    ws = words(normalize(text))
    if len(ws) < config.min_words:
        return f"too_short:words={len(ws)}"
    if language:
        if language not in config.languages:
            return f"language={language}"
    elif "en" in config.languages and function_word_rate(ws) < config.min_function_word_rate:
        return f"not_english:function_word_rate={function_word_rate(ws):.2f}"
    return None


def provenance_class(score: float | None, config: SyntheticConfig) -> str:
    if score is None:
        return "unknown"
    if score >= config.synthetic_threshold:
        return "synthetic"
    if score >= config.ai_assisted_threshold:
        return "ai_assisted"
    return "human"


class SyntheticScore:
    """Stage: fills ``synthetic_score``, ``provenance_class``, ``synthetic_model``.

    Never rejects unless ``drop_classes`` names the document's class.
    """

    name = "synthetic"

    def __init__(self, config: SyntheticConfig | None = None):
        self.config = config or SyntheticConfig()
        self._scorer: SyntheticScorer | None = None
        self._counters: dict[str, Any] = {}

    def __getstate__(self) -> dict[str, Any]:  # the loaded model never travels with the stage
        return {"config": self.config, "_scorer": None, "_counters": {}}

    def setup(self) -> None:
        if self._scorer is None:
            cfg = self.config
            key = f"{cfg.scorer}:{cfg.model_path}:{cfg.hf_machine_label}:{cfg.hf_device}"
            with _LOCK:
                handle = _SHARED.acquire(lambda: _Handle(make_scorer(cfg)), tag=key)
            self._handle = handle  # keep the shared handle alive while this stage lives
            self._scorer = handle.scorer

    @property
    def model_name(self) -> str:
        self.setup()
        return f"{self._scorer.name}@{self._scorer.version}"

    def annotate(self, docs: Sequence[dict[str, Any]]) -> None:
        """Scores a batch of documents in one scorer call (faster than one by one)."""
        self.setup()
        model = self.model_name
        todo = []
        for doc in docs:
            doc["synthetic_model"] = model
            doc["synthetic_score"] = None
            doc["provenance_class"] = "unknown"
            if judgeable(doc.get("text") or "", doc.get("language"), self.config) is None:
                todo.append(doc)
        if todo:
            for doc, score in zip(todo, self._scorer.score([d["text"] for d in todo])):
                doc["synthetic_score"] = float(min(max(score, 0.0), 1.0))
                doc["provenance_class"] = provenance_class(doc["synthetic_score"], self.config)

    def process(self, doc: dict[str, Any]) -> str | None:
        self.annotate([doc])
        cls = doc["provenance_class"]
        counter = self._counters.get(cls)
        if counter is None:  # one Beam counter per class: the run's provenance mix in the runner UI
            counter = self._counters[cls] = Metrics.counter(METRICS_NAMESPACE, f"{self.name}.class.{cls}")
        counter.inc()
        if cls in self.config.drop_classes:
            score = doc["synthetic_score"]
            return f"synthetic:provenance_class={cls}" + (f",score={score:.3f}" if score is not None else "")
        return None


__all__ = ["ENGLISH_FUNCTION_WORDS", "PROVENANCE_CLASSES", "DefaultSyntheticScorer",
           "HFClassifierScorer", "SyntheticConfig", "SyntheticScore", "SyntheticScorer",
           "judgeable", "make_scorer", "provenance_class"]

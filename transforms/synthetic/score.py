"""Synthetic-content scoring: the probability that a document is machine-written, and its class.

Curation that keeps model output out of the next model's training data needs a score on every
document (stored, like every other signal, so the mixer can re-decide later) and a coarse class:

- ``synthetic_score``: calibrated P(machine-written) from the configured scorer, or null when the
  text cannot be judged;
- ``provenance_class``: ``human`` below ``ai_assisted_threshold``, ``ai_assisted`` in the band up to
  ``synthetic_threshold``, ``synthetic`` above, and ``unknown`` for texts too short or not in a
  language the scorer was trained on (a confident guess there would be noise, not evidence);
- ``synthetic_model``: scorer name and version, so scores from different models are never mixed up.

Scorers follow ``SyntheticScorer``; the default one (``DefaultSyntheticScorer``) is a linear model
over hashed word 1-2-grams and character 3-5-grams of a formatting-blind view of the text and word
1-3-grams of its topic-masked view (``synthetic/ngrams.py``), trained on current chat-model and
human text with human web pages as negatives, Platt-calibrated on out-of-source predictions and
shifted to the base rate the user assumes (``synthetic.prior``; ``synthetic/calibrate.py``). Its
class thresholds are operating points set on held-out human web text at training
(``train.operating_points``). ``HFClassifierScorer`` plugs in any local Hugging Face sequence
classifier. Scorers load once per worker process through Beam's ``Shared`` and score a batch of
texts per call.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from apache_beam.metrics import Metrics
from apache_beam.utils.shared import Shared
from ouroboros.transforms.base import METRICS_NAMESPACE, DocumentStage, Verdict
from ouroboros.transforms.model_files import fetch_dir
from ouroboros.transforms.synthetic.calibrate import calibrated
from ouroboros.transforms.synthetic.config import (
    PROVENANCE_CLASSES,
    SyntheticConfig,
    judgeable,
    provenance_class,
)
from ouroboros.transforms.synthetic.features import ENGLISH_FUNCTION_WORDS
from ouroboros.transforms.synthetic.ngrams import Vocabulary, linear_scores

DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[1] / "models" / "synthetic"
MODEL_FILES = ("weights.npy", "model.json", "vocab.txt")
MODEL_FORMAT = "hashed-ngram-linear/3"


class SyntheticScorer(Protocol):
    """A detector: ``score`` returns P(machine-written) in [0, 1] for each text."""

    name: str
    version: str

    def load(self) -> None: ...

    def score(self, texts: Sequence[str]) -> list[float]: ...


class DefaultSyntheticScorer:
    """A linear model over hashed word and character n-grams and topic-masked word n-grams,
    calibrated out of source and shifted to the assumed base rate ``prior`` (``synthetic.prior``)."""

    name = "ouroboros-synthetic"

    def __init__(self, model_dir: str | Path | None = None, prior: float | None = None):
        self.model_dir = Path(model_dir) if model_dir else DEFAULT_MODEL_DIR
        self.prior = SyntheticConfig().prior if prior is None else float(prior)
        if not 0.0 < self.prior < 1.0:
            raise ValueError(f"prior must be strictly between 0 and 1, not {self.prior}")
        self.version = "unloaded"
        self._weights: np.ndarray | None = None

    def load(self) -> None:
        paths = [self.model_dir / name for name in MODEL_FILES]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"synthetic model files missing: {', '.join(missing)}")
        meta = json.loads(paths[1].read_text(encoding="utf-8"))
        if meta.get("format") != MODEL_FORMAT:
            raise ValueError(f"{paths[1]}: format {meta.get('format')!r}, expected {MODEL_FORMAT!r} "
                             "(retrain with `ouroboros train-synthetic`)")
        weights = np.load(paths[0], allow_pickle=False)
        self._bits = int(meta["bits"])
        if weights.ndim != 1 or len(weights) != 2 << self._bits:
            raise ValueError(f"{paths[0]}: {weights.shape} weights for {self._bits} hash bits and "
                             "two views")
        self._vocab = Vocabulary(paths[2].read_text(encoding="utf-8").splitlines(),
                                 int(meta["masked_view"]["keep"]))
        digest = hashlib.sha256()
        for p in paths:
            digest.update(p.read_bytes())
        # The prior is part of the version: scores made under different priors must not mix.
        self.version = f"3.{digest.hexdigest()[:12]}+prior={self.prior:g}"
        self._bias = float(meta["bias"])
        self._platt = (float(meta["calibration"]["a"]), float(meta["calibration"]["b"]))
        self._weights = weights.astype(np.float64)

    def raw(self, texts: Sequence[str]) -> np.ndarray:
        """The linear model's uncalibrated log-odds (what calibration maps)."""
        if self._weights is None:
            self.load()
        return linear_scores(list(texts), self._weights, self._bias, self._bits, self._vocab)

    def score(self, texts: Sequence[str]) -> list[float]:
        """Calibrated P(machine) at the assumed prior, for a whole batch in one vectorised pass."""
        return calibrated(self.raw(texts), *self._platt, self.prior).tolist()


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
    return DefaultSyntheticScorer(model_dir, config.prior)


class _Handle:
    """Weak-referenceable holder of one loaded scorer (what ``Shared`` caches per process)."""

    def __init__(self, scorer: SyntheticScorer):
        scorer.load()
        self.scorer = scorer


_SHARED = Shared()
_LOCK = threading.Lock()


class SyntheticScore(DocumentStage):
    """Stage: fills ``synthetic_score``, ``provenance_class``, ``synthetic_model``; a batch of
    documents is one ``score(texts)`` call of the scorer.

    Never rejects unless ``drop_classes`` names the document's class.
    """

    name = "synthetic"
    batch_size = 64

    def __init__(self, config: SyntheticConfig | None = None):
        self.config = config or SyntheticConfig()
        self._scorer: SyntheticScorer | None = None
        self._counters: dict[str, Any] = {}

    def __getstate__(self) -> dict[str, Any]:  # the loaded model never travels with the stage
        return {"config": self.config, "_scorer": None, "_counters": {}}

    def setup(self) -> None:
        if self._scorer is None:
            cfg = self.config
            key = f"{cfg.scorer}:{cfg.model_path}:{cfg.prior}:{cfg.hf_machine_label}:{cfg.hf_device}"
            with _LOCK:
                handle = _SHARED.acquire(lambda: _Handle(make_scorer(cfg)), tag=key)
            self._handle = handle  # keep the shared handle alive while this stage lives
            self._scorer = handle.scorer

    @property
    def model_name(self) -> str:
        self.setup()
        return f"{self._scorer.name}@{self._scorer.version}"

    def scores(self, docs: Sequence[Mapping[str, Any]]) -> list[float | None]:
        """Each document's calibrated score, or None when it cannot be judged; the judgeable
        texts of the batch go to the scorer in one call."""
        self.setup()
        todo = [i for i, doc in enumerate(docs)
                if judgeable(doc.get("text") or "", doc.get("language"), self.config) is None]
        out: list[float | None] = [None] * len(docs)
        if todo:
            for i, score in zip(todo, self._scorer.score([docs[i]["text"] for i in todo])):
                out[i] = float(min(max(score, 0.0), 1.0))
        return out

    def process(self, doc: Mapping[str, Any]) -> Verdict:
        return self.process_batch([doc])[0]

    def process_batch(self, docs: Sequence[Mapping[str, Any]]) -> list[Verdict]:
        model = self.model_name
        return [self._verdict(score, model) for score in self.scores(docs)]

    def _verdict(self, score: float | None, model: str) -> Verdict:
        cls = provenance_class(score, self.config)
        counter = self._counters.get(cls)
        if counter is None:  # one Beam counter per class: the run's provenance mix in the runner UI
            counter = self._counters[cls] = Metrics.counter(METRICS_NAMESPACE, f"{self.name}.class.{cls}")
        counter.inc()
        reason = None
        if cls in self.config.drop_classes:
            reason = f"synthetic:provenance_class={cls}" + (
                f",score={score:.3f}" if score is not None else "")
        return Verdict({"synthetic_model": model, "synthetic_score": score,
                        "provenance_class": cls}, reason)


__all__ = ["ENGLISH_FUNCTION_WORDS", "PROVENANCE_CLASSES", "DefaultSyntheticScorer",
           "HFClassifierScorer", "SyntheticConfig", "SyntheticScore", "SyntheticScorer",
           "judgeable", "make_scorer", "provenance_class"]

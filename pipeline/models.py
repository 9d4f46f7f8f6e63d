"""Pre-flight check of the model paths in a configuration: each exists and loads, before any work.

A model path may be local, ``file://`` or on any Beam filesystem (``gs://``, ``s3://``); a wrong one
would otherwise fail on every worker after the run has started (an 85-line traceback per worker).
Each problem names the config key, e.g. ``quality_model.model_path: no such file: gs://b/m.ftz``;
``config.check_model_paths`` raises them as one ``ConfigError``.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from ouroboros.transforms.model_files import (
    ModelNotFound,
    fetch_dir,
    fetch_file,
    local_path,
    remote_files,
)

if TYPE_CHECKING:
    from ouroboros.pipeline.config import Config


def _load_fasttext(path: str) -> None:
    import fasttext

    try:
        fasttext.load_model(path)
    except ValueError as exc:  # fastText: "... has wrong file format!"
        raise ValueError(f"is not a fastText model ({exc})") from None


def _load_synthetic(path: str) -> None:
    from ouroboros.transforms.synthetic.score import MODEL_FILES, DefaultSyntheticScorer

    missing = [f for f in MODEL_FILES if not os.path.isfile(os.path.join(path, f))]
    if missing:
        raise ValueError("is not a `train-synthetic` model directory (no "
                         + ", ".join(missing) + ")")
    try:
        DefaultSyntheticScorer(path).load()
    except (ValueError, KeyError, TypeError, OSError) as exc:  # a damaged model: say what broke
        raise ValueError(f"does not load as a synthetic scorer: {type(exc).__name__}: {exc}") from None


def _hf_config(uri: str) -> str:
    """Only the model's config.json is fetched: a Hugging Face model may be gigabytes."""
    local = local_path(uri)
    if not (os.path.exists(local) if local is not None else remote_files(uri)):
        raise ModelNotFound(f"no such directory: {uri}")
    try:
        return fetch_file(uri.rstrip("/") + "/config.json")
    except ModelNotFound:
        raise ValueError("is not a Hugging Face model directory (no config.json)") from None


def _load_hf_config(path: str) -> None:
    try:
        with open(path, encoding="utf-8") as f:
            json.load(f)
    except ValueError as exc:
        raise ValueError(f"has an unreadable config.json ({exc})") from None


def _check(key: str, uri: str, fetch: Callable[[str], str], load: Callable[[str], None]) -> str | None:
    try:
        load(fetch(uri))
    except ModelNotFound as exc:
        return f"{key}: {exc}"
    except ValueError as exc:
        return f"{key}: {uri} {exc}"
    return None


def model_path_problems(config: Config) -> list[str]:
    """One line per model path that does not exist or does not load (empty: all good).

    Remote models are copied once into this process's model cache, so a DirectRunner run in the
    same process loads them from there; other workers copy them at their own start. Of a Hugging
    Face model only config.json is read here."""
    problems = []
    if config.quality_model.model_path:
        problems.append(_check("quality_model.model_path", config.quality_model.model_path,
                               fetch_file, _load_fasttext))
    synthetic = config.synthetic
    if synthetic.enabled and synthetic.scorer == "hf_classifier":
        if not synthetic.model_path:
            problems.append("synthetic.model_path: needed when synthetic.scorer is hf_classifier")
        missing = [m for m in ("transformers", "torch") if importlib.util.find_spec(m) is None]
        if missing:
            problems.append(f"synthetic.scorer: hf_classifier needs {' and '.join(missing)} "
                            "(pip install 'ouroboros-curate[hf]')")
    if synthetic.enabled and synthetic.model_path:
        if synthetic.scorer == "hf_classifier":
            fetch, load = _hf_config, _load_hf_config
        else:
            fetch, load = fetch_dir, _load_synthetic
        problems.append(_check("synthetic.model_path", synthetic.model_path, fetch, load))
    return [p for p in problems if p]

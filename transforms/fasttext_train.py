"""fastText supervised training, isolated in a fresh interpreter.

The fasttext-numpy2-wheel binding raised "Encountered NaN" intermittently when training inside a
long-lived process (after another model was trained or loaded), and never in a fresh one on
shuffled data (see PITFALLS). So every training runs in its own interpreter, with the rows shuffled
by the caller, single-threaded and seeded (deterministic), retried unchanged if it still fails.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

_SCRIPT = """
import json, sys
import fasttext
model = fasttext.train_supervised(input=sys.argv[1], **json.loads(sys.argv[3]))
quantize = json.loads(sys.argv[4])
if quantize is not None:
    model.quantize(input=sys.argv[1], **quantize)
model.save_model(sys.argv[2])
"""


def train_supervised(input_path: str, output_path: str, params: dict[str, Any],
                     retries: int = 3, quantize: dict[str, Any] | None = None) -> list[str]:
    """Trains `input_path` (fastText `__label__X text` lines) into `output_path`.

    `quantize`: arguments of fastText's `quantize` (e.g. `cutoff`, `retrain`, `qnorm`) to compress
    the model (a `.ftz`) in the same interpreter; retraining runs seeded on one thread like training.
    Returns the error lines of failed attempts (empty when the first attempt succeeded)."""
    params = {"thread": 1, "verbose": 0, **params}
    if quantize is not None:
        quantize = {"thread": params["thread"], "verbose": params["verbose"], **quantize}
    failures: list[str] = []
    for attempt in range(retries):
        proc = subprocess.run([sys.executable, "-c", _SCRIPT, input_path, output_path,
                               json.dumps(params), json.dumps(quantize)],
                              capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            return failures
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        failures.append(f"attempt {attempt + 1}: {last}")
    raise RuntimeError("fastText training failed every time: " + "; ".join(failures))

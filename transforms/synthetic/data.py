"""Labelled training data for the synthetic scorer, read in place from ``shared/data``.

Every record is ``{text, label (0 human / 1 machine), source, generator, family, domain, group}``:

- ``source`` names the corpus a text comes from (the unit of leave-one-source-out folds);
- ``family`` is the developer of the generating model (OpenAI, Anthropic, Google, Meta, Mistral,
  other), the unit of leave-one-generator-family-out folds; ``human`` for human text;
- ``group`` keeps texts that must never straddle train and test together: an ``l2r`` rewrite and
  the human text it rewrites (grouped by domain: the pairing is not stored), a web page extracted
  twice (once per extractor), a DetectGPT continuation and its human prefix.

Human web text comes from every human web source in ``shared/data`` **except**
``web/CC-MAIN-2019*.jsonl.gz``: that file is the yardstick of false positives on human web text,
and a loader that reads it raises (:func:`_refuse_yardstick`). Only texts the scorer would judge
are kept (``judgeable``: English, at least ``min_words`` words), so training never sees text the
scorer refuses at run time.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ouroboros.transforms.synthetic.config import SyntheticConfig, judgeable
from ouroboros.transforms.synthetic.features import normalize

MODERN_SOURCES = ("l2r", "biscope", "mgtbench", "alpaca_eval", "dnagpt", "web_human",
                  "web_human_more")
# The human web sources besides synthetic-modern (source name, path pattern under shared/data).
WEB_SOURCES: tuple[tuple[str, str], ...] = (
    ("warc", "web/*.warc.gz"),
    ("dclm-quality", "quality/*.jsonl"),
    ("news-articles", "extraction/ground-truth.json"),
)
YARDSTICK = re.compile(r"CC-MAIN-2019[^/]*\.jsonl(\.gz)?$")
FAMILIES = ("OpenAI", "Anthropic", "Google", "Meta", "Mistral", "other")
LABELS = {"human": 0, "machine": 1, "synthetic": 1, "ai": 1, "llm": 1, "0": 0, "1": 1}


def family(generator: str) -> str:
    """The developer of a generator; fine-tunes by third parties (Vicuna, Zephyr, ...) are `other`."""
    g = generator.lower()
    if g == "human":
        return "human"
    for fam, keys in (("OpenAI", ("gpt", "davinci", "chatgpt", "openai")),
                      ("Anthropic", ("claude",)),
                      ("Google", ("gemini", "gemma", "palm", "bard")),
                      ("Mistral", ("mistral-7b-instruct", "mixtral", "mistral-large")),
                      ("Meta", ("llama-2", "llama-3", "meta-llama", "opt-"))):
        if any(k in g for k in keys) and not g.startswith(("openhermes", "gpt-j", "gpt-neo")):
            return fam
    return "other"


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def fold_key(text: str) -> str:
    """Case- and whitespace-folded text: the key exact copies across sources share."""
    return digest(" ".join(text.lower().split()))


def _refuse_yardstick(path: str | Path) -> None:
    if YARDSTICK.search(str(path)):
        raise ValueError(f"{path} is the false-positive yardstick of the synthetic scorer: "
                         "never train or calibrate on it")


def _jsonl(path: Path) -> Iterable[dict[str, Any]]:
    _refuse_yardstick(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def _record(text: str, label: int, source: str, generator: str, domain: str, group: str) -> dict:
    return {"text": text, "label": label, "source": source, "generator": generator,
            "family": family(generator) if label else "human", "domain": domain, "group": group}


def load_modern(root: str | Path, sources: Iterable[str] = MODERN_SOURCES) -> list[dict[str, Any]]:
    """``synthetic-modern/*.jsonl.gz`` (``root`` is ``shared/data``)."""
    records = []
    for source in sources:
        for row in _jsonl(Path(root) / "synthetic-modern" / f"{source}.jsonl.gz"):
            label = LABELS[row["label"]]
            if source == "web_human_more" and row.get("lang_guess") not in (None, "en"):
                continue
            if source == "l2r":  # rewrites pair with their human text inside one domain
                group = f"l2r:{row['domain']}"
            elif source == "biscope":  # generations prompted from the human texts of a domain
                group = f"biscope:{row['domain']}"
            elif source == "web_human_more":  # one page, extracted twice
                group = f"page:{row['source']}"
            else:
                group = f"{source}:{digest(row['text'])}"
            records.append(_record(row["text"], label, source, row["generator"], row["domain"], group))
    return records


def load_old_synthetic(root: str | Path) -> list[dict[str, Any]]:
    """``synthetic/``: DetectGPT continuations by base models (GPT-2 ... NeoX), ZipPy's samples
    (``zippy``: human vs LLM texts; ``gpt3-samples``: GPT-3 base-model samples, machine only).
    Never trained on by default: the benchmark's external held-out sets."""
    root = Path(root) / "synthetic"
    records = []
    for path in sorted((root / "detectgpt-open-models").glob("*.raw_data.json")):
        domain, generator = path.name[: -len(".raw_data.json")].split("_", 1)
        data = json.loads(path.read_text(encoding="utf-8"))
        for human, machine in zip(data["original"], data["sampled"]):
            group = f"detectgpt:{digest(normalize(human))}"
            records.append(_record(human, 0, "detectgpt", "human", domain, group))
            records.append(_record(machine, 1, "detectgpt", generator, domain, group))
    for sub, label, generator in (("human-generated", 0, "human"), ("llm-generated", 1, "unknown-llm")):
        for path in sorted((root / "zippy" / sub).glob("*.txt")):
            text = path.read_text(encoding="utf-8", errors="replace")
            # `<arXiv id>_generated.txt`: a paper's abstract and introduction as extracted from its
            # PDF (line-break hyphens, citations) with generated passages; the other files are
            # whole chat-model answers (essays, abstracts, news, a song, ...).
            domain = "arxiv-paper" if path.name.endswith("_generated.txt") else "misc"
            records.append(_record(text, label, "zippy", generator, domain, f"zippy:{digest(text)}"))
    gpt3 = root / "zippy" / "GPT-3-175b_samples.jsonl"
    if gpt3.exists():  # unconditional samples of the GPT-3 175B base model (2020)
        for row in _jsonl(gpt3):
            records.append(_record(str(row), 1, "gpt3-samples", "gpt-3-175b-base", "unconditional",
                                   f"gpt3:{digest(str(row))}"))
    return records


def warc_pages(paths: Iterable[str]) -> list[tuple[str, str, str]]:
    """(url, extractor, text) of every HTML page of the WARC shards, through the project's own
    reader and extractor, once with each engine (like ``web_human_more``)."""
    from ouroboros.transforms.base import run_stage
    from ouroboros.transforms.io.extract import Extract, ExtractConfig
    from ouroboros.transforms.io.read import ReadConfig, read_shard

    docs = []
    for path in paths:
        _refuse_yardstick(path)
        docs += [item for kind, item in read_shard(path, "warc", ReadConfig()) if kind == "doc"]
    out = []
    for engine in ("trafilatura", "resiliparse"):
        stage = Extract(ExtractConfig(engine=engine, max_seconds_per_page=0))
        for doc in docs:
            doc, reason = run_stage(stage, doc)
            if reason is None and doc.get("text"):
                out.append((doc.get("url") or doc["id"], engine, doc["text"]))
    return out


def load_web(root: str | Path) -> list[dict[str, Any]]:
    """Human web text outside synthetic-modern: WARC pages, DCLM's labelled pages, news bodies."""
    root = Path(root)
    records = []
    for source, pattern in WEB_SOURCES:
        for path in sorted(glob.glob(str(root / pattern))):
            _refuse_yardstick(path)
            if source == "warc":
                for url, _engine, text in warc_pages([path]):
                    records.append(_record(text, 0, source, "human", "web-page", f"page:{url}"))
            elif path.endswith(".json"):  # the extraction benchmark's {"<page>": {"articleBody"}}
                for page, v in json.loads(Path(path).read_text(encoding="utf-8")).items():
                    records.append(_record(v.get("articleBody") or "", 0, source, "human", "news",
                                           f"news:{page}"))
            else:
                for row in _jsonl(Path(path)):
                    text = str(row.get("text") or "")
                    records.append(_record(text, 0, source, "human", "web-page",
                                           f"{source}:{digest(text)}"))
    return records


def keep_judgeable(records: list[dict[str, Any]], config: SyntheticConfig | None = None
                   ) -> list[dict[str, Any]]:
    """Texts the scorer judges (English, long enough), each exact copy (folded) only once: the
    first occurrence wins, so ``synthetic-modern`` keeps the copies it shares with ``quality/``."""
    config = config or SyntheticConfig()
    seen: set[str] = set()
    out = []
    for r in records:
        key = fold_key(r["text"])
        if key in seen or judgeable(r["text"], None, config) is not None:
            continue
        seen.add(key)
        out.append(r)
    return out


def load_training_data(root: str | Path, old: bool = False) -> list[dict[str, Any]]:
    """Everything the default model is trained from (``root`` is ``shared/data``):
    ``synthetic-modern`` and the other human web sources, plus ``synthetic/`` when ``old``."""
    records = load_modern(root) + load_web(root)
    if old:
        records += load_old_synthetic(root)
    return keep_judgeable(records)


def read_labelled_jsonl(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Records with ``text`` and ``label`` (0/1, or human/machine); ``group`` defaults to the text,
    ``source`` to the file name."""
    records = []
    for path in paths:
        _refuse_yardstick(path)
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh):
                if not line.strip():
                    continue
                row = json.loads(line)
                label = LABELS.get(str(row["label"]).strip().lower())
                if label is None:
                    raise ValueError(f"{path}:{n + 1}: label {row['label']!r} is not 0/1/human/machine")
                text = str(row["text"])
                if not normalize(text):
                    continue
                generator = str(row.get("generator") or ("machine" if label else "human"))
                records.append({**row, "text": text, "label": label,
                                "source": row.get("source") or Path(path).name,
                                "generator": generator,
                                "family": row.get("family") or (family(generator) if label else "human"),
                                "domain": row.get("domain") or "",
                                "group": row.get("group") or digest(normalize(text))})
    return records


def write_labelled_jsonl(root: str | Path, output: str | Path, old: bool = False) -> int:
    """The JSONL the shipped model is trained from (``root`` is ``shared/data``); returns rows."""
    records = load_training_data(root, old)
    with open(output, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    return len(records)

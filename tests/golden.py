"""The "same records as before" check: corpora, how a run is summarised, and the stored summaries.

A run is summarised as ids and reasons only (never text): the curated records, the rejected ones with
``reject_stage``/``reject_reason`` and the error records with their location, stage and type. Record
ids are ``sha256(source_uri, source_record_id)``, and near-dedup breaks ties by the smallest id, so a
decision may depend on where the shards lie: every corpus is read through a fixed root
(``/tmp/ouroboros-golden``, symlinks to ../shared/data and the demo corpus, a generated planted-
duplicates shard), and the summary names records by ``shard:source_record_id``, not by id.

The synthetic scorer is off in these runs (``synthetic.enabled=false``): it is retrained in parallel,
and a new model changes scores and hence near-duplicate representatives.

Refresh the stored summaries (only when a change of decisions is intended and explained):
``.venv/bin/python -m tests.golden --write``.
"""

from __future__ import annotations

import gzip
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.conftest import SHARED_DATA, read_output

ROOT = Path(tempfile.gettempdir()) / "ouroboros-golden"
GOLDEN = Path(__file__).resolve().parent / "golden"
OVERRIDES = ["synthetic.enabled=false"]
DEMO_CORPUS = Path(__file__).resolve().parents[1] / "pipeline" / "demo_corpus"


def _link(name: str, target: Path) -> Path:
    """``ROOT/name`` -> ``target`` (atomic; concurrent test runs make the same link)."""
    ROOT.mkdir(exist_ok=True)
    link = ROOT / name
    if link.is_symlink() and Path(os.readlink(link)) == target:
        return link
    tmp = ROOT / f".{name}.{os.getpid()}"
    if tmp.is_symlink():
        tmp.unlink()
    tmp.symlink_to(target, target_is_directory=True)
    os.replace(tmp, link)
    return link


def planted_corpus() -> Path:
    """A JSONL shard of real Common Crawl texts with planted exact and near copies and mixed dates.

    Built deterministically from the first long texts of ../shared/data/web/*.jsonl.gz: for each
    base, copies differing only in case and spacing (exact duplicates) and copies with every 20th
    word replaced (near duplicates), with crawl dates earlier, later, equal or missing, so that both
    dedup stages must choose representatives by date and, on ties, by id.
    """
    source = next(iter(sorted((SHARED_DATA / "web").glob("*.jsonl.gz"))))
    with gzip.open(source, "rt", encoding="utf-8") as f:
        texts = [json.loads(line).get("text") or "" for line in f]
    # long English prose (many "the"), so that most bases and copies pass the quality rules
    bases = [t for t in texts if len(t.split()) >= 150 and t.count(" the ") >= 15][:30]
    dates = ["2019-07-17T12:00:00Z", "2018-01-01T00:00:00Z", None, "2019-07-17T12:00:00Z",
             "2021-05-05T05:05:05Z"]
    rows: list[dict[str, Any]] = []
    for i, text in enumerate(bases):
        def row(t: str, k: int, i: int = i) -> None:
            date = dates[(i + k) % len(dates)]
            rows.append({"text": t, **({"date": date} if date else {})})

        row(text, 0)
        if i % 3 in (0, 2):  # an exact copy: other spacing, first letter in the other case
            row(text[:1].swapcase() + text[1:].replace(". ", ".   ") + "  ", 1)
        if i % 3 in (1, 2):  # a near copy: every 20th word replaced
            words = text.split(" ")
            row(" ".join("zebra" if k % 20 == 7 else w for k, w in enumerate(words)), 2)
        if i == 5:  # a hub: several near copies of one page
            for k in range(3, 7):
                words = text.split(" ")
                row(" ".join("quagga" if j % 25 == k else w for j, w in enumerate(words)), k)
    data = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)
    # and damaged lines: invalid JSON, no text, a text that is not a string
    data += '{"text": broken\n{"url": "https://no-text.example/"}\n{"text": 42}\n'
    return _write("planted.jsonl", data)


def _write(name: str, data: str) -> Path:
    """``ROOT/name`` holding ``data`` (atomic; concurrent test runs write the same bytes)."""
    ROOT.mkdir(exist_ok=True)
    path = ROOT / name
    if not path.exists() or path.read_text(encoding="utf-8") != data:
        tmp = ROOT / f".{name}.{os.getpid()}"
        tmp.write_text(data, encoding="utf-8")
        os.replace(tmp, path)
    return path


def corpora() -> dict[str, list[str]]:
    """Name -> input globs, all under the fixed root."""
    web = _link("web", SHARED_DATA / "web")
    quality = _link("quality", SHARED_DATA / "quality")
    demo = _link("demo", DEMO_CORPUS)
    return {
        "web": [str(web / "*")],
        "bench": [str(quality / "*.jsonl"), str(demo / "demo.jsonl"), str(demo / "demo.warc"),
                  str(planted_corpus())],
    }


def summarize(out: Path) -> dict[str, Any]:
    """Ids and reasons of a run's outputs, records named ``shard:source_record_id``."""
    curated, rejected, errors = (read_output(out, p) for p in ("curated", "rejected", "errors"))
    names = {r["id"]: f"{Path(r['source_uri']).name}:{r['source_record_id']}"
             for r in curated + rejected}

    def reason(text: str) -> str:
        kind, sep, ref = (text or "").partition(":")
        if sep and kind in ("exact_duplicate_of", "near_duplicate_of"):
            return f"{kind}:{names.get(ref, ref)}"
        return text

    return {
        "curated": sorted(names[r["id"]] for r in curated),
        "rejected": sorted([names[r["id"]], r["reject_stage"], reason(r["reject_reason"])]
                           for r in rejected),
        "errors": sorted([Path(e["source_uri"] or "").name, e["source_location"] or "",
                          e["error_stage"] or "", e["error_type"] or ""] for e in errors),
    }


def run(name: str, workdir: Path, overrides: list[str] | None = None) -> Path:
    """Runs the pipeline over corpus ``name`` (default: with the synthetic scorer off)."""
    from ouroboros.pipeline.cli import execute

    out = workdir / name
    execute(corpora()[name], str(out), overrides=OVERRIDES if overrides is None else overrides,
            quiet=True, overwrite=True, run_id=f"golden-{name}")
    return out


def run_and_summarize(name: str, workdir: Path) -> dict[str, Any]:
    return summarize(run(name, workdir))


def clusters(summary: dict[str, Any]) -> set[frozenset[str]]:
    """The duplicate clusters (exact and near) a summary shows, as sets of members, whoever was
    kept: a rejected duplicate joins the cluster of the record it names."""
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        while parent.get(x, x) != x:
            x = parent[x]
        return x

    for rid, _, reason in summary["rejected"]:
        kind, _, ref = reason.partition(":")
        if kind in ("exact_duplicate_of", "near_duplicate_of"):
            parent[root(rid)] = root(ref)
    groups: dict[str, set[str]] = {}
    for x in list(parent):
        groups.setdefault(root(x), {root(x)}).add(x)
    return {frozenset(g) for g in groups.values()}


def load(name: str) -> dict[str, Any]:
    return json.loads((GOLDEN / f"{name}.json").read_text(encoding="utf-8"))


def main(argv: list[str]) -> None:
    if argv != ["--write"]:
        sys.exit("usage: python -m tests.golden --write")
    GOLDEN.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name in corpora():
            summary = run_and_summarize(name, Path(tmp))
            (GOLDEN / f"{name}.json").write_text(json.dumps(summary, indent=1) + "\n",
                                                 encoding="utf-8")
            print(name, {k: len(v) for k, v in summary.items()})


if __name__ == "__main__":
    main(sys.argv[1:])

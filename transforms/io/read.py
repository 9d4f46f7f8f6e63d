"""Reading raw shards: which reader a shard needs, which shards an input names, and one shard's
items with its errors capped.

The readers, one module per format, live in `transforms/io/readers/` (WARC/WET, JSONL, Parquet,
local Hugging Face datasets); each is a generator over one shard yielding ``("doc", dict)``,
``("error", dict)`` or ``("skip", record_type)``, streaming: a shard is never loaded whole. Files
are opened through Beam's ``FileSystems`` so ``gs://`` and ``s3://`` work when the matching Beam
extra is installed. Every document gets its source provenance there; every failure becomes an
error record with its location. This module keeps the names the rest of the code imports.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator

from apache_beam.io.filesystems import FileSystems
from ouroboros.transforms.base import error_record
from ouroboros.transforms.io.readers.common import (
    Item,
    ReadConfig,
    ShardReadError,
    new_doc,
    record_id,
)
from ouroboros.transforms.io.readers.hf_dataset import (
    AmbiguousInput,
    is_hf_dataset_dir,
    read_hf_dataset,
)
from ouroboros.transforms.io.readers.jsonl import read_jsonl
from ouroboros.transforms.io.readers.parquet import read_parquet
from ouroboros.transforms.io.readers.warc import read_warc

__all__ = ["FORMATS", "AmbiguousInput", "Item", "ReadConfig", "ShardReadError", "detect_format",
           "expand_inputs", "new_doc", "read_hf_dataset", "read_jsonl", "read_parquet",
           "read_shard", "read_warc", "record_id"]

FORMATS = ("warc", "wet", "jsonl", "parquet", "hf_dataset")
READERS = {"warc": read_warc, "wet": read_warc, "jsonl": read_jsonl, "parquet": read_parquet,
           "hf_dataset": read_hf_dataset}


def format_by_name(path: str) -> str | None:
    """The shard format from a file name (compression suffixes ignored), None if unknown."""
    name = path.lower().rstrip("/")
    for comp in (".gz", ".zst", ".zstd", ".bz2"):
        if name.endswith(comp):
            name = name[: -len(comp)]
            break
    if name.endswith(".wet"):
        return "wet"
    if name.endswith((".warc", ".wat", ".arc")):
        return "warc"
    if name.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    if name.endswith(".parquet"):
        return "parquet"
    return None


def detect_format(path: str) -> str | None:
    """The shard format: by name for files; directories saved by `save_to_disk` are HF datasets."""
    fmt = format_by_name(path)
    if fmt is None and is_hf_dataset_dir(path, format_by_name):
        return "hf_dataset"
    return fmt


def expand_inputs(patterns: list[str]) -> list[str]:
    """Shard URIs for paths, directories or globs (sorted, de-duplicated, absolute when local).

    A path that exists is taken literally, whatever characters its name holds (`crawl[1].jsonl`
    is that file); only a path that does not exist is a glob. A directory is a Hugging Face
    dataset only by its real structure (`readers/hf_dataset.py`); otherwise its files are shards.
    """
    shards: list[str] = []
    for pattern in patterns:
        if "://" not in pattern:
            shards += _expand_local(pattern)
            continue
        try:
            exists = FileSystems.exists(pattern)
        except (OSError, ValueError) as exc:  # gs:// without the gcp extra, a store refusing
            raise FileNotFoundError(f"cannot list input {pattern}: {exc}") from None
        shards += [pattern] if exists else _match(pattern)
    return sorted(set(shards))


def _expand_local(pattern: str) -> list[str]:
    if os.path.isdir(pattern):
        if is_hf_dataset_dir(pattern, format_by_name):
            return [os.path.abspath(pattern)]
        files = sorted(os.path.join(pattern, n) for n in os.listdir(pattern)
                       if os.path.isfile(os.path.join(pattern, n)))
        if not files:
            raise FileNotFoundError(f"input directory holds no files: {pattern}")
        return [os.path.abspath(f) for f in files]
    if os.path.exists(pattern):
        return [os.path.abspath(pattern)]
    return [os.path.abspath(path) for path in _match(pattern)]


def _match(pattern: str) -> list[str]:
    """The paths a glob matches (a path that does not exist is tried as one)."""
    try:
        matched = FileSystems.match([pattern])[0].metadata_list
    except (OSError, ValueError) as exc:  # gs:// without the gcp extra, a store refusing
        raise FileNotFoundError(f"cannot list input {pattern}: {exc}") from None
    if not matched:
        what = "matched no files" if any(c in pattern for c in "*?[") else "not found"
        raise FileNotFoundError(f"input {what}: {pattern}")
    return [m.path for m in matched]


def read_shard(uri: str, fmt: str, config: ReadConfig) -> Iterator[Item]:
    """All items of one shard; a failure that stops the shard becomes its last item (an error).

    At most `read.max_errors_per_shard` error records come one by one; after that, errors are
    counted per type and each type gets one summary record whose `error_count` says how many
    inputs it stands for, so the accounting still counts every bad line."""
    produced = False
    budget_left = config.max_errors_per_shard
    held: Counter[str] = Counter()  # error type -> errors counted, not written
    first: dict[str, str] = {}  # error type -> location of its first counted error
    try:
        for kind, item in READERS[fmt](uri, fmt, config):
            produced = True
            if kind == "error":
                if budget_left <= 0:
                    held[item["error_type"]] += 1
                    first.setdefault(item["error_type"], item["source_location"])
                    continue
                budget_left -= 1
            yield kind, item
    except ImportError:
        raise  # a broken installation is not bad input: fail loudly
    except Exception as exc:  # unreadable shard (or its tail): quarantine, never crash the run
        produced = True
        yield from _held(uri, fmt, held, first, config)
        held.clear()
        cause = exc.__cause__ if isinstance(exc, ShardReadError) and exc.__cause__ else exc
        kind = (getattr(exc, "error_type", None) or getattr(cause, "error_type", None)
                or getattr(cause, "limit", None) or type(cause).__name__)
        yield "error", error_record(uri, fmt, getattr(exc, "location", "shard"), "read", exc,
                                    error_type=kind)
    yield from _held(uri, fmt, held, first, config)
    if not produced:  # a zero-byte or record-less shard is almost always a failed download
        yield "error", error_record(uri, fmt, "shard", "read", "shard holds no records",
                                    error_type="empty_shard")


def _held(uri: str, fmt: str, held: Counter, first: dict[str, str],
          config: ReadConfig) -> Iterator[Item]:
    for error_type, n in sorted(held.items()):
        yield "error", error_record(
            uri, fmt, first[error_type], "read",
            f"{n:,} more {error_type} errors from {first[error_type]} on, not recorded one by "
            f"one (read.max_errors_per_shard = {config.max_errors_per_shard:,})",
            error_type=error_type, count=n)

"""Local Hugging Face datasets saved with `save_to_disk` (memory-mapped Arrow: rows stream from
disk), recognised by their real structure: `state.json` listing data files that exist (a
`Dataset`), or `dataset_dict.json` listing splits that are such datasets (a `DatasetDict`). A stray
`state.json` (a crawler's own bookkeeping, say) does not make a directory of shards a dataset; a
directory that is a dataset and also holds shards is ambiguous and an error, never a silent skip."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

from ouroboros.transforms.io.readers.common import (
    Item,
    ReadConfig,
    ShardReadError,
    structured_doc,
)

# The files save_to_disk writes besides the Arrow data.
HF_METADATA = frozenset({"state.json", "dataset_info.json", "dataset_dict.json"})


class AmbiguousInput(ValueError):
    """A directory that is both a Hugging Face dataset and a directory of shards, or neither."""


def _json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _claims(path: str) -> str | None:
    """Which save_to_disk metadata file in `path` says it is a dataset (by its keys)."""
    state = _json(os.path.join(path, "state.json"))
    if isinstance(state, dict) and "_data_files" in state:
        return "state.json"
    split_list = _json(os.path.join(path, "dataset_dict.json"))
    if isinstance(split_list, dict) and "splits" in split_list:
        return "dataset_dict.json"
    return None


def _problem(path: str) -> str | None:
    """Why `path`, which claims to be a dataset, is not a whole one (None: it is)."""
    state = _json(os.path.join(path, "state.json"))
    if isinstance(state, dict) and "_data_files" in state:
        files = state["_data_files"]
        if not isinstance(files, list) or not files:
            return "state.json lists no data files"
        for entry in files:
            name = entry.get("filename") if isinstance(entry, dict) else None
            if not isinstance(name, str) or not os.path.isfile(os.path.join(path, name)):
                return f"state.json lists data file {name!r}, which is missing"
        return None
    splits = _json(os.path.join(path, "dataset_dict.json")).get("splits")
    if not isinstance(splits, list) or not splits:
        return "dataset_dict.json lists no splits"
    for split in splits:
        sub = os.path.join(path, str(split))
        if not os.path.isdir(sub) or _claims(sub) != "state.json":
            return f"dataset_dict.json lists split {split!r}, which is not a saved dataset"
        why = _problem(sub)
        if why:
            return f"split {split!r}: {why}"
    return None


def is_hf_dataset_dir(path: str, shard_name: Any = None) -> bool:
    """True for a whole saved dataset; raises `AmbiguousInput` for a directory that claims to be
    one but is broken, or that also holds files `shard_name` recognises as shards."""
    if "://" in path or not os.path.isdir(path):
        return False
    claim = _claims(path)
    if claim is None:
        return False
    why = _problem(path)
    if why:
        raise AmbiguousInput(f"{path}: its {claim} says it is a Hugging Face dataset, but {why}; "
                             "move that file away to read the directory as shards")
    if shard_name is not None:
        shards = sorted(name for name in os.listdir(path) if name not in HF_METADATA
                        and os.path.isfile(os.path.join(path, name)) and shard_name(name))
        if shards:
            raise AmbiguousInput(f"{path} is a Hugging Face dataset ({claim}) and also holds "
                                 f"shards ({', '.join(shards[:5])}): give the dataset and the "
                                 "shards as separate inputs")
    return True


def read_hf_dataset(uri: str, fmt: str, config: ReadConfig) -> Iterator[Item]:
    import datasets

    loaded = datasets.load_from_disk(uri)
    splits = loaded.items() if isinstance(loaded, datasets.DatasetDict) else [(None, loaded)]
    for split, ds in splits:
        if config.text_field not in ds.column_names:
            raise ShardReadError(f"dataset{'/' + split if split else ''} has no "
                                 f"'{config.text_field}' column", "shard", "missing_text_column")
        prefix = f"{split}/" if split else ""
        for row, obj in enumerate(ds):
            yield structured_doc(uri, fmt, f"{prefix}row:{row}", row, obj, config)

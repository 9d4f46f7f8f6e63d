"""A bounded sketch of which 64-bit keys occur at least once or at least twice (counting Bloom filter).

Dedup groups documents by a key (the exact hash; a MinHash band bucket), and almost every key
occurs once: grouping all of them would shuffle, and on a runner that groups in memory hold, one
record per document (times 14 bands). A key that occurs once cannot make a duplicate, so the keyed
stages first sketch the keys (a ``CombineGlobally`` with a fixed-size accumulator, fused into the
pass that produces them), then send to the ``GroupByKey`` only the records whose key the sketch
says may occur twice. The sketch never says "once" for a key that occurs twice (no false
negatives), so the decisions are exactly those of grouping everything; a false positive only sends
a record through the shuffle for nothing.

Cells: ``2**log2_cells`` two-bit saturating counters (0, 1, >= 2) held as two bit arrays; a key
touches ``k`` cells (multiply-shift hashing of the already uniform key) and "occurs at least n
times" means all its cells reached n. With n keys, the false-positive rate of "twice" for a key
seen once is about ``(1 - exp(-k n / cells))**k``: 2**26 cells (16 MiB) and k = 3 give 0.14% at
2.8 million band keys (200,000 documents), 1.5% at 14 million. Merging is bitwise: a cell seen once
in two partial sketches has been seen twice.
"""

from __future__ import annotations

import pickle
import uuid
import zlib
from collections.abc import Iterable
from typing import Any, NamedTuple

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems

_U64 = np.uint64
# Odd multipliers (from splitmix64 / xxhash / murmur3 constants) for the k cell positions.
_MULTIPLIERS = (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB, 0xC2B2AE3D27D4EB4F)
_FLUSH = 1 << 16  # keys buffered before they are applied in one vectorised step


def as_keys(values: Iterable[int]) -> np.ndarray:
    """Python ints (unsigned 64-bit) as a key array."""
    return np.fromiter(values, dtype=_U64)


def hex_key(hex_digest: str) -> int:
    """A 64-bit key from a hex digest (its first 16 hex digits)."""
    return int(hex_digest[:16], 16)


class KeySketch:
    """Saturating two-bit counters over ``2**log2_cells`` cells; ``k`` cells per key."""

    __slots__ = ("k", "log2_cells", "once", "twice")

    def __init__(self, log2_cells: int = 26, k: int = 3):
        if not 6 <= log2_cells <= 34 or not 1 <= k <= len(_MULTIPLIERS):
            raise ValueError("log2_cells must be in [6, 34] and k in [1, 4]")
        self.log2_cells = log2_cells
        self.k = k
        words = 1 << (log2_cells - 6)
        self.once = np.zeros(words, dtype=_U64)
        self.twice = np.zeros(words, dtype=_U64)

    def _cells(self, keys: np.ndarray) -> Iterable[np.ndarray]:
        mixed = keys ^ (keys >> _U64(29))
        shift = _U64(64 - self.log2_cells)
        for j in range(self.k):
            yield (mixed * _U64(_MULTIPLIERS[j])) >> shift

    def add(self, keys: np.ndarray) -> None:
        keys = np.asarray(keys, dtype=_U64)
        if keys.size == 0:
            return
        with np.errstate(over="ignore"):
            for cells in self._cells(keys):
                uniq, counts = np.unique(cells, return_counts=True)
                word, bit = uniq >> _U64(6), _U64(1) << (uniq & _U64(63))
                again = ((self.once[word] & bit) != 0) | (counts >= 2)
                np.bitwise_or.at(self.twice, word[again], bit[again])
                np.bitwise_or.at(self.once, word, bit)

    def at_least(self, keys: np.ndarray, times: int) -> np.ndarray:
        """For each key: may it have occurred `times` (1 or 2) times or more? (True if it did.)"""
        keys = np.asarray(keys, dtype=_U64)
        table = self.once if times <= 1 else self.twice
        out = np.ones(keys.size, dtype=bool)
        with np.errstate(over="ignore"):
            for cells in self._cells(keys):
                out &= (table[cells >> _U64(6)] & (_U64(1) << (cells & _U64(63)))) != 0
        return out

    def __getstate__(self) -> tuple:
        # Pickled (a combine accumulator, a side input) with its bit arrays compressed: the
        # in-process runner keeps several encoded copies of a side input, and a sketch of a
        # small or medium corpus is mostly zero bits (16 MiB -> 1.1 MB for the 140,000 band keys
        # of 10,000 documents, 6.5 MB for the 2.8 million of 200,000).
        return (self.log2_cells, self.k,
                zlib.compress(self.once.tobytes(), 1), zlib.compress(self.twice.tobytes(), 1))

    def __setstate__(self, state: tuple) -> None:
        self.log2_cells, self.k, once, twice = state
        self.once = np.frombuffer(bytearray(zlib.decompress(once)), dtype=_U64)
        self.twice = np.frombuffer(bytearray(zlib.decompress(twice)), dtype=_U64)

    def merge(self, other: KeySketch) -> None:
        if (other.log2_cells, other.k) != (self.log2_cells, self.k):
            raise ValueError("cannot merge sketches of different shapes")
        self.twice |= other.twice | (self.once & other.once)
        self.once |= other.once


class SketchKeys(beam.CombineFn):
    """Integer keys (or iterables of them) -> one ``KeySketch``.

    The accumulator holds the sketch (created at the first key: an empty bundle costs nothing)
    and up to 65,536 keys waiting for a vectorised ``add``."""

    def __init__(self, log2_cells: int = 26, k: int = 3):
        self._log2 = log2_cells
        self._k = k

    def create_accumulator(self) -> list[Any]:
        return [None, []]

    def _flush(self, acc: list[Any]) -> None:
        if acc[1]:
            if acc[0] is None:
                acc[0] = KeySketch(self._log2, self._k)
            acc[0].add(as_keys(acc[1]))
            acc[1] = []

    def add_input(self, acc: list[Any], keys: Any) -> list[Any]:
        if isinstance(keys, int):
            acc[1].append(keys)
        else:
            acc[1].extend(keys)
        if len(acc[1]) >= _FLUSH:
            self._flush(acc)
        return acc

    def merge_accumulators(self, accs: Iterable[list[Any]]) -> list[Any]:
        out = self.create_accumulator()
        for acc in accs:
            self._flush(acc)
            if acc[0] is None:
                continue
            if out[0] is None:
                out[0] = acc[0]
            else:
                out[0].merge(acc[0])
        return out

    def compact(self, acc: list[Any]) -> list[Any]:
        self._flush(acc)
        return acc

    def extract_output(self, acc: list[Any]) -> KeySketch:
        self._flush(acc)
        return acc[0] if acc[0] is not None else KeySketch(self._log2, self._k)


def sketch_keys(log2_cells: int = 26, k: int = 3) -> beam.PTransform:
    """Keys -> one ``KeySketch`` (none when there were no keys: readers take a missing sketch,
    ``AsSingleton(..., default_value=None)``, as one in which no key occurs).

    Without defaults: ``CombineGlobally`` otherwise hands its result to a step that injects the
    default as a side input, and the in-process runner holds that side input, encoded and decoded,
    until the run ends (memray, 200,000 documents: ~15 MB encoded in the runner's state and the
    16 MiB band sketch decoded in the worker's cache, all through the apply pass)."""
    return beam.CombineGlobally(SketchKeys(log2_cells, k)).without_defaults()


class SketchFile(NamedTuple):
    """A ``KeySketch`` stored in the run's work directory (``store_sketch``): what the keyed
    stages take as a side input instead of the sketch itself.

    A side input stays with the runner until the run ends, and the in-process runner also keeps
    the decoded value in its caches: at 200,000 documents the 16 MiB band sketch was held decoded
    twice and encoded once more (~20 MB) long after its last reader (measured with memray). A
    path costs nothing to hold; the readers (``ReadsSketches``) load the sketch for a bundle and
    drop it at the bundle's end."""

    path: str


def store_sketch(sketch: KeySketch, directory: str, name: str) -> SketchFile:
    """Writes `sketch` (pickled, its bits compressed) under `directory` (any Beam filesystem)."""
    path = f"{directory.rstrip('/')}/{name}-{uuid.uuid4().hex}.sketch"
    with FileSystems.create(path) as f:
        f.write(pickle.dumps(sketch, protocol=pickle.HIGHEST_PROTOCOL))
    return SketchFile(path)


class LoadedSketches:
    """A DoFn's sketches for one bundle: ``get`` reads a ``SketchFile`` once (a ``KeySketch`` or
    None is returned as it is); ``clear`` (in ``finish_bundle``) lets it go."""

    def __init__(self) -> None:
        self._loaded: dict[str, KeySketch] = {}

    def get(self, sketch: KeySketch | SketchFile | None) -> KeySketch | None:
        if not isinstance(sketch, SketchFile):
            return sketch
        loaded = self._loaded.get(sketch.path)
        if loaded is None:
            with FileSystems.open(sketch.path) as f:
                loaded = pickle.loads(f.read())
            if not isinstance(loaded, KeySketch):
                raise ValueError(f"{sketch.path} does not hold a key sketch")
            self._loaded[sketch.path] = loaded
        return loaded

    def clear(self) -> None:
        self._loaded.clear()


class ReadsSketches(beam.DoFn):
    """A DoFn whose side inputs may be ``SketchFile``s: ``self._sketches.get(side_input)`` is the
    sketch, read once per bundle and let go when the bundle ends."""

    def start_bundle(self) -> None:
        self._sketches = LoadedSketches()

    def finish_bundle(self) -> None:
        self._sketches.clear()

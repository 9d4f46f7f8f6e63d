"""Connected components of the near-duplicate graph: a union-find over candidate edges only.

Choice and bound: rather than iterative label propagation (one shuffle of all edges per round,
O(diameter) rounds for chains), the edges are folded into a union-find inside a Beam
``CombineFn``. Each bundle builds a partial union-find of its facts (combiner lifting), and the
partials are merged in one worker. That worker holds a few dict entries per *node*: a document
that shares a band bucket with another (documents that have a near duplicate, plus matching
documents of earlier runs), never the corpus and never the edges themselves: a star of 100k
copies around one hub is 100k nodes, whatever the number of bands that found it. At ~500 bytes
per node in CPython, 10 million such documents need about 5 GB in that worker; beyond that,
replace this module by label propagation (the rest of the pipeline only consumes
``(id, ClusterInfo, file)`` triples).

Two kinds of facts come in, so that an edge is two ids and a document's rank crosses the
shuffle once, not once per band it shares:
  edge  ``(id_a, id_b)``: the two documents are candidate duplicates;
  rank  the document's representative-policy sort key (``representative.representative_key``:
        ``(tier, crawl_date, synthetic_score, id)``, optionally followed by the staged file that
        holds the document); the smallest rank seen for an id counts.
A component's representative is its member with the smallest rank, whatever the union order, so
the result is deterministic. A node with a rank but no edge is no cluster and is not reported.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

import apache_beam as beam
from ouroboros.transforms.dedup.representative import representative_key

Rank = tuple  # (tier, crawl_date, synthetic_score, id[, file]): smaller is more trustworthy
Edge = tuple[str, str]
ID = 3  # where a rank holds the document id
EDGE, RANK = "edge", "rank"  # the kinds of fact ``ConnectedComponents`` folds


class ClusterInfo(NamedTuple):
    representative: str
    size: int
    representative_tier: int  # 0 = a document kept by an earlier run (from the band index)


class UnionFind:
    """Union by size with path halving over document ids; ranks (and staged files) per id."""

    __slots__ = ("files", "parent", "rank", "size")

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}
        self.size: dict[str, int] = {}  # roots only
        self.rank: dict[str, Rank] = {}  # id -> the smallest rank seen for it
        self.files: dict[str, str] = {}  # id -> the staged file holding it (this run's nodes)

    def add(self, node: str) -> str:
        if node not in self.parent:
            self.parent[node] = node
            self.size[node] = 1
        return node

    def add_rank(self, rank: Rank) -> None:
        """A document's rank: the smallest one seen for its id counts (a document of this run
        re-read from an earlier run's index ranks as the earlier run's)."""
        node = rank[ID]
        self.add(node)
        if len(rank) > ID + 1 and rank[ID + 1]:
            self.files[node] = rank[ID + 1]
        known = self.rank.get(node)
        if known is None or rank < known:
            self.rank[node] = rank

    def find(self, node: str) -> str:
        parent = self.parent
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    def union(self, a: str, b: str) -> None:
        x, y = self.find(self.add(a)), self.find(self.add(b))
        if x == y:
            return
        if self.size[x] < self.size[y]:
            x, y = y, x
        self.parent[y] = x
        self.size[x] += self.size.pop(y)

    def merge(self, other: UnionFind) -> None:
        for node, parent in other.parent.items():
            self.union(node, parent)
        for rank in other.rank.values():
            self.add_rank(rank)
        self.files.update(other.files)

    def clusters(self) -> Iterable[tuple[str, ClusterInfo]]:
        """(id, its cluster) for every node of a component of two or more."""
        for node, info, _ in self.placed_clusters():
            yield node, info

    def placed_clusters(self) -> Iterable[tuple[str, ClusterInfo, str | None]]:
        """(id, its cluster, the staged file holding it or None) for every node of a component of
        two or more. A node whose rank never came ranks as an undated, unscored new document."""
        best: dict[str, Rank] = {}
        for node in self.parent:
            root = self.find(node)
            if self.size[root] < 2:
                continue
            rank = self.rank.get(node) or representative_key(node, None, None)
            if root not in best or rank < best[root]:
                best[root] = rank
        for node in self.parent:
            root = self.find(node)
            if root in best:
                b = best[root]
                yield node, ClusterInfo(b[ID], self.size[root], b[0]), self.files.get(node)


class _UnionFindFn(beam.CombineFn):
    def create_accumulator(self) -> UnionFind:
        return UnionFind()

    def add_input(self, acc: UnionFind, fact: tuple[str, Any]) -> UnionFind:
        kind, value = fact
        if kind == EDGE:
            acc.union(*value)
        else:
            acc.add_rank(value)
        return acc

    def merge_accumulators(self, accs: Iterable[UnionFind]) -> UnionFind:
        accs = sorted(accs, key=lambda u: len(u.parent), reverse=True)
        first = accs[0]
        for other in accs[1:]:
            first.merge(other)
        return first

    def extract_output(self, acc: UnionFind) -> list[tuple[str, ClusterInfo, str | None]]:
        return list(acc.placed_clusters())


def _edge_fact(edge: Edge) -> tuple[str, Edge]:
    return EDGE, edge


def _rank_fact(rank: Rank) -> tuple[str, Rank]:
    return RANK, rank


class ConnectedComponents(beam.PTransform):
    """``(edges, ranks)`` -> ``(id, ClusterInfo, file)`` for every document in a component of two
    or more (``file``: the staged file its rank named, or None). ``edges``: ``(id_a, id_b)``;
    ``ranks``: ranks of the documents the edges name (others are ignored)."""

    def expand(self, inputs: tuple[Any, Any]) -> Any:
        edges, ranks = inputs
        # Without defaults (no facts, no clusters): the default would reach `PerNode` as a side
        # input, which the in-process runner holds, encoded and decoded, until the run ends: every
        # clustered document's triple (34,752 at 200,000 documents), through the apply pass.
        facts = ((edges | "EdgeFacts" >> beam.Map(_edge_fact),
                  ranks | "RankFacts" >> beam.Map(_rank_fact))
                 | "Facts" >> beam.Flatten())
        return (facts
                | "UnionFind" >> beam.CombineGlobally(_UnionFindFn()).without_defaults()
                | "PerNode" >> beam.FlatMap(lambda triples: triples))

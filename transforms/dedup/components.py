"""Connected components of the near-duplicate graph: a union-find over candidate edges only.

Choice and bound: rather than iterative label propagation (one shuffle of all edges per round,
O(diameter) rounds for chains), the edges are folded into a union-find inside a Beam
``CombineFn``. Each bundle builds a partial union-find of its edges (combiner lifting), and the
partials are merged in one worker. That worker holds three dict entries per *node that has at
least one candidate edge* - documents that have a near duplicate, plus matching documents of
earlier runs - never the corpus and never the edges themselves: a star of 100k copies around one
hub is 100k nodes, whatever the number of bands that found it. At ~300 bytes per node in CPython,
10 million duplicated documents need about 3 GB in that worker; beyond that, replace this module
by label propagation (the rest of the pipeline only consumes ``(id, ClusterInfo)`` pairs).

A node is a document id with its rank (the representative-policy sort key, see
``representative.representative_key``: ``(tier, crawl_date, synthetic_score, id)``, optionally
followed by the staged file that holds the document); a component's representative is its member
with the smallest rank, whatever the union order, so the result is deterministic.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

import apache_beam as beam

Rank = tuple  # (tier, crawl_date, synthetic_score, id[, file]): smaller is more trustworthy
Edge = tuple[Rank, Rank]
ID = 3  # where a rank holds the document id


class ClusterInfo(NamedTuple):
    representative: str
    size: int
    representative_tier: int  # 0 = a document kept by an earlier run (from the band index)


class UnionFind:
    """Union by size with path halving; tracks the minimum-rank member of every component."""

    __slots__ = ("best", "files", "parent", "rank", "size")

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}
        self.size: dict[str, int] = {}  # roots only
        self.rank: dict[str, Rank] = {}
        self.best: dict[str, Rank] = {}  # roots only: the smallest rank in the component
        self.files: dict[str, str] = {}  # node -> the staged file holding it (this run's nodes)

    def add(self, rank: Rank) -> str:
        node = rank[ID]
        if len(rank) > ID + 1 and rank[ID + 1]:
            self.files[node] = rank[ID + 1]
        known = self.rank.get(node)
        if known is None:
            self.parent[node] = node
            self.size[node] = 1
            self.rank[node] = rank
            self.best[node] = rank
        elif rank < known:  # the same id seen with a better rank (a doc re-read from the index)
            self.rank[node] = rank
            root = self.find(node)
            self.best[root] = min(self.best[root], rank)
        return node

    def find(self, node: str) -> str:
        parent = self.parent
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    def union(self, a: Rank, b: Rank) -> None:
        x, y = self.find(self.add(a)), self.find(self.add(b))
        if x == y:
            return
        if self.size[x] < self.size[y]:
            x, y = y, x
        self.parent[y] = x
        self.size[x] += self.size.pop(y)
        by = self.best.pop(y)
        self.best[x] = min(self.best[x], by)

    def merge(self, other: UnionFind) -> None:
        for node, parent in other.parent.items():
            self.union(other.rank[node], other.rank[parent])
        self.files.update(other.files)

    def clusters(self) -> Iterable[tuple[str, ClusterInfo]]:
        """(id, its cluster) for every node."""
        for node, info, _ in self.placed_clusters():
            yield node, info

    def placed_clusters(self) -> Iterable[tuple[str, ClusterInfo, str | None]]:
        """(id, its cluster, the staged file holding it or None) for every node."""
        for node in self.parent:
            root = self.find(node)
            best = self.best[root]
            yield node, ClusterInfo(best[ID], self.size[root], best[0]), self.files.get(node)


class _UnionFindFn(beam.CombineFn):
    def create_accumulator(self) -> UnionFind:
        return UnionFind()

    def add_input(self, acc: UnionFind, edge: Edge) -> UnionFind:
        acc.union(*edge)
        return acc

    def merge_accumulators(self, accs: Iterable[UnionFind]) -> UnionFind:
        accs = sorted(accs, key=lambda u: len(u.parent), reverse=True)
        first = accs[0]
        for other in accs[1:]:
            first.merge(other)
        return first

    def extract_output(self, acc: UnionFind) -> list[tuple[str, ClusterInfo, str | None]]:
        return list(acc.placed_clusters())


class ConnectedComponents(beam.PTransform):
    """Edges ``(rank_a, rank_b)`` -> ``(id, ClusterInfo, file)`` for every node that has an edge
    (``file``: the staged file the rank named, or None)."""

    def expand(self, edges: Any) -> Any:
        return (edges
                | "UnionFind" >> beam.CombineGlobally(_UnionFindFn())
                | "PerNode" >> beam.FlatMap(lambda pairs: pairs))

"""Near-duplicate removal in Beam: MinHash -> LSH band buckets -> candidate edges -> components.

The pipeline decides on keys (``NearDecisions``): the streaming pass signs every document
(``MinHashKeys``, a per-document stage that stores the band hashes on the staged row) and sketches
the band keys (``sketch.SketchKeys``); the keyed pass reads only the band columns of the staged files
and sends to the bucket ``GroupByKey`` only the band keys the sketch says occur twice (or in an
earlier run's index), so grouping holds the candidate duplicates, not the corpus. ``NearDedup``
below is the same rule over documents in memory, for tests, benchmarks and library use.

Flow (labels as in the graph):
  Sign       batches of documents -> signature + band hashes (``minhash.signatures``, numpy)
  Bands      one ((band, hash), member) per band; earlier runs' kept documents join here from
             their band index (``index_in``), with tier 0 so that they win every cluster. A
             member is this run's document's id (``_member``; with verification, its rank and
             signature), and each document's rank goes once to the components (``RANKS``)
  Buckets    per band bucket: a *star* from the bucket's best-ranked member to every other member
             (never the O(n^2) pairs; a star is enough for connectivity, so without verification
             any of this run's documents may be the centre when no earlier run's document is in
             the bucket; earlier runs' documents are never linked together). The bucket is iterated
             twice and never materialised by this code, so a hub with 100k copies costs O(1) here.
             With ``verify_threshold``, a member whose estimated Jaccard with the centre is too low
             gets no edge from the centre; such members (at most ``max_bucket_verify`` per bucket)
             are then starred greedily among themselves in rank order.
  Components union-find over the edges (id pairs) and the ranks (``components.py``: memory
             bounded by the documents that share a bucket)
  Join       documents <- their cluster (CoGroupByKey on id) -> kept / rejected, index rows

Representative policy: ``representative.representative_key``, shared with exact dedup (earlier
runs' documents first, then the earliest ``crawl_date``, the lowest ``synthetic_score``, the
smallest id). A cluster's id is its representative's id, and its size counts every member,
including earlier runs' documents.

Bad input: empty texts (and, with ``short_text="skip"``, texts of fewer words than the shingle
size) get no signature and are kept as their own cluster of size 1; short texts otherwise form a
single shingle, so identical short texts match. A text whose ``text`` is not a string, or a
document without ``id``, goes to ``errors``. Batches hold at most ~1M characters (a bigger text is
a batch of its own); a text is hashed in slices of ~1M code points (``minhash._units``) and its
shingles permuted 2,048 at a time, so signing needs about 13 bytes per character of the batch
(copies of the text while normalizing and encoding; measured: +235 MB for one 18M-character text)
and never num_perm x shingles.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam import pvalue
from apache_beam.io import fileio
from apache_beam.io.fileio import EmptyMatchTreatment
from apache_beam.metrics import Metrics
from ouroboros.transforms.base import (
    ERRORS,
    KEPT,
    METRICS_NAMESPACE,
    REJECTED,
    DocumentStage,
    StageOutputs,
    Verdict,
    document_error,
    rejected,
    text_units,
)
from ouroboros.transforms.dedup.components import ID, ClusterInfo, ConnectedComponents, Rank
from ouroboros.transforms.dedup.minhash import (
    MinHashConfig,
    band_hashes,
    estimated_jaccard,
    signatures,
)
from ouroboros.transforms.dedup.representative import (
    NEW_TIER,
    PRIOR_TIER,
    representative_key,
    score_value,
)
from ouroboros.transforms.dedup.sketch import (
    KeySketch,
    ReadsSketches,
    SketchFile,
    as_keys,
    sketch_keys,
    store_sketch,
)
from ouroboros.transforms.io.staged import BANDS, SIGNATURE, staged_batches

STAGE = "near_dedup"

INDEX_SCHEMA = pa.schema([
    pa.field("id", pa.string()),
    pa.field("crawl_date", pa.string()),
    pa.field("synthetic_score", pa.float64()),
    pa.field("bands", pa.list_(pa.uint64())),
    pa.field("signature", pa.binary()),
    pa.field("index_params", pa.string()),
])


def _counter(name: str) -> Any:
    return Metrics.counter(METRICS_NAMESPACE, f"{STAGE}.{name}")


class _Sign(beam.DoFn):
    """A batch of documents -> (id, (doc, band hashes, signature bytes)); numpy over the batch."""

    def __init__(self, cfg: MinHashConfig):
        self._cfg = cfg
        self._signed = _counter("signed")
        self._unsigned = _counter("no_signature")
        self._in = _counter("in")

    def setup(self) -> None:
        self._bands, self._rows = self._cfg.band_rows

    def process(self, batch: Sequence[dict[str, Any]]) -> Iterable[Any]:
        good = []
        for doc in batch:
            self._in.inc()
            text = doc.get("text")
            if not doc.get("id") or not (text is None or isinstance(text, str)):
                yield pvalue.TaggedOutput(ERRORS, document_error(
                    doc, STAGE,
                    "document without id" if not doc.get("id") else f"text is {type(text).__name__}",
                    error_type="bad_document"))
            else:
                good.append(doc)
        if not good:
            return
        try:
            signed = self._sign(good)
        except Exception:  # noqa: BLE001 - find the document that breaks the batch
            signed = []
            for doc in good:
                try:
                    signed += self._sign([doc])
                except Exception as exc:  # noqa: BLE001 - hostile input must not crash the run
                    yield pvalue.TaggedOutput(ERRORS, document_error(doc, STAGE, exc))
        yield from signed

    def _sign(self, good: list[dict[str, Any]]) -> list[tuple]:
        sig, has_sig = signatures([d.get("text") for d in good], self._cfg)
        bands = band_hashes(sig, self._bands, self._rows)
        out = []
        for doc, s, h, ok in zip(good, sig, bands, has_sig):
            if ok:
                self._signed.inc()
                out.append((doc["id"], (doc, tuple(int(x) for x in h), s.tobytes())))
            else:
                self._unsigned.inc()
                out.append((doc["id"], (doc, None, None)))
        return out


RANKS = "ranks"  # the tagged output of a document's rank, once per document with band entries


def _member(rank: Rank, sig: bytes | None, keep_sig: bool) -> Any:
    """A band-bucket member: ``(rank, signature)`` when verifying (the centre must be the
    best-ranked member, the signatures are compared) or for an earlier run's document (its rank
    decides which one wins); otherwise just this run's document's id. Any of this run's documents
    can then be a bucket's centre, and its rank crosses the shuffle once (``RANKS``), not once per
    band: the bucket ``GroupByKey`` holds an id per entry (~100 bytes), not a rank (~500)."""
    if keep_sig:
        return rank, sig
    return rank[ID] if rank[0] == NEW_TIER else (rank, None)


def _member_rank(member: Any) -> Rank:
    return member[0] if isinstance(member, tuple) else (NEW_TIER,)


def _member_id(member: Any) -> str:
    return member[0][ID] if isinstance(member, tuple) else member


def _band_entries(kv: tuple[str, tuple], keep_sig: bool) -> Iterable[Any]:
    doc_id, (doc, bands, sig) = kv
    if bands is None:
        return
    rank = representative_key(doc_id, doc.get("crawl_date"), doc.get("synthetic_score"))
    yield pvalue.TaggedOutput(RANKS, rank)
    member = _member(rank, sig, keep_sig)
    for i, h in enumerate(bands):
        yield (i, h), member


class _ReadIndex(ReadsSketches):
    """Rows of an earlier run's band index -> band entries of tier-0 (already kept) members.

    With a sketch side input (``process(readable, sketch)``), only entries whose band key this
    run's documents may hold; with ``keys_only``, the band keys alone (for the index's sketch)."""

    def __init__(self, cfg: MinHashConfig, keep_sig: bool, keys_only: bool = False):
        self._params = cfg.index_params()
        self._keep_sig = keep_sig
        self._keys_only = keys_only
        self._docs = _counter("index_docs_read")

    def process(self, readable: Any, stored: KeySketch | SketchFile | None = None) -> Iterable[Any]:
        sketch = self._sketches.get(stored)
        with readable.open() as f:
            parquet = pq.ParquetFile(f)
            for batch in parquet.iter_batches(batch_size=4096):
                params = set(batch.column("index_params").to_pylist())
                if params - {self._params}:
                    raise ValueError(f"band index {readable.metadata.path} was written with other "
                                     f"MinHash parameters {sorted(params)}; this run uses "
                                     f"{self._params}")
                if self._keys_only:
                    for bands in batch.column("bands").to_pylist():
                        yield bands
                    continue
                rows = batch.select(["id", "crawl_date", "synthetic_score", "bands", "signature"])
                for doc_id, date, score, bands, sig in zip(*(c.to_pylist() for c in rows.columns)):
                    self._docs.inc()
                    rank = representative_key(doc_id, date, score, PRIOR_TIER)
                    member = _member(rank, sig, self._keep_sig)
                    wanted = (sketch.at_least(as_keys(bands), 1) if sketch is not None and bands
                              else [True] * len(bands))
                    if not any(wanted):
                        continue
                    yield pvalue.TaggedOutput(RANKS, rank)
                    for i, (h, ok) in enumerate(zip(bands, wanted)):
                        if ok:
                            yield (i, h), member


class _BucketEdges(beam.DoFn):
    """A band bucket -> star edges to its best-ranked member (optionally verified)."""

    def __init__(self, cfg: MinHashConfig):
        self._verify = cfg.verify_threshold
        self._cap = cfg.max_bucket_verify
        self._edges = _counter("candidate_edges")
        self._failed = _counter("verify_rejected")
        self._overflow = _counter("verify_bucket_overflow")

    def _similar(self, a: bytes, b: bytes) -> bool:
        return estimated_jaccard(np.frombuffer(a, np.uint32), np.frombuffer(b, np.uint32)) >= self._verify

    def process(self, kv: tuple[Any, Iterable[Any]]) -> Iterable[tuple[str, str]]:
        _, members = kv
        centre, top, n, any_new = None, None, 0, False
        for m in members:  # pass 1: the centre, O(1) memory
            n += 1
            rank = _member_rank(m)
            any_new = any_new or rank[0] == NEW_TIER
            if top is None or rank < top:
                centre, top = m, rank
        if n < 2 or not any_new:
            return
        centre_id = _member_id(centre)
        failed: list[tuple] = []
        for m in members:  # pass 2: the star
            member_id = _member_id(m)
            if member_id == centre_id or (_member_rank(m)[0] == PRIOR_TIER and top[0] == PRIOR_TIER):
                continue
            if self._verify is not None and not self._similar(centre[1], m[1]):
                self._failed.inc()
                if len(failed) < self._cap:
                    failed.append(m)
                else:
                    self._overflow.inc()
                continue
            self._edges.inc()
            yield centre_id, member_id
        centres: list[tuple] = []
        for m in sorted(failed, key=lambda x: x[0]):  # greedy stars among the leftovers
            for c in centres:
                if not (m[0][0] == c[0][0] == PRIOR_TIER) and self._similar(c[1], m[1]):
                    self._edges.inc()
                    yield c[0][ID], m[0][ID]
                    break
            else:
                centres.append(m)


class _Decide(beam.DoFn):
    """A document and its cluster -> kept (annotated), rejected, and its band-index row."""

    INDEX = "index"

    def __init__(self, drop: bool, index_params: str | None):
        self._drop = drop
        self._params = index_params
        self._kept = _counter("kept")
        self._dropped = _counter("dropped.near_duplicate_of")
        self._prior = _counter("dropped_by_earlier_run")

    def process(self, kv: tuple[str, dict[str, list]]) -> Iterable[Any]:
        doc_id, joined = kv
        infos: list[ClusterInfo] = list(joined["cluster"])
        for doc, bands, sig in joined["doc"]:
            info = infos[0] if infos else ClusterInfo(doc_id, 1, NEW_TIER)
            is_rep = info.representative == doc_id
            doc = {**doc, "dup_cluster_id": info.representative, "dup_cluster_size": info.size,
                   "dup_representative": is_rep}
            if not is_rep:
                doc = rejected(doc, STAGE, f"near_duplicate_of:{info.representative}", self._drop)
                if info.representative_tier == PRIOR_TIER:
                    self._prior.inc()
                self._dropped.inc()
                if self._drop:
                    yield pvalue.TaggedOutput(REJECTED, doc)
                    continue
            self._kept.inc()
            if self._params is not None and is_rep:  # unsigned ones too: their id says "kept"
                yield pvalue.TaggedOutput(self.INDEX, {
                    "id": doc_id, "crawl_date": doc.get("crawl_date"),
                    "synthetic_score": score_value(doc.get("synthetic_score")),
                    "bands": list(bands or ()), "signature": sig, "index_params": self._params})
            yield doc


class NearDedup(beam.PTransform):
    """Documents -> ``StageOutputs``: ``kept`` (annotated), ``rejected`` (near duplicates),
    ``errors`` (documents that cannot be signed).

    ``index_out``: directory to write the band index of the kept documents to (Parquet,
    ``minhash-index-*.parquet``). ``index_in``: globs of earlier runs' index files; new documents
    that duplicate one of them are dropped, the earlier document staying the representative.
    ``drop=False`` only annotates (``ouroboros tag``): duplicates stay in ``kept`` with
    ``reject_stage``/``reject_reason`` set.
    """

    def __init__(self, config: MinHashConfig | None = None, *, drop: bool = True,
                 index_out: str | None = None, index_in: Sequence[str] = (),
                 max_batch_size: int = 512):
        super().__init__(label=STAGE)
        self._cfg = config or MinHashConfig()
        self._drop = drop
        self._index_out = index_out
        self._index_in = tuple(index_in)
        self._max_batch = max_batch_size

    def expand(self, docs: Any) -> StageOutputs:
        cfg = self._cfg
        keep_sig = cfg.verify_threshold is not None
        signed = (docs
                  | "Batch" >> beam.BatchElements(  # batches of at most ~1M characters
                      min_batch_size=1, max_batch_size=self._max_batch, element_size_fn=text_units)
                  | "Sign" >> beam.ParDo(_Sign(cfg)).with_outputs(ERRORS, main="signed"))
        bands = signed.signed | "Bands" >> beam.FlatMap(_band_entries, keep_sig).with_outputs(
            RANKS, main="entries")
        entries, ranks = bands.entries, bands[RANKS]
        if self._index_in:
            prior = (docs.pipeline
                     | "IndexGlobs" >> beam.Create(list(self._index_in))
                     | "MatchIndex" >> fileio.MatchAll(EmptyMatchTreatment.ALLOW)
                     | "OpenIndex" >> fileio.ReadMatches()
                     | "ReadIndex" >> beam.ParDo(_ReadIndex(cfg, keep_sig)).with_outputs(
                         RANKS, main="entries"))
            entries = (entries, prior.entries) | "WithIndex" >> beam.Flatten()
            ranks = (ranks, prior[RANKS]) | "WithIndexRanks" >> beam.Flatten()
        edges = (entries
                 | "GroupBuckets" >> beam.GroupByKey()
                 | "Buckets" >> beam.ParDo(_BucketEdges(cfg)))
        clusters = ((edges, ranks)
                    | "Components" >> ConnectedComponents()
                    | "ById" >> beam.Map(lambda node: (node[0], node[1])))
        decided = ({"doc": signed.signed, "cluster": clusters}
                   | "JoinClusters" >> beam.CoGroupByKey()
                   | "Decide" >> beam.ParDo(_Decide(
                       self._drop, cfg.index_params() if self._index_out else None)
                   ).with_outputs(REJECTED, _Decide.INDEX, main=KEPT))
        if self._index_out:
            _ = (decided[_Decide.INDEX]
                 | "WriteIndex" >> beam.io.WriteToParquet(
                     self._index_out.rstrip("/") + "/minhash-index", INDEX_SCHEMA,
                     file_name_suffix=".parquet"))
        return StageOutputs(decided[KEPT], decided[REJECTED], signed[ERRORS])


# ---------------------------------------------------------------------------------------------
# Deciding on keys: the pipeline's near dedup (see the module docstring).

NEAR = "near"  # the kind of a decision record: (file, (NEAR, id, ClusterInfo))


class BadDocument(ValueError):
    error_type = "bad_document"


class MinHashKeys(DocumentStage):
    """Per-document: the document's LSH band hashes (``_bands``; null when it has no shingles)
    and, with ``verify_threshold``, its signature (``_signature``). Never rejects; a document
    that cannot be signed is a near_dedup error."""

    name = "minhash"
    error_stage = STAGE
    batch_size = 512

    def __init__(self, config: MinHashConfig | None = None):
        self.config = config or MinHashConfig()

    def process(self, doc: Mapping[str, Any]) -> Verdict:
        return self.process_batch([doc])[0]

    def process_batch(self, docs: Sequence[Mapping[str, Any]]) -> list[Verdict]:
        for doc in docs:
            text = doc.get("text")
            if not doc.get("id"):
                raise BadDocument("document without id")
            if not (text is None or isinstance(text, str)):
                raise BadDocument(f"text is {type(text).__name__}")
        bands_n, rows_n = self.config.band_rows
        sig, has_sig = signatures([d.get("text") for d in docs], self.config)
        bands = band_hashes(sig, bands_n, rows_n)
        keep_sig = self.config.verify_threshold is not None
        return [Verdict({BANDS: [int(x) for x in h] if ok else None,
                         SIGNATURE: s.tobytes() if ok and keep_sig else None})
                for s, h, ok in zip(sig, bands, has_sig)]


def band_keys(doc: Mapping[str, Any]) -> list[int]:
    """The band hashes a staged document carries (for ``SketchKeys``)."""
    return doc.get(BANDS) or []


class _StagedBandEntries(ReadsSketches):
    """(staged file, its decisions so far) -> ((band, hash), member) for the near-dedup members of
    the file whose band key may be shared: seen twice in this run, or in an earlier run's index."""

    COLUMNS = ("id", "crawl_date", "synthetic_score", BANDS, SIGNATURE)

    def __init__(self, is_member: Any, keep_sig: bool, member_columns: Sequence[str]):
        self._is_member = is_member
        self._keep_sig = keep_sig
        self._columns = tuple(dict.fromkeys((*self.COLUMNS, *member_columns)))
        self._entries = _counter("band_entries_shuffled")

    def process(self, element: tuple[str, Any], stored: KeySketch | SketchFile,
                stored_prior: KeySketch | SketchFile | None = None) -> Iterable[Any]:
        sketch, prior = self._sketches.get(stored), self._sketches.get(stored_prior)
        path, decisions = element
        for batch in staged_batches(path, self._columns):
            for row in batch.to_pylist():
                bands = row[BANDS]
                if not bands or not self._is_member(row, decisions):
                    continue
                keys = as_keys(bands)
                wanted = (sketch.at_least(keys, 2) if sketch is not None
                          else np.zeros(len(keys), dtype=bool))
                if prior is not None:
                    wanted |= prior.at_least(keys, 1)
                if not wanted.any():
                    continue
                rank = representative_key(row["id"], row["crawl_date"], row["synthetic_score"]) + (path,)
                member = _member(rank, row[SIGNATURE], self._keep_sig)
                yield pvalue.TaggedOutput(RANKS, rank)
                for i in np.flatnonzero(wanted):
                    self._entries.inc()
                    yield (int(i), bands[i]), member


def _decision(node: tuple[str, ClusterInfo, str | None]) -> Iterable[tuple[str, tuple]]:
    doc_id, info, path = node
    if path:  # documents of earlier runs (no staged file) need no decision
        yield path, (NEAR, doc_id, info)


class NearDecisions(beam.PTransform):
    """(staged file, decisions so far) pairs -> ``(file, (NEAR, id, ClusterInfo))`` for every
    document of this run that has a near duplicate (others are clusters of one).

    ``sketch``: a one-element PCollection, the ``KeySketch`` of every staged band key (or the
    ``SketchFile`` holding it). ``sketch_dir``: where to store the earlier runs' index sketch
    (None: it stays a side input).
    ``is_member(row, decisions)``: does a staged row take part (it survived the earlier stages)?
    ``index_in``: earlier runs' band-index globs, whose documents (tier 0) win their clusters.
    """

    def __init__(self, config: MinHashConfig, sketch: Any, is_member: Any,
                 member_columns: Sequence[str] = (), index_in: Sequence[str] = (),
                 sketch_dir: str | None = None):
        super().__init__(label=STAGE)
        self._cfg = config
        self._sketch = sketch
        self._sketch_dir = sketch_dir
        self._is_member = is_member
        self._member_columns = tuple(member_columns)
        self._index_in = tuple(index_in)

    def expand(self, files: Any) -> Any:
        cfg = self._cfg
        keep_sig = cfg.verify_threshold is not None
        sketch = pvalue.AsSingleton(self._sketch, default_value=None)
        prior_sketch, prior = None, None
        if self._index_in:
            opened = (files.pipeline
                      | "IndexGlobs" >> beam.Create(list(self._index_in))
                      | "MatchIndex" >> fileio.MatchAll(EmptyMatchTreatment.ALLOW)
                      | "OpenIndex" >> fileio.ReadMatches())
            index_sketch = (opened
                            | "IndexKeys" >> beam.ParDo(_ReadIndex(cfg, keep_sig, keys_only=True))
                            | "SketchIndex" >> sketch_keys())
            if self._sketch_dir is not None:
                index_sketch = index_sketch | "StoreIndexSketch" >> beam.Map(
                    store_sketch, self._sketch_dir, "index-bands")
            prior_sketch = pvalue.AsSingleton(index_sketch, default_value=None)
            prior = opened | "ReadIndex" >> beam.ParDo(
                _ReadIndex(cfg, keep_sig), sketch).with_outputs(RANKS, main="entries")
        staged = files | "BandEntries" >> beam.ParDo(
            _StagedBandEntries(self._is_member, keep_sig, self._member_columns), sketch,
            *([prior_sketch] if prior_sketch is not None else [])).with_outputs(RANKS, main="entries")
        entries, ranks = staged.entries, staged[RANKS]
        if prior is not None:
            entries = (entries, prior.entries) | "WithIndex" >> beam.Flatten()
            ranks = (ranks, prior[RANKS]) | "WithIndexRanks" >> beam.Flatten()
        edges = (entries
                 | "GroupBuckets" >> beam.GroupByKey()
                 | "Buckets" >> beam.ParDo(_BucketEdges(cfg)))
        return ((edges, ranks)
                | "Components" >> ConnectedComponents()
                | "ByFile" >> beam.FlatMap(_decision))

"""The write path of the Qdrant store: the transaction writer, garbage collection, check.

See ``store/qdrant.py`` for the crash-safety design (write ids ``born`` / ``died``, one state
point as the commit).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from qdrant_client import models

from aspectrag.errors import IndexMismatchError
from aspectrag.store.base import CheckReport, SpaceSpec, check_vectors
from aspectrag.store.qdrant_model import (
    SPARSE,
    STATE_ID,
    match,
    point_id,
    source_keys,
    visible,
)
from aspectrag.types import Chunk, Document


def _range(key: str, **bounds: int) -> models.FieldCondition:
    return models.FieldCondition(key=key, range=models.Range(**bounds))


def collect_garbage(store: Any, committed: int) -> list[str]:
    """Delete the points of unfinished transactions (``born > committed``), clear their
    deletion marks (``died > committed``) and delete superseded versions (``died <=
    committed``), in both collections; returns one line per collection with something done.
    Idempotent (a crash inside it is repaired by the next call)."""
    c = store.client
    lines = []
    for name in (store.collection, store.meta_collection):
        if not c.collection_exists(name):
            continue
        unfinished = models.Filter(must=[_range("born", gt=committed)])
        marked = models.Filter(must=[_range("died", gt=committed)])
        dead = models.Filter(must=[_range("died", lte=committed)])
        counts = [c.count(name, count_filter=f, exact=True).count
                  for f in (unfinished, marked, dead)]
        if counts[0]:
            c.delete(name, points_selector=models.FilterSelector(filter=unfinished), wait=True)
        if counts[1]:
            c.delete_payload(name, keys=["died"], points=models.FilterSelector(filter=marked),
                             wait=True)
        if counts[2]:
            c.delete(name, points_selector=models.FilterSelector(filter=dead), wait=True)
        if any(counts):
            lines.append(f"{name}: removed {counts[0]} unfinished and {counts[2]} superseded "
                         f"versions, kept {counts[1]} marked by an unfinished write")
    return lines


class QdrantWriter:
    """Mutations of one ``QdrantStore.writer()`` transaction (write id ``T = committed + 1``);
    implements :class:`aspectrag.store.base.StoreWriter`. Points are written at once but stay
    invisible until :meth:`commit` writes the state point."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.location = store.location
        state = store.read_state()
        self.committed = int(state["committed"])
        self.write_id = self.committed + 1
        collect_garbage(store, self.committed)
        self.meta: dict[str, str] = dict(state["meta"])
        self.spaces: list[SpaceSpec] | None = (
            [SpaceSpec.from_dict(d) for d in state["spaces"]] if state["spaces"] else None)
        self.next_seq = int(state["next_seq"])
        self.avgdl: float | None = state["avgdl"]
        self.changed = False
        self._has_chunks = store.stats()["chunks"] > 0 if self.spaces is None else True
        self._new: dict[str, tuple[list[str], str]] = {}  # source -> (chunk point ids, doc id)
        self._killed: set[str] = set()
        self._deferred: list[tuple[str, list[str]]] = []  # (point id, tokens): sparse at commit
        self._created = False
        self._pending: dict[str, list[Any]] = {store.collection: [], store.meta_collection: []}
        self._committed_sources: set[str] | None = None  # read once, on the first delete

    # -- StoreWriter ---------------------------------------------------------------------------
    def declare_spaces(self, specs: Sequence[SpaceSpec]) -> None:
        if self.spaces is None:
            if self._has_chunks:
                raise IndexMismatchError(
                    f"index {self.location} holds chunks without declared vector spaces; "
                    "write to a new collection")
            self.spaces = list(specs)
            self.store.ensure_collections(self.spaces)
            self._created = True
            return
        if sorted(self.spaces, key=lambda s: s.name) != sorted(specs, key=lambda s: s.name):
            raise IndexMismatchError(
                f"index {self.location} holds vector spaces "
                f"{[(s.name, s.dim) for s in self.spaces]} but the embedder gives "
                f"{[(s.name, s.dim) for s in specs]}; use the embedder that built it, or a new "
                "collection")

    def set_meta(self, key: str, value: str) -> None:
        self.meta[key] = value
        self.changed = True

    def delete(self, source: str) -> int:
        """Delete the document with exactly this source (marks its committed version
        ``died = T``; drops a version written earlier in this transaction)."""
        c = self.store.client
        if source in self._new:
            ids, doc_pid = self._new.pop(source)
            self._delete_ids(ids, doc_pid)
            return len(ids)
        if source in self._killed:
            return 0
        if self._committed_sources is None:
            self._committed_sources = set(self.store.sources()) if self.committed else set()
        if source not in self._committed_sources:
            return 0
        flt = visible(self.committed, match("source", source))
        n = int(c.count(self.store.collection, count_filter=flt, exact=True).count) \
            if c.collection_exists(self.store.collection) else 0
        for name in (self.store.collection, self.store.meta_collection):
            if c.collection_exists(name):
                c.set_payload(name, payload={"died": self.write_id},
                              points=models.FilterSelector(filter=flt), wait=True)
        self._killed.add(source)
        self.changed = True
        return n

    def upsert(self, doc: Document, chunks: Sequence[Chunk],
               vectors: Mapping[str, np.ndarray]) -> None:
        for space, arr in vectors.items():
            if arr.shape[0] != len(chunks):
                raise ValueError(f"vectors['{space}'] has {arr.shape[0]} rows for "
                                 f"{len(chunks)} chunks of {doc.source}")
        self._check_spaces(doc, vectors)
        if not self._created and not self.store.client.collection_exists(self.store.collection):
            self.store.ensure_collections(self.spaces or [])
            self._created = True
        self.delete(doc.source)
        self.store.ensure_collections(None)
        tokens = self.store.weigher.tokens([ch.index_text() for ch in chunks])
        weights = (self.store.weigher.documents(tokens, self.avgdl)
                   if self.avgdl is not None else None)
        keys = source_keys(doc.source)
        points, ids = [], []
        stored = self.store.as_stored(vectors)  # float16 named vectors: rounded here
        for i, ch in enumerate(chunks):
            pid = point_id("chunk", ch.chunk_id, self.write_id)
            vec: dict[str, Any] = {s: a[i].tolist() for s, a in stored.items()}
            if weights is None:
                self._deferred.append((pid, tokens[i]))
            elif weights[i][0]:
                vec[SPARSE] = models.SparseVector(indices=weights[i][0], values=weights[i][1])
            payload = {"chunk_id": ch.chunk_id, "doc_id": doc.doc_id, "source": doc.source,
                       "title": doc.title, "index": ch.index, "text": ch.text,
                       "start": ch.start, "end": ch.end, "page": ch.page, "heading": ch.heading,
                       "seq": self.next_seq, "born": self.write_id, **keys}
            self.next_seq += 1
            points.append(models.PointStruct(id=pid, vector=vec, payload=payload))
            ids.append(pid)
        doc_pid = point_id("doc", doc.source, self.write_id)
        self._new[doc.source] = (ids, doc_pid)  # before writing: a failed write is rolled back
        self._write(self.store.collection, points)
        doc_payload = {"kind": "doc", "source": doc.source, "doc_id": doc.doc_id,
                       "title": doc.title, "fingerprint": doc.fingerprint,
                       "metadata": doc.metadata, "text_length": len(doc.text),
                       "sections": [[s.start, s.end, s.page, s.heading] for s in doc.sections],
                       "chunks": len(chunks), "seq": self.next_seq, "born": self.write_id}
        self.next_seq += 1
        self._write(self.store.meta_collection, [models.PointStruct(
            id=doc_pid, vector={}, payload=doc_payload)])
        self.changed = True

    def _write(self, name: str, points: list[Any]) -> None:
        """Queue ``points`` for collection ``name`` and upsert full batches of
        ``store.batch_points`` (many small documents share one request; the rest goes at
        :meth:`flush`). Queued points are invisible like written ones until the commit."""
        pending = self._pending[name]
        pending += points
        n = self.store.batch_points
        while len(pending) >= n:
            self.store.client.upsert(name, pending[:n], wait=True)
            del pending[:n]

    def flush(self) -> None:
        """Upsert every queued point (before a commit, or before deleting queued points)."""
        for name, pending in self._pending.items():
            for j in range(0, len(pending), self.store.batch_points):
                self.store.client.upsert(name, pending[j : j + self.store.batch_points],
                                         wait=True)
            pending.clear()

    # -- commit / rollback ---------------------------------------------------------------------
    def commit(self) -> None:
        """Write the deferred BM25 weights (first write: ``avgdl`` is known now), then the
        state point with ``committed = T``: the one step that makes the transaction visible."""
        if not self.changed and not self._created:
            return
        self.flush()
        self._write_deferred()
        self.store.ensure_collections(None)
        state = {"committed": self.write_id, "meta": self.meta,
                 "spaces": [s.to_dict() for s in self.spaces or []],
                 "next_seq": self.next_seq, "avgdl": self.avgdl,
                 "written": time.strftime("%Y-%m-%d %H:%M:%S")}
        self.store.client.upsert(self.store.meta_collection, [models.PointStruct(
            id=STATE_ID, vector={}, payload=state)], wait=True)

    def rollback(self) -> None:
        """Remove this transaction's marks now (best effort: else the next writer does)."""
        for pending in self._pending.values():
            pending.clear()
        try:
            collect_garbage(self.store, self.committed)
        except Exception:  # the server may be what failed; nothing of T is visible anyway
            pass

    def _write_deferred(self) -> None:
        if not self._deferred:
            return
        lengths = [len(t) for _, t in self._deferred]
        self.avgdl = float(np.mean(lengths)) if sum(lengths) else 1.0
        weights = self.store.weigher.documents([t for _, t in self._deferred], self.avgdl)
        upd = [models.PointVectors(id=pid, vector={SPARSE: models.SparseVector(
            indices=w[0], values=w[1])}) for (pid, _), w in zip(self._deferred, weights, strict=True)
            if w[0]]
        live = {pid for ids, _ in self._new.values() for pid in ids}
        upd = [u for u in upd if u.id in live]  # versions dropped again in this transaction
        for j in range(0, len(upd), self.store.batch_points):
            self.store.client.update_vectors(self.store.collection,
                                             upd[j : j + self.store.batch_points], wait=True)
        self._deferred = []

    def _delete_ids(self, ids: list[str], doc_pid: str) -> None:
        self.flush()
        c = self.store.client
        for j in range(0, len(ids), self.store.batch_points):
            c.delete(self.store.collection, points_selector=models.PointIdsList(
                points=ids[j : j + self.store.batch_points]), wait=True)
        c.delete(self.store.meta_collection,
                 points_selector=models.PointIdsList(points=[doc_pid]), wait=True)

    def _check_spaces(self, doc: Document, vectors: Mapping[str, np.ndarray]) -> None:
        if not vectors:
            return
        if self.spaces is None:
            self.declare_spaces([SpaceSpec(s, int(v.shape[1])) for s, v in vectors.items()])
        dims = {s.name: s.dim for s in self.spaces or []}
        check_vectors(doc.source, self.location, dims, vectors)


def check_store(store: Any, *, quick: bool = False) -> CheckReport:
    """The check of ``QdrantStore.check`` (``quick``: skip counting stale versions)."""
    problems: list[str] = []
    notes: list[str] = []
    state = store.read_state()
    c = int(state["committed"])
    specs = [SpaceSpec.from_dict(d) for d in state["spaces"]]
    notes.append(f"Qdrant collection {store.collection}: committed write {c}, spaces "
                 f"{[(s.name, s.dim, s.distance) for s in specs]}, BM25 avgdl {state['avgdl']}")
    if c and specs and not store._exists(store.collection):
        problems.append(f"collection {store.collection} is missing but the state records "
                        f"{len(specs)} vector spaces: the data is lost; re-ingest (cannot repair)")
        return CheckReport(problems, notes, repairable=False)
    if specs and store._exists(store.collection):
        info = store.client.get_collection(store.collection)
        have = info.config.params.vectors or {}
        for s in specs:
            got = have.get(s.name) if isinstance(have, dict) else None
            if got is None or int(got.size) != s.dim:
                problems.append(f"collection {store.collection}: vector {s.name!r} is missing "
                                f"or not {s.dim}-dimensional; re-ingest (cannot repair)")
    if not quick:
        for name in (store.collection, store.meta_collection):
            if not store._exists(name):
                continue
            stale = store.client.count(name, count_filter=models.Filter(should=[
                _range("born", gt=c), models.FieldCondition(
                    key="died", range=models.Range(gte=-(2**62)))]), exact=True).count
            if stale:
                notes.append(f"{name}: {stale} unfinished or superseded point versions "
                             "(collected by the next write, or `aspectrag repair`)")
    docs = store.stats()
    notes.append(f"{docs['documents']} documents, {docs['chunks']} chunks")
    return CheckReport(problems, notes, repairable=not problems)


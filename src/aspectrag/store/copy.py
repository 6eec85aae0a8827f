"""Copying an index from one store to another (any two backends) without re-embedding.

The copy goes through the ``Store`` protocol only: documents (``get_document``), chunks in
insertion order (``iter_chunks``), the stored vectors of every declared dense space
(``get_vectors``) and the index metadata (``meta_keys`` / ``get_meta``) are written into the
destination in one ``writer()`` transaction, so the copy is all or nothing and searches the same
vectors. What is not copied: derived indexes (the destination builds its own: SQLite's bm25s
and dense matrices on ``refresh``, Qdrant's sparse BM25 weights at the commit), side files
(rerank token caches) and document texts (stores keep only the chunks' texts).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from aspectrag.errors import AspectragError
from aspectrag.store.base import CAP_DERIVED_INDEXES, Store, StoreWriter
from aspectrag.types import Chunk

BATCH_CHUNKS = 512
"""Chunks whose vectors are read with one ``get_vectors`` call per space."""


@dataclass(slots=True)
class CopyReport:
    """What :func:`copy_store` copied: counts of documents, chunks and vector rows (all spaces),
    and the metadata keys."""

    documents: int
    chunks: int
    vectors: int
    meta_keys: list[str]


def _documents(src: Store) -> Iterator[tuple[str, list[Chunk]]]:
    """``(source, its chunks)`` in insertion order; every document once (chunk-less ones last)."""
    seen: set[str] = set()
    current: list[Chunk] = []
    for ch in src.iter_chunks():
        if current and ch.source != current[0].source:
            yield current[0].source, current
            current = []
        if not current and ch.source in seen:
            raise AspectragError(f"index {src.location}: the chunks of {ch.source} are not "
                                 "contiguous in insertion order; cannot copy it")
        if not current:
            seen.add(ch.source)
        current.append(ch)
    if current:
        yield current[0].source, current
    for source in src.sources():
        if source not in seen:
            yield source, []


def _write_batch(src: Store, w: StoreWriter, docs: Sequence[tuple[str, list[Chunk]]],
                 spaces: Sequence[tuple[str, int]]) -> int:
    ids = [c.chunk_id for _, chunks in docs for c in chunks]
    mats = {name: src.get_vectors(name, ids) if ids else np.zeros((0, dim), np.float32)
            for name, dim in spaces}
    row = 0
    for source, chunks in docs:
        doc = src.get_document(source)
        if doc is None:
            raise AspectragError(f"index {src.location}: chunks of {source} but no document")
        n = len(chunks)
        w.upsert(doc, chunks, {name: m[row : row + n] for name, m in mats.items()})
        row += n
    return len(ids) * len(spaces)


def copy_store(src: Store, dst: Store, *,
               on_progress: Callable[[int, int], None] | None = None) -> CopyReport:
    """Copy every document, chunk, stored vector and metadata entry of ``src`` into the empty
    store ``dst`` in one transaction (module doc), reading ``src`` at one committed state.

    Args:
        src: the index to copy (read only).
        dst: an empty store of any backend, opened for writing.
        on_progress: called as ``on_progress(chunks_done, chunks_total)`` after each batch.

    Returns:
        a :class:`CopyReport`.

    Raises:
        AspectragError: ``dst`` is not empty, or ``src`` is inconsistent (a chunk without its
            document, a document's chunks interleaved with another's).
        aspectrag.errors.StoreError: either backend failed (``dst`` is then unchanged).
    """
    if dst.stats()["documents"]:
        raise AspectragError(f"index {dst.location} is not empty; copy into a new index")
    with src.reading():
        specs = src.spaces()
        spaces = [(s.name, s.dim) for s in specs if s.kind == "dense"]
        total = src.stats()["chunks"]
        done = n_docs = n_vec = 0
        keys = src.meta_keys()
        with dst.writer() as w:
            if specs:
                w.declare_spaces(specs)
            batch: list[tuple[str, list[Chunk]]] = []
            size = 0
            for source, chunks in _documents(src):
                batch.append((source, chunks))
                size += len(chunks)
                if size >= BATCH_CHUNKS:
                    n_vec += _write_batch(src, w, batch, spaces)
                    n_docs, done, batch, size = n_docs + len(batch), done + size, [], 0
                    if on_progress is not None:
                        on_progress(done, total)
            if batch:
                n_vec += _write_batch(src, w, batch, spaces)
                n_docs, done = n_docs + len(batch), done + size
            for key in keys:
                value = src.get_meta(key)
                if value is not None:
                    w.set_meta(key, value)
    if CAP_DERIVED_INDEXES in dst.capabilities:
        dst.refresh()
    if on_progress is not None:
        on_progress(done, total)
    return CopyReport(n_docs, done, n_vec, keys)

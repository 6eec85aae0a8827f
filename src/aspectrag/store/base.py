"""The ``Store`` protocol: durable documents, chunks and vectors, plus search over them.

Everything above the store (retrievers, generators, the CLI) talks to it only through this
protocol: it must not assume in-process arrays, so that a remote backend (Qdrant: one named
vector per space, sparse vectors for BM25) can implement it too.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from aspectrag.types import Chunk, Document


@dataclass(slots=True)
class ScoredId:
    """A chunk id with the score a search gave it (higher is better)."""

    chunk_id: str
    score: float


class StoreWriter(Protocol):
    """Mutations inside one ``Store.writer()`` transaction; all or nothing."""

    def upsert(
        self, doc: Document, chunks: Sequence[Chunk], vectors: Mapping[str, np.ndarray]
    ) -> None:
        """Insert ``doc`` and its ``chunks``, replacing any earlier version with the same source.

        ``vectors[space]`` is float32 with shape ``(len(chunks), d_space)``, row i for chunk i.
        """
        ...

    def delete(self, source: str) -> int:
        """Delete the document(s) with this source; returns the number of chunks removed."""
        ...


@runtime_checkable
class Store(Protocol):
    """A durable index of documents, chunks and named vector spaces.

    Raises:
        aspectrag.errors.IndexMismatchError: when vectors from a different embedder are written.
    """

    def writer(self) -> AbstractContextManager[StoreWriter]:
        """A write transaction: commits on normal exit, rolls back on exception or process death."""
        ...

    def fingerprint(self, source: str) -> str | None:
        """Fingerprint recorded for ``source`` at its last ingest, or None if unknown."""
        ...

    def sources(self) -> list[str]:
        """All document sources in the store."""
        ...

    def stats(self) -> dict[str, int]:
        """``{"documents": n, "chunks": m}``."""
        ...

    def get_chunks(self, chunk_ids: Sequence[str]) -> list[Chunk]:
        """Chunks by id, in the given order. Raises KeyError for an unknown id."""
        ...

    def iter_chunks(self) -> Iterator[Chunk]:
        """All chunks, in insertion order."""
        ...

    def get_meta(self, key: str) -> str | None:
        """Index-level metadata (e.g. ``"embedder"``)."""
        ...

    def set_meta(self, key: str, value: str) -> None: ...

    def vector_spaces(self) -> list[str]:
        """Names of the vector spaces stored (e.g. ``["dense", "head0", ...]``)."""
        ...

    def keyword_search(
        self, queries: Sequence[str], k: int, sources: Sequence[str] | None = None
    ) -> list[list[ScoredId]]:
        """BM25 search; one ranked list (best first, at most k) per query."""
        ...

    def vector_search(
        self, space: str, queries: np.ndarray, k: int, sources: Sequence[str] | None = None
    ) -> list[list[ScoredId]]:
        """Inner-product search in ``space``; ``queries`` is float32 of shape ``(q, d_space)``.
        One ranked list (best first, at most k) per query row."""
        ...

    def get_vectors(self, space: str, chunk_ids: Sequence[str]) -> np.ndarray:
        """Stored vectors of ``chunk_ids`` in ``space``: float32, shape ``(len(chunk_ids), d)``."""
        ...

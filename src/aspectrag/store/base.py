"""The ``Store`` protocol: durable documents, chunks and vectors, plus search over them.

Everything above the store (retrievers, generators, the CLI) talks to it only through this
protocol. It is designed against two data models: SQLite (this package's embedded default:
multi-row transactions, files beside the database) and Qdrant (named vectors fixed when the
collection is created, sparse vectors with an IDF modifier, payload filters, no multi-point
transactions). So:

- vector spaces are declared up front as :class:`SpaceSpec` (``StoreWriter.declare_spaces``,
  recorded at the first write; ``Store.spaces()`` reads them back) and never inferred from data;
- index metadata is written through the writer (``StoreWriter.set_meta``), so it commits with
  the data of that transaction;
- optional features are declared in ``Store.capabilities`` (see the ``CAP_*`` names), never
  probed with ``getattr``;
- the source filter has one meaning, defined here (:func:`source_matches`), that every backend
  implements exactly;
- a store is named by a location string (``aspectrag.store.factory.build_store``) and gives out
  the paths of its side files (:meth:`Store.side_path`), so callers never assume a folder.

Source filter (``sources=`` of the searches, and ``remove``): a chunk passes when its document's
source ``s`` satisfies, for some filter value ``f``:

- ``s == f`` (exact source), or
- ``s`` starts with ``f.rstrip("/") + "/"`` (``f`` is a folder: everything below it), or
- ``s`` starts with ``f + "#"`` (``f`` is a corpus file: every document in it, BEIR
  ``corpus.jsonl#<_id>``).

Comparison is on the exact Unicode code points: case-sensitive, no normalisation, and no
character is a wildcard (``_``, ``%``, ``*``, ``?``, ``[`` match only themselves). An empty
filter list or None means no filter.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from aspectrag.types import Chunk, Document

#: ``Store.vector_search_spaces`` is a real batched implementation (cheaper than a loop).
CAP_BATCHED_VECTOR_SEARCH = "batched_vector_search"
#: ``Store.refresh`` rebuilds derived indexes (call it after a write, not on the first query).
CAP_DERIVED_INDEXES = "derived_indexes"
#: ``Store.side_path`` returns local paths for side files (caches beside the index).
CAP_SIDE_FILES = "side_files"
#: one ``Store.writer()`` transaction is atomic over many documents.
CAP_TRANSACTIONS = "transactions"
#: ``Store.check`` / ``Store.repair`` do something (integrity check, rebuild derived indexes).
CAP_CHECK = "check"

Distance = Literal["ip", "cosine"]
SpaceKind = Literal["dense", "sparse"]

DERIVED_IO_LOCK = threading.Lock()
"""Serialises reading and writing derived-index files (``.npy``/``.npz``, bm25s folders) within
a process: numpy's header parser (``ast.literal_eval``) is not thread-safe on CPython 3.11.7
(``SystemError: AST constructor recursion depth mismatch`` when threads load at once), and two
``Index`` objects over one folder must not swap a folder another is writing."""


@dataclass(frozen=True, slots=True)
class SpaceSpec:
    """One named vector space, fixed when the index is first written.

    Attributes:
        name: the space name (``"dense"``, ``"head0"``...), as the embedder returns it.
        dim: vector size (for sparse spaces: the vocabulary size, 0 if unbounded).
        distance: ``"ip"`` (inner product; vectors stored as given) or ``"cosine"``.
        kind: ``"dense"`` (float32 rows) or ``"sparse"`` (Qdrant sparse vectors, e.g. BM25).
    """

    name: str
    dim: int
    distance: Distance = "ip"
    kind: SpaceKind = "dense"

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "dim": self.dim, "distance": self.distance, "kind": self.kind}

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> SpaceSpec:
        return cls(str(d["name"]), int(d["dim"]), d.get("distance", "ip"),  # type: ignore[arg-type, call-overload]
                   d.get("kind", "dense"))  # type: ignore[arg-type]


def specs_of_vectors(vectors: Mapping[str, np.ndarray]) -> list[SpaceSpec]:
    """Dense inner-product space specs of one embedder output ``{space: (n, d) float32}``
    (what the ingest pipeline declares before its first write)."""
    return [SpaceSpec(name, int(np.asarray(v).shape[1])) for name, v in vectors.items()]


def source_matches(source: str, filters: Sequence[str] | None) -> bool:
    """The reference semantics of the source filter (see the module doc): True when
    ``filters`` is empty/None or ``source`` is one of them, below one as a folder, or inside
    one as a corpus file. Case-sensitive, no wildcards."""
    if not filters:
        return True
    return any(source == f or source.startswith(f.rstrip("/") + "/") or source.startswith(f + "#")
               for f in filters)


def chunk_key(source: str, index: int) -> str:
    """The stable chunk id of chunk ``index`` of the document at ``source``:
    ``f"{source}#{index}"``. Unique in an index because sources are (a BEIR document's
    source ``corpus.jsonl#<_id>`` names its corpus file, so equal ``_id``s in two corpus files
    differ), and ``source``/``index`` are recovered with ``rsplit("#", 1)``."""
    return f"{source}#{index}"


def check_vectors(source: str, location: object, dims: Mapping[str, int],
                  vectors: Mapping[str, np.ndarray]) -> None:
    """Check a document's vectors against the index's declared spaces (``dims``: space name ->
    dimension): every space declared, every array ``(n_chunks, dim)``, none missing.

    Raises:
        aspectrag.errors.IndexMismatchError: naming ``source``, the space and ``location``.
    """
    from aspectrag.errors import IndexMismatchError

    for space, arr in vectors.items():
        if space not in dims:
            raise IndexMismatchError(
                f"{source}: vector space {space!r} is not declared in index "
                f"{location} (spaces: {sorted(dims)})")
        if arr.ndim != 2 or arr.shape[1] != dims[space]:
            raise IndexMismatchError(
                f"{source}: vectors of space {space!r} have shape {arr.shape}, the index "
                f"{location} stores {dims[space]} dims; was it built with another embedder?")
    missing = set(dims) - set(vectors)
    if missing:
        raise IndexMismatchError(
            f"{source}: no vectors for the declared spaces {sorted(missing)} of index {location}")


@dataclass(slots=True)
class ScoredId:
    """A chunk id with the score a search gave it (higher is better)."""

    chunk_id: str
    score: float


@dataclass(slots=True)
class CheckReport:
    """What :meth:`Store.check` found.

    Attributes:
        ok: True when nothing is wrong (``problems`` empty).
        problems: one line each: what is wrong and whether ``repair`` can fix it.
        notes: facts worth showing (embedder, spaces, sizes).
        repairable: True when every problem can be fixed by :meth:`Store.repair`.
    """

    problems: list[str]
    notes: list[str]
    repairable: bool = True

    @property
    def ok(self) -> bool:
        return not self.problems


class StoreWriter(Protocol):
    """Mutations inside one ``Store.writer()`` transaction; all or nothing."""

    def declare_spaces(self, specs: Sequence[SpaceSpec]) -> None:
        """Record the vector spaces of this index (first write), or check that ``specs`` equal
        the recorded ones. Must precede the first :meth:`upsert` with vectors.

        Raises:
            aspectrag.errors.IndexMismatchError: a space exists with another dim/distance/kind,
                or the set of spaces differs from the recorded one.
        """
        ...

    def upsert(
        self, doc: Document, chunks: Sequence[Chunk], vectors: Mapping[str, np.ndarray]
    ) -> None:
        """Insert ``doc`` and its ``chunks``, replacing any earlier version with the same source.

        ``vectors[space]`` is float32 with shape ``(len(chunks), d_space)``, row i for chunk i,
        one entry per declared space. Chunk ids are stored as given (the pipeline uses
        :func:`chunk_key`).

        Raises:
            aspectrag.errors.IndexMismatchError: undeclared space or wrong dimension.
            ValueError: a vectors array without one row per chunk.
        """
        ...

    def delete(self, source: str) -> int:
        """Delete the document with exactly this source; returns the number of chunks removed."""
        ...

    def set_meta(self, key: str, value: str) -> None:
        """Set index-level metadata; commits (or rolls back) with this transaction."""
        ...


@runtime_checkable
class Store(Protocol):
    """A durable index of documents, chunks and named vector spaces.

    Attributes:
        location: the string the store was opened from (folder path or ``scheme://...``).
        readonly: opened for reading only (``writer()`` raises).
        capabilities: the optional features this backend offers (``CAP_*`` names).

    Raises:
        aspectrag.errors.IndexMismatchError: when vectors from a different embedder are written.
        aspectrag.errors.StoreError: the backend failed (damaged, locked, read-only, unreachable);
            the message names the index and the next step.
    """

    location: str
    readonly: bool
    capabilities: frozenset[str]

    def write_lock(self, *, wait: bool = True,
                   on_wait: Callable[[str], None] | None = None) -> AbstractContextManager[None]:
        """The exclusive cross-process writer session (ingest, remove): held for the whole
        ingest, re-entrant in one process. Entering it also prepares the store for writing
        (schema, migrations, a quick integrity check). Readers never take it.

        ``on_wait(message)`` is called once when another writer holds it (message: "waiting for
        the ingest started by pid N at TIME").

        Raises:
            aspectrag.errors.IndexBusyError: ``wait=False`` and another writer holds it.
            aspectrag.errors.StoreError: the index failed its quick check (run ``aspectrag
                check``) or is read-only.
        """
        ...

    def reading(self) -> AbstractContextManager[None]:
        """A consistent view for the reads made inside it on this thread (one search: its
        keyword/vector searches and ``get_chunks``), all from one committed state even while a
        writer commits. Nests. A backend without snapshots returns a null context and says so
        in its docstring."""
        ...

    def writer(self) -> AbstractContextManager[StoreWriter]:
        """A write transaction: commits on normal exit, rolls back on exception or process death.
        Takes :meth:`write_lock` for its duration if the caller does not hold it."""
        ...

    def fingerprint(self, source: str) -> str | None:
        """Fingerprint recorded for ``source`` at its last ingest, or None if unknown."""
        ...

    def sources(self) -> list[str]:
        """All document sources in the store, in insertion order."""
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
        """Index-level metadata (e.g. ``"embedder"``); written with ``StoreWriter.set_meta``."""
        ...

    def meta_keys(self) -> list[str]:
        """The keys written with ``StoreWriter.set_meta``, sorted (not the backend's own
        bookkeeping, e.g. SQLite's ``generation``); used to copy an index
        (:func:`aspectrag.store.copy.copy_store`)."""
        ...

    def get_document(self, source: str) -> Document | None:
        """The stored document with exactly this source (its ``text`` is not kept: ``""``;
        id, title, fingerprint, metadata and sections are), or None."""
        ...

    def spaces(self) -> list[SpaceSpec]:
        """The declared vector spaces, in declaration order ([] before the first write)."""
        ...

    def vector_spaces(self) -> list[str]:
        """Names of the declared vector spaces (``[s.name for s in spaces()]``)."""
        ...

    def side_path(self, name: str) -> Path | None:
        """Local path of the side file ``name`` kept with this index (e.g. the rerank token
        cache), or None when the backend has no local folder (remote stores)."""
        ...

    def keyword_search(
        self, queries: Sequence[str], k: int, sources: Sequence[str] | None = None
    ) -> list[list[ScoredId]]:
        """BM25 search; one ranked list (best first, at most k) per query; ``sources`` is the
        source filter of the module doc."""
        ...

    def vector_search(
        self, space: str, queries: np.ndarray, k: int, sources: Sequence[str] | None = None
    ) -> list[list[ScoredId]]:
        """Inner-product search in ``space``; ``queries`` is float32 of shape ``(q, d_space)``.
        One ranked list (best first, at most k) per query row."""
        ...

    def vector_search_spaces(
        self, searches: Sequence[tuple[str, np.ndarray]], k: int,
        sources: Sequence[str] | None = None,
    ) -> list[list[list[ScoredId]]]:
        """``[vector_search(space, q, k, sources) for space, q in searches]``; backends with
        :data:`CAP_BATCHED_VECTOR_SEARCH` do it in one batched call."""
        ...

    def get_vectors(self, space: str, chunk_ids: Sequence[str]) -> np.ndarray:
        """Stored vectors of ``chunk_ids`` in ``space``: float32, shape ``(len(chunk_ids), d)``."""
        ...

    def refresh(self) -> None:
        """Bring derived indexes up to date (a no-op without :data:`CAP_DERIVED_INDEXES`)."""
        ...

    def check(self, *, quick: bool = False) -> CheckReport:
        """Integrity of the store and its derived indexes (``quick``: the fast subset)."""
        ...

    def repair(self) -> list[str]:
        """Rebuild what can be rebuilt (derived indexes, damaged SQL indexes); returns one line
        per action, and lines starting with ``"cannot: "`` for what cannot be repaired."""
        ...

"""Interfaces of the ingest stage: loaders (source -> Documents), splitters (Document ->
Chunks) and ingest hooks (index-level state kept exact across ingests and removals)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from aspectrag.store.base import StoreWriter
from aspectrag.types import Chunk, Document

if TYPE_CHECKING:
    from aspectrag.store.base import StoreWriter


@runtime_checkable
class Loader(Protocol):
    """Turns one source (file path or URL) into documents.

    Raises:
        aspectrag.errors.LoadError: naming the source and the reason (corrupt, empty, binary,
            undecodable, HTTP error, too large, wrong content type...).
    """

    def can_load(self, source: str) -> bool:
        """True if this loader handles ``source`` (by suffix, file name or URL scheme)."""
        ...

    def load(self, source: str) -> Iterator[Document]:
        """Documents of ``source``: one for most formats, one per line for a BEIR corpus.jsonl."""
        ...


@runtime_checkable
class Splitter(Protocol):
    """Cuts a document into chunks whose ``text == doc.text[start:end]``."""

    def split(self, doc: Document) -> list[Chunk]: ...


@runtime_checkable
class IngestHook(Protocol):
    """Index-level state derived from the vectors (e.g. the multi-head statistics), kept exact
    by the pipeline across an ingest or a removal.

    Call order (one ingest, all under the store's writer lock): :meth:`added` for every
    embedded batch (before the write transaction: the pipeline embeds first), then inside the
    one write transaction :meth:`removing` with the sources about to be replaced or deleted
    (their stored vectors are still readable), then :meth:`save` as the last step, so what it
    writes commits or rolls back with the data. A removal calls only :meth:`removing` and
    :meth:`save`.
    """

    def removing(self, sources: Sequence[str]) -> None:
        """The documents of ``sources`` are about to be deleted (in the transaction)."""
        ...

    def added(self, vectors: Mapping[str, np.ndarray]) -> None:
        """One embedded batch: ``{space: float32 (n, d_space)}`` as the embedder returned it."""
        ...

    def save(self, writer: StoreWriter) -> None:
        """Write the state (``writer.set_meta``); the last step inside the transaction."""
        ...

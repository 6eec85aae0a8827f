"""Interfaces of the ingest stage: loaders (source -> Documents) and splitters (Document -> Chunks)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from aspectrag.store.base import StoreWriter
from aspectrag.types import Chunk, Document


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


class IngestHook(Protocol):
    """Extra work of an ingest or removal inside its write transaction (e.g. multi-head
    statistics): ``removing`` before deletes, ``added`` for each embedded batch, ``save`` as
    the last step inside the transaction (write through ``writer`` so it commits with the data).
    """

    def removing(self, sources: Sequence[str]) -> None: ...

    def added(self, vectors: Mapping[str, np.ndarray]) -> None: ...

    def save(self, writer: StoreWriter) -> None: ...

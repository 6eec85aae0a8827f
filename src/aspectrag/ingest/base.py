"""Interfaces of the ingest stage: loaders (source -> Documents) and splitters (Document -> Chunks)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

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

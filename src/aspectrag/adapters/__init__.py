"""Retrievers for other frameworks over a local ``Index`` or the HTTP ``Client``:
``aspectrag.adapters.langchain.AspectragRetriever`` (extra ``langchain``) and
``aspectrag.adapters.llamaindex.AspectragRetriever`` (extra ``llamaindex``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from aspectrag.types import Hit


class Searcher(Protocol):
    """What the adapters search: ``Index`` and ``aspectrag.client.Client`` both fit."""

    def search(self, query: str, k: int = 10, *, retriever: str = ...,
               sources: Sequence[str] | None = None, **options: Any) -> list[Hit]: ...


def hit_metadata(h: Hit) -> dict[str, Any]:
    """A hit's metadata for a framework document: source, title, location, page, heading,
    offsets, score, rank, provenance."""
    c = h.chunk
    return {"chunk_id": c.chunk_id, "doc_id": c.doc_id, "source": c.source, "title": c.title,
            "location": c.location, "page": c.page, "heading": c.heading, "start": c.start,
            "end": c.end, "score": float(h.score), "rank": h.rank, "provenance": h.provenance}

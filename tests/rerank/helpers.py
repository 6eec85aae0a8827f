"""Helpers for the reranking tests: chunks, hits and a list-backed first stage."""

from __future__ import annotations

from collections.abc import Sequence

from aspectrag.retrieve.base import timed_search
from aspectrag.types import Chunk, Hit, SearchResult


def chunk(i: int | str, text: str, title: str = "") -> Chunk:
    return Chunk(f"d{i}#0", f"d{i}", f"/docs/d{i}.txt", title, 0, text, 0, len(text))


def hits_of(texts: Sequence[str]) -> list[Hit]:
    """Hits in the given order, first-stage scores 1.0, 0.9, ..."""
    return [Hit(chunk(i, t), 1.0 - 0.1 * i, i + 1, {"bm25": i + 1}) for i, t in enumerate(texts)]


class ListRetriever:
    """First stage returning fixed hits (cut at k); counts calls."""

    name = "fixed"

    def __init__(self, hits: list[Hit]) -> None:
        self.hits, self.calls = hits, 0

    def retrieve(self, query: str, k: int = 10, sources: Sequence[str] | None = None) -> list[Hit]:
        return self.retrieve_batch([query], k, sources)[0]

    def retrieve_batch(
        self, queries: Sequence[str], k: int = 10, sources: Sequence[str] | None = None
    ) -> list[list[Hit]]:
        self.calls += 1
        return [self.hits[:k] for _ in queries]

    def search(self, query: str, k: int = 10, sources: Sequence[str] | None = None) -> SearchResult:
        return timed_search(self.retrieve, query, k, sources)

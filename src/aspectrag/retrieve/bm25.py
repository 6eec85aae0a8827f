"""Store-backed BM25 retriever."""

from __future__ import annotations

from collections.abc import Sequence

from aspectrag.retrieve.base import timed_search
from aspectrag.retrieve.hits import to_hits
from aspectrag.store.base import Store
from aspectrag.types import Hit, SearchResult


class BM25Retriever:
    """Okapi BM25 over chunk texts (Robertson & Zaragoza 2009) through ``Store.keyword_search``."""

    name = "bm25"
    OPTIONS: tuple[str, ...] = ()
    """Factory options (``build_retriever("bm25", ..., **options)``): none."""

    def __init__(self, store: Store, embedder: object | None = None) -> None:
        """``embedder`` is unused (the retriever table calls every builder with the index's
        store and embedder)."""
        self.store = store

    def retrieve(self, query: str, k: int = 10, sources: Sequence[str] | None = None) -> list[Hit]:
        return self.retrieve_batch([query], k, sources)[0]

    def retrieve_batch(self, queries: Sequence[str], k: int = 10,
                       sources: Sequence[str] | None = None) -> list[list[Hit]]:
        runs = self.store.keyword_search(queries, k, sources)
        return [to_hits(self.store, [(s.chunk_id, s.score) for s in run], k) for run in runs]

    def search(self, query: str, k: int = 10,
               sources: Sequence[str] | None = None) -> SearchResult:
        """The hits of :meth:`retrieve` with their wall-clock seconds."""
        return timed_search(self.retrieve, query, k, sources)

"""Store-backed dense (bi-encoder) retriever."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from aspectrag.embed.base import Embedder
from aspectrag.retrieve.base import timed_search
from aspectrag.retrieve.hits import to_hits
from aspectrag.store.base import ScoredId, Store
from aspectrag.types import Hit, SearchResult


class DenseRetriever:
    """Bi-encoder retrieval: exact (or HNSW) inner product in the ``"dense"`` space
    (Karpukhin et al. 2020, DPR; Reimers & Gurevych 2019, Sentence-BERT)."""

    name = "dense"
    OPTIONS: tuple[str, ...] = ()
    """Factory options (``build_retriever("dense", ..., **options)``): none."""

    def __init__(self, store: Store, embedder: Embedder, space: str = "dense") -> None:
        self.store, self.embedder, self.space = store, embedder, space

    def encode_queries(self, queries: Sequence[str]) -> np.ndarray:
        """Query vectors, float32 ``(len(queries), dim)``, in one batch."""
        return np.asarray(self.embedder.encode(list(queries), kind="query")[self.space])

    def search_ids(self, queries: Sequence[str], k: int,
                   sources: Sequence[str] | None = None) -> list[list[ScoredId]]:
        """Scored ids per query (no chunk lookup)."""
        return self.store.vector_search(self.space, self.encode_queries(queries), k, sources)

    def retrieve(self, query: str, k: int = 10, sources: Sequence[str] | None = None) -> list[Hit]:
        return self.retrieve_batch([query], k, sources)[0]

    def retrieve_batch(self, queries: Sequence[str], k: int = 10,
                       sources: Sequence[str] | None = None) -> list[list[Hit]]:
        return [to_hits(self.store, [(s.chunk_id, s.score) for s in run], k)
                for run in self.search_ids(queries, k, sources)]

    def search(self, query: str, k: int = 10,
               sources: Sequence[str] | None = None) -> SearchResult:
        """The hits of :meth:`retrieve` with their wall-clock seconds."""
        return timed_search(self.retrieve, query, k, sources)

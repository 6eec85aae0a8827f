"""Hybrid BM25 + dense retriever."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from aspectrag.embed.base import Embedder
from aspectrag.retrieve.base import timed_search
from aspectrag.retrieve.dense import DenseRetriever
from aspectrag.retrieve.fusion import convex_combination, reciprocal_rank_fusion
from aspectrag.retrieve.hits import to_hits
from aspectrag.store.base import Store
from aspectrag.types import Hit, SearchResult


class HybridRetriever:
    """BM25 + dense, fused by convex combination of min-max normalised scores (default) or
    reciprocal rank fusion (c=60).

    Args:
        fusion: ``"convex"`` or ``"rrf"``.
        weight: weight of the dense run in the convex combination (BM25 gets ``1 - weight``);
            for RRF, the dense list's weight (BM25 list weight ``1 - weight``, both x2 so that
            0.5 means plain RRF).
        depth: candidates taken from each retriever (at least ``k``).
    """

    name = "hybrid"
    OPTIONS: tuple[str, ...] = ("fusion", "weight", "depth")
    """Factory options (``build_retriever("hybrid", ..., **options)``): the keyword arguments."""

    def __init__(self, store: Store, embedder: Embedder, *,
                 fusion: Literal["convex", "rrf"] = "convex", weight: float = 0.5,
                 depth: int = 100) -> None:
        if fusion not in ("convex", "rrf"):
            raise ValueError(f"fusion must be 'convex' or 'rrf', got {fusion!r}")
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"hybrid weight must be in [0, 1], got {weight}")
        self.store = store
        self.dense = DenseRetriever(store, embedder)
        self.fusion, self.weight, self.depth = fusion, weight, depth

    def retrieve(self, query: str, k: int = 10, sources: Sequence[str] | None = None) -> list[Hit]:
        return self.retrieve_batch([query], k, sources)[0]

    def retrieve_batch(self, queries: Sequence[str], k: int = 10,
                       sources: Sequence[str] | None = None) -> list[list[Hit]]:
        depth = max(self.depth, k)
        lex = self.store.keyword_search(queries, depth, sources)
        den = self.dense.search_ids(queries, depth, sources)
        out = []
        for b, d in zip(lex, den, strict=True):
            if self.fusion == "convex":
                fused = convex_combination([b, d], [1 - self.weight, self.weight])
            else:
                fused = reciprocal_rank_fusion(
                    [[s.chunk_id for s in b], [s.chunk_id for s in d]],
                    [2 * (1 - self.weight), 2 * self.weight])
            brank = {s.chunk_id: r for r, s in enumerate(b, 1)}
            drank = {s.chunk_id: r for r, s in enumerate(d, 1)}
            prov = [{"bm25": brank.get(cid), "dense": drank.get(cid)} for cid, _ in fused[:k]]
            out.append(to_hits(self.store, fused, k, prov))
        return out

    def search(self, query: str, k: int = 10,
               sources: Sequence[str] | None = None) -> SearchResult:
        """The hits of :meth:`retrieve` with their wall-clock seconds."""
        return timed_search(self.retrieve, query, k, sources)

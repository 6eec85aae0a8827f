"""LlamaIndex retriever (``llama_index.core.retrievers.BaseRetriever``) over an aspectrag
``Index`` or HTTP ``Client``. Needs the ``llamaindex`` extra (``llama-index-core``).

Example::

    from aspectrag.adapters.llamaindex import AspectragRetriever
    nodes = AspectragRetriever(Index("./.aspectrag"), k=5).retrieve("question")
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from aspectrag.adapters import Searcher, hit_metadata


class AspectragRetriever(BaseRetriever):
    """Returns the top ``k`` chunks as ``NodeWithScore`` (``TextNode`` with the chunk text,
    ``id_`` the chunk id, metadata from :func:`aspectrag.adapters.hit_metadata`).

    Args:
        searcher: an ``aspectrag.Index`` or ``aspectrag.client.Client``.
        k: number of chunks.
        retriever: bm25 | dense | hybrid | multiquery | multihead ...
        sources: only these sources (None: all).
        options: further search options (``base``, ``weight``, ``rerank``...).
    """

    def __init__(self, searcher: Searcher, k: int = 5, *, retriever: str = "auto",
                 sources: Sequence[str] | None = None, **options: Any) -> None:
        self._searcher, self._k, self._retriever = searcher, k, retriever
        self._sources = list(sources) if sources else None
        self._options = options
        super().__init__()

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self._searcher.search(query_bundle.query_str, self._k, retriever=self._retriever,
                                     sources=self._sources, **self._options)
        return [NodeWithScore(node=TextNode(id_=h.chunk.chunk_id, text=h.chunk.text,
                                            metadata=hit_metadata(h)), score=float(h.score))
                for h in hits]

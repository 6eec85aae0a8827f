"""LangChain retriever (``langchain_core.retrievers.BaseRetriever``) over an aspectrag
``Index`` or HTTP ``Client``. Needs the ``langchain`` extra (``langchain-core``).

Example::

    from aspectrag.adapters.langchain import AspectragRetriever
    docs = AspectragRetriever(searcher=Index("./.aspectrag"), k=5).invoke("question")
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from aspectrag.adapters import hit_metadata


class AspectragRetriever(BaseRetriever):
    """Returns the top ``k`` chunks as LangChain ``Document``s (``page_content`` the chunk
    text, ``metadata`` from :func:`aspectrag.adapters.hit_metadata`, ``id`` the chunk id).

    Attributes:
        searcher: an ``aspectrag.Index`` or ``aspectrag.client.Client``.
        k: number of chunks.
        retriever: bm25 | dense | hybrid | multiquery | multihead ...
        sources: only these sources (None: all).
        options: further search options (``base``, ``weight``, ``rerank``...).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    searcher: Any
    k: int = 5
    retriever: str = "auto"
    sources: list[str] | None = None
    options: dict[str, Any] = {}

    def _get_relevant_documents(self, query: str, *,
                                run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        hits = self.searcher.search(query, self.k, retriever=self.retriever, sources=self.sources,
                                    **self.options)
        return [Document(page_content=h.chunk.text, metadata=hit_metadata(h), id=h.chunk.chunk_id)
                for h in hits]

"""Bi-encoder rescoring on the full chunk text.

The first stage's dense vectors are computed once at ingest from text cut at the embedder's
token limit. This reranker re-encodes each candidate in full (overlapping windows of
``max_tokens``, score = best window, as MaxP in Dai & Callan 2019) with the given embedder,
so it can also put a different (e.g. LoRA-adapted) bi-encoder over BM25 candidates.
score(q, d) = max over windows w of cos(E(q), E(w)) (Reimers & Gurevych 2019, Sentence-BERT).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from aspectrag.embed.base import TransformerEmbedder
from aspectrag.rerank.base import reorder
from aspectrag.rerank.tokens import encode_texts
from aspectrag.types import Chunk, Hit


class BiEncoderReranker:
    """Reranks hits by cosine between the query embedding and the best window of each chunk.

    Args:
        embedder: the bi-encoder (a :class:`~aspectrag.embed.base.TransformerEmbedder`:
            tokenizer and model, mean pooling as ``HFEmbedder``).

    Attributes:
        name: ``"bi-encoder"``.
    """

    name = "bi-encoder"

    def __init__(self, embedder: TransformerEmbedder) -> None:
        self.embedder = embedder

    def score(self, query: str, chunks: Sequence[Chunk]) -> np.ndarray:
        """Best-window cosine per chunk: float32 (len(chunks),)."""
        q = np.asarray(self.embedder.encode([query], kind="query")["dense"][0])
        enc = encode_texts(self.embedder, [c.index_text() for c in chunks])
        return np.array([float((e.windows @ q).max()) for e in enc], dtype=np.float32)

    def rerank(self, query: str, hits: Sequence[Hit], k: int | None = None, *,
               info: dict[str, Any] | None = None) -> list[Hit]:
        """Hits reordered by full-text cosine (see ``Reranker.rerank``)."""
        if not hits:
            return []
        return reorder(hits, self.score(query, [h.chunk for h in hits]).tolist(), self.name, k)

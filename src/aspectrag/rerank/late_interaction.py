"""Late-interaction reranking: MaxSim over token vectors (ColBERT, Khattab & Zaharia 2020).

score(q, d) = sum over query tokens i of max over document tokens j of cos(q_i, d_j)
(ColBERT section 3.3, eq. 3), with the token vectors of the embedder's last layer, L2-normalised.
The embedder (all-MiniLM-L6-v2 by default) was trained for mean-pooled sentence embeddings, not
for MaxSim: no ColBERT projection layer and no query augmentation with [MASK] tokens are
applied. [CLS]/[SEP] and padding are left out on both sides.

Document token vectors are computed on the fly for the candidates, or read from a
``TokenVectorCache`` (filled at ingest with ``cache_index_token_vectors``, or lazily: vectors
computed on the fly are written back).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from aspectrag.embed.base import TransformerEmbedder
from aspectrag.rerank.base import reorder
from aspectrag.rerank.cache import TokenVectorCache
from aspectrag.rerank.tokens import encode_texts
from aspectrag.types import Chunk, Hit

log = logging.getLogger("aspectrag.rerank")


def maxsim(query_tokens: np.ndarray, doc_tokens: Sequence[np.ndarray]) -> np.ndarray:
    """MaxSim scores of one query against several documents.

    Args:
        query_tokens: float32 (n_q, dim), unit rows.
        doc_tokens: per document float32 (n_d, dim), unit rows (n_d may be 0: score 0).

    Returns:
        float32 (len(doc_tokens),): sum over query tokens of the best cosine in the document.
    """
    out = np.zeros(len(doc_tokens), dtype=np.float32)
    nonempty = [i for i, d in enumerate(doc_tokens) if len(d)]
    if not nonempty or len(query_tokens) == 0:
        return out
    lengths = np.array([len(doc_tokens[i]) for i in nonempty])
    sims = query_tokens @ np.concatenate([doc_tokens[i] for i in nonempty]).T  # (n_q, sum n_d)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    best = np.maximum.reduceat(sims, starts, axis=1)  # (n_q, n_docs)
    out[nonempty] = best.sum(axis=0)
    return out


class LateInteractionReranker:
    """Reranks hits by MaxSim between query and chunk token vectors of ``embedder``.

    Args:
        embedder: a :class:`~aspectrag.embed.base.TransformerEmbedder` (its tokenizer, model
            and ``max_tokens`` are used; chunks longer than ``max_tokens`` are encoded in
            overlapping windows, nothing is cut).
        cache: optional token-vector cache; hits found there skip the forward pass, computed
            vectors are written to it.
        skip_punctuation: drop punctuation tokens on the document side (ColBERT section 3.2).

    Attributes:
        name: ``"late-interaction"``.

    How many candidates came from the cache is reported per call (``info`` of
    :meth:`rerank`, ``stats`` of :meth:`document_vectors`), never kept on the reranker.
    """

    name = "late-interaction"

    def __init__(
        self,
        embedder: TransformerEmbedder,
        *,
        cache: TokenVectorCache | None = None,
        skip_punctuation: bool = False,
    ) -> None:
        self.embedder = embedder
        self.cache = cache
        self.skip_punctuation = skip_punctuation

    @property
    def cache_config(self) -> str:
        """Encoding options that a cache must share (part of its identity)."""
        return f"skip_punctuation={int(self.skip_punctuation)}"

    def query_vectors(self, query: str) -> np.ndarray:
        """Token vectors of ``query`` (truncated at ``max_tokens``): float32 (n_q, dim)."""
        return encode_texts(self.embedder, [query], max_windows=1)[0].tokens

    def document_vectors(
        self, chunks: Sequence[Chunk], stats: dict[str, Any] | None = None
    ) -> list[np.ndarray]:
        """Token vectors of each chunk's ``index_text()`` (cache first): float32 (n_d, dim) each.

        ``stats``, when given, receives ``{"cached": n, "computed": m}`` for this call."""
        found = self.cache.get(chunks) if self.cache is not None else {}
        missing = [c for c in chunks if c.chunk_id not in found]
        if missing:
            enc = encode_texts(
                self.embedder,
                [c.index_text() for c in missing],
                skip_punctuation=self.skip_punctuation,
            )
            computed = {c.chunk_id: e.tokens for c, e in zip(missing, enc, strict=True)}
            if self.cache is not None:
                self.cache.put((c, computed[c.chunk_id]) for c in missing)
            found = {**found, **computed}
        if stats is not None:
            stats.update(cached=len(chunks) - len(missing), computed=len(missing))
        return [found[c.chunk_id] for c in chunks]

    def score(self, query: str, chunks: Sequence[Chunk],
              stats: dict[str, Any] | None = None) -> np.ndarray:
        """MaxSim score per chunk: float32 (len(chunks),); ``stats`` as for
        :meth:`document_vectors`."""
        return maxsim(self.query_vectors(query), self.document_vectors(chunks, stats))

    def rerank(self, query: str, hits: Sequence[Hit], k: int | None = None, *,
               info: dict[str, Any] | None = None) -> list[Hit]:
        """Hits reordered by MaxSim (see ``Reranker.rerank``); ``info`` receives the cache
        statistics of this call (``{"cached": n, "computed": m}``)."""
        if not hits:
            return []
        scores = self.score(query, [h.chunk for h in hits], info)
        return reorder(hits, scores.tolist(), self.name, k)


def fill_cache(
    reranker: LateInteractionReranker,
    chunks: Iterable[Chunk],
    *,
    batch: int = 256,
    show_progress: bool = False,
) -> int:
    """Compute and store token vectors for every chunk not yet (validly) cached: the ingest-time
    mode of late interaction. Returns the number of chunks computed.

    Raises:
        ValueError: the reranker has no cache.
    """
    if reranker.cache is None:
        raise ValueError("fill_cache needs a LateInteractionReranker with a cache")
    todo = list(chunks)
    bar = None
    if show_progress:
        from aspectrag.progress import progress_bar

        bar = progress_bar(len(todo), "token vectors", "chunk")
    n = 0
    for i in range(0, len(todo), batch):
        part = todo[i : i + batch]
        stats: dict[str, Any] = {}
        reranker.document_vectors(part, stats)
        n += stats["computed"]
        if bar is not None:
            bar.update(len(part))
    if bar is not None:
        bar.close()
    return n

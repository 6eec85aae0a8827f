"""BM25 term weights for Qdrant's sparse vectors (the ``bm25`` vector of ``QdrantStore``).

Qdrant scores a sparse query ``q`` against a point ``d`` as ``sum_t q_t * d_t * idf(t)`` when
the sparse vector is created with ``Modifier.IDF``; the server computes
``idf(t) = ln(1 + (N - n_t + 0.5) / (n_t + 0.5))`` over the points that hold the vector, which
is the Lucene IDF that bm25s uses. So the client sends:

- for a chunk, ``d_t = tf / (tf + k1 * (1 - b + b * dl / avgdl))``: bm25s' Lucene term
  frequency part (Robertson's formula without the constant ``k1 + 1`` factor, which changes
  no ranking; bm25s leaves it out too), ``tf`` the count of term ``t``, ``dl`` the chunk's
  token count after stop-word removal;
- for a query, ``q_t`` = how often ``t`` occurs in the query (bm25s adds a repeated query
  token's score once per occurrence).

Tokens come from :func:`aspectrag.store.bm25_index.tokenize` (the embedded BM25's own
tokenizer and Snowball stemmer). A token's sparse index is the first 4 bytes of its BLAKE2b
digest (Qdrant indices are uint32): stable across processes and machines; two tokens that
collide share one index (at 100k distinct tokens about one pair is expected).

``avgdl`` is fixed when the index is first written (recorded in the store's state) because a
point's weights are computed once, client-side: bm25s recomputes it over the whole corpus at
every rebuild. For an index written in one ingest the two agree; after later ingests of
documents of another typical length the Qdrant store's length normalisation drifts from
bm25s' (see the README's "Qdrant store" section).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence

K1 = 1.5
B = 0.75


def term_index(token: str) -> int:
    """The uint32 sparse index of ``token`` (first 4 bytes of BLAKE2b, little endian)."""
    return int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=4).digest(), "little")


def _sparse(counts: Counter[str], weight) -> tuple[list[int], list[float]]:  # type: ignore[no-untyped-def]
    merged: dict[int, float] = {}
    for tok, tf in counts.items():
        i = term_index(tok)
        merged[i] = merged.get(i, 0.0) + weight(tf)
    idx = sorted(merged)
    return idx, [float(merged[i]) for i in idx]


class TermWeigher:
    """Sparse BM25 vectors of texts.

    Args:
        k1, b: BM25 parameters (the embedded BM25's defaults).
    """

    def __init__(self, k1: float = K1, b: float = B) -> None:
        from aspectrag.store.bm25_index import _stemmer

        self.k1, self.b = k1, b
        self._stem = _stemmer()

    def tokens(self, texts: Sequence[str]) -> list[list[str]]:
        """Token lists of ``texts`` (the embedded BM25's tokenisation)."""
        from aspectrag.store.bm25_index import tokenize

        return tokenize(texts, self._stem) if texts else []

    def documents(self, tokens: Sequence[Sequence[str]],
                  avgdl: float) -> list[tuple[list[int], list[float]]]:
        """``(indices, values)`` of each token list as a chunk: BM25 term-frequency weights
        with average length ``avgdl`` (tokens, > 0). An empty list gives ``([], [])``."""
        out = []
        for toks in tokens:
            norm = self.k1 * (1 - self.b + self.b * len(toks) / avgdl)
            out.append(_sparse(Counter(toks), lambda tf, n=norm: tf / (tf + n)))
        return out

    def queries(self, texts: Sequence[str]) -> list[tuple[list[int], list[float]]]:
        """``(indices, values)`` of each query: token counts (``([], [])`` for a query
        without a searchable token)."""
        return [_sparse(Counter(t), float) for t in self.tokens(texts)]

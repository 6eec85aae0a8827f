"""The ``Reranker`` protocol and a retriever that reranks another retriever's candidates.

Two-stage retrieval (Nogueira & Cho 2019, "Passage Re-ranking with BERT"; Khattab & Zaharia
2020, ColBERT section 1): a cheap first stage (BM25, bi-encoder, hybrid) fetches the top-N
candidates, a more expensive model rescores only those N.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from aspectrag.retrieve.base import Retriever
from aspectrag.types import Hit, SearchResult

log = logging.getLogger("aspectrag.rerank")


@runtime_checkable
class Reranker(Protocol):
    """Rescores candidate hits for a query.

    Attributes:
        name: short identity, e.g. ``"late-interaction"``, ``"cross-encoder:<model folder>"``.
    """

    name: str

    def rerank(self, query: str, hits: Sequence[Hit], k: int | None = None, *,
               info: dict[str, Any] | None = None) -> list[Hit]:
        """Rescore ``hits`` for ``query``; return the best ``k`` (all if None), best first.

        Returned hits carry the reranker's score, new 1-based ranks, and provenance extended
        with ``{"rerank": {"by": name, "first_stage_rank": r, "first_stage_score": s}}``.
        ``info``, when given, receives facts about this call (e.g. late interaction's token
        cache use ``{"cached": n, "computed": m}``); nothing per call is kept on the reranker.
        """
        ...


def reorder(hits: Sequence[Hit], scores: Sequence[float], name: str, k: int | None) -> list[Hit]:
    """New ``Hit`` list sorted by ``scores`` (descending; ties keep first-stage order), cut to
    ``k``, ranks 1..k, first-stage rank/score recorded in provenance. Inputs are not modified."""
    if len(scores) != len(hits):
        raise ValueError(f"{name}: {len(scores)} scores for {len(hits)} hits")
    order = sorted(range(len(hits)), key=lambda i: (-float(scores[i]), i))
    if k is not None:
        order = order[:k]
    out: list[Hit] = []
    for new_rank, i in enumerate(order, 1):
        h = hits[i]
        prov = dict(h.provenance)
        prov["rerank"] = {"by": name, "first_stage_rank": h.rank, "first_stage_score": h.score}
        out.append(Hit(chunk=h.chunk, score=float(scores[i]), rank=new_rank, provenance=prov))
    return out


class RerankingRetriever:
    """A ``Retriever``: the first stage's top-``depth`` candidates reranked, top-``k`` returned.

    When ``k`` > ``depth`` (e.g. an evaluation asking for 200 hits with rerank depth 100), the
    first stage's hits below ``depth`` follow the reranked ones in their first-stage order, with
    scores below every reranked score (the usual "rerank the top-N" protocol).

    Args:
        first_stage: any retriever (BM25, dense, hybrid, multi-query...).
        reranker: the second stage.
        depth: candidates reranked per query.

    Attributes:
        name: ``"<first stage name>+<reranker name>"``.

    :meth:`search` returns the per-call seconds (``timings["first_stage"]``,
    ``timings["rerank"]``) and the reranker's facts (``info["rerank"]``) with the hits.
    """

    OPTIONS: tuple[str, ...] = ()

    def __init__(self, first_stage: Retriever, reranker: Reranker, depth: int = 100) -> None:
        if depth < 1:
            raise ValueError(f"rerank depth must be >= 1, got {depth}")
        self.first_stage = first_stage
        self.reranker = reranker
        self.depth = depth
        self.name = f"{first_stage.name}+{reranker.name}"

    def retrieve(self, query: str, k: int = 10, sources: Sequence[str] | None = None) -> list[Hit]:
        """Top-``k`` reranked hits for ``query`` (see class doc)."""
        return self.retrieve_batch([query], k, sources)[0]

    def retrieve_batch(
        self, queries: Sequence[str], k: int = 10, sources: Sequence[str] | None = None
    ) -> list[list[Hit]]:
        """``retrieve`` for several queries: one batched first-stage call, then one rerank each."""
        t0 = time.perf_counter()
        cands = self.first_stage.retrieve_batch(queries, max(k, self.depth), sources)
        t1 = time.perf_counter()
        out = [self._rerank_one(q, c, k) for q, c in zip(queries, cands, strict=True)]
        t2 = time.perf_counter()
        log.debug(
            "rerank %d queries: first stage %.3f s, rerank %.3f s", len(queries), t1 - t0, t2 - t1
        )
        return out

    def search(
        self, query: str, k: int = 10, sources: Sequence[str] | None = None
    ) -> SearchResult:
        """The hits of :meth:`retrieve` with the first stage's diagnostics (its queries, timings
        and info) plus ``timings["first_stage"]``, ``timings["rerank"]`` (seconds) and
        ``info["rerank"]`` (``{"by": name, "depth": n, ...the reranker's facts}``)."""
        t0 = time.perf_counter()
        first = self.first_stage.search(query, max(k, self.depth), sources)
        t1 = time.perf_counter()
        facts: dict[str, Any] = {}
        hits = self._rerank_one(query, first.hits, k, facts)
        t2 = time.perf_counter()
        timings = {**first.timings, "first_stage": t1 - t0, "rerank": t2 - t1}
        info = {**first.info, "rerank": {"by": self.reranker.name, "depth": self.depth, **facts}}
        return SearchResult(hits, first.queries, timings, info)

    def _rerank_one(self, query: str, cands: list[Hit], k: int,
                    facts: dict[str, Any] | None = None) -> list[Hit]:
        head = self.reranker.rerank(query, cands[: self.depth], min(k, self.depth), info=facts)
        if k <= self.depth or len(cands) <= self.depth:
            return head
        floor = min((h.score for h in head), default=0.0)
        tail = [
            Hit(h.chunk, floor - i, len(head) + i, {**h.provenance, "rerank": {"by": None}})
            for i, h in enumerate(cands[self.depth : k], 1)
        ]
        return head + tail

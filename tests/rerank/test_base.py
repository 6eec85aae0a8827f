"""``reorder`` and ``RerankingRetriever``: ranks, provenance, depth and the tail below it."""

from __future__ import annotations

import pytest
from tests.rerank.helpers import ListRetriever, hits_of

from aspectrag.rerank.base import Reranker, RerankingRetriever, reorder


class LengthReranker:
    """Scores a hit by its text length (longer is better)."""

    name = "length"

    def __init__(self) -> None:
        self.seen: list[int] = []

    def rerank(self, query, hits, k=None, *, info=None):  # type: ignore[no-untyped-def]
        self.seen.append(len(hits))
        if info is not None:
            info["scored"] = len(hits)
        return reorder(hits, [len(h.chunk.text) for h in hits], self.name, k)


def test_reorder_sorts_keeps_ties_and_records_first_stage() -> None:
    hits = hits_of(["aa", "a", "aaaa", "bb"])
    out = reorder(hits, [2.0, 1.0, 4.0, 2.0], "x", 3)
    assert [h.chunk.text for h in out] == ["aaaa", "aa", "bb"]  # tie 2.0: first-stage order
    assert [h.rank for h in out] == [1, 2, 3]
    assert out[0].provenance == {
        "bm25": 3, "rerank": {"by": "x", "first_stage_rank": 3, "first_stage_score": hits[2].score}
    }  # fmt: skip
    assert hits[2].rank == 3 and "rerank" not in hits[2].provenance  # inputs untouched
    with pytest.raises(ValueError, match="2 scores for 4 hits"):
        reorder(hits, [1.0, 2.0], "x", None)


def test_reranking_retriever_depth_and_tail() -> None:
    texts = ["a", "aaa", "aa", "aaaaa", "aaaa", "b"]
    first, rr = ListRetriever(hits_of(texts)), LengthReranker()
    r = RerankingRetriever(first, rr, depth=3)
    assert isinstance(rr, Reranker) and r.name == "fixed+length"
    top2 = r.retrieve("q", k=2)
    assert [h.chunk.text for h in top2] == ["aaa", "aa"] and rr.seen == [3]
    all6 = r.retrieve("q", k=6)  # k > depth: reranked head, then first-stage tail
    assert [h.chunk.text for h in all6] == ["aaa", "aa", "a", "aaaaa", "aaaa", "b"]
    assert [h.rank for h in all6] == [1, 2, 3, 4, 5, 6]
    scores = [h.score for h in all6]
    assert scores == sorted(scores, reverse=True)
    assert all6[3].provenance["rerank"] == {"by": None}
    res = r.search("q", k=6)  # diagnostics come with the result, not on the retriever
    assert [h.chunk.text for h in res.hits] == [h.chunk.text for h in all6]
    assert {"first_stage", "rerank"} <= set(res.timings) and res.queries == []
    assert res.info["rerank"] == {"by": "length", "depth": 3, "scored": 3}
    assert not any(a.startswith("last_") for a in vars(r))
    with pytest.raises(ValueError, match="depth"):
        RerankingRetriever(first, rr, depth=0)

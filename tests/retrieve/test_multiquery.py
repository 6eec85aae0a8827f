"""MultiQueryRetriever: planning, weighted RRF, dedup by chunk id, provenance, batching."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import pytest

from aspectrag.retrieve.base import Retriever
from aspectrag.retrieve.multiquery import MultiQueryRetriever
from aspectrag.retrieve.query_gen.base import QueryGenerator, SubQuery
from aspectrag.types import Chunk, Hit


def _chunk(cid: str) -> Chunk:
    return Chunk(cid, cid.split("#")[0], f"/src/{cid}", "t", 0, f"text of {cid}", 0, 10)


class TableRetriever:
    """Base retriever with fixed rankings per query; records its calls."""

    name = "table"

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.calls: list[list[str]] = []
        self.threads: set[int] = set()

    def retrieve(self, query: str, k: int = 10, sources: Sequence[str] | None = None) -> list[Hit]:
        return self.retrieve_batch([query], k, sources)[0]

    def retrieve_batch(
        self, queries: Sequence[str], k: int = 10, sources: Sequence[str] | None = None
    ) -> list[list[Hit]]:
        self.calls.append(list(queries))
        self.threads.add(threading.get_ident())
        out = []
        for q in queries:
            ids = [c for c in self.table.get(q, []) if sources is None or f"/src/{c}" in sources]
            out.append([Hit(_chunk(c), 1.0 / r, r, {"bm25": r}) for r, c in enumerate(ids[:k], 1)])
        return out


class FixedGenerator:
    name = "fixed"

    def __init__(self, queries: list[SubQuery]) -> None:
        self.queries = queries

    def generate(self, question: str) -> list[SubQuery]:
        return list(self.queries)


TABLE = {
    "Q": ["a#0", "b#0", "c#0"],
    "v1": ["d#0", "a#0", "e#0"],
    "v2": ["d#0", "f#0", "a#0"],
}


def test_protocols_are_satisfied() -> None:
    mq = MultiQueryRetriever(TableRetriever(TABLE), FixedGenerator([]))
    assert isinstance(mq, Retriever)
    assert isinstance(FixedGenerator([]), QueryGenerator)


def test_weighted_rrf_scores_ranks_and_provenance() -> None:
    gen = FixedGenerator([SubQuery("v1", 1.0, "llm"), SubQuery("v2", 1.0, "llm")])
    base = TableRetriever(TABLE)
    hits = MultiQueryRetriever(base, gen).retrieve("Q", k=4)
    # a: 1/61 + 1/62 + 1/63 ; d: 2/61 ; b: 1/62 ; f: 1/62 ...
    assert [h.chunk.chunk_id for h in hits][:2] == ["a#0", "d#0"]
    assert hits[0].score == pytest.approx(1 / 61 + 1 / 62 + 1 / 63)
    assert hits[1].score == pytest.approx(2 / 61)
    assert [h.rank for h in hits] == [1, 2, 3, 4]
    assert len({h.chunk.chunk_id for h in hits}) == len(hits)  # deduplicated by chunk id
    prov = hits[0].provenance["queries"]
    assert [(p["query"], p["rank"]) for p in prov] == [("Q", 1), ("v1", 2), ("v2", 3)]
    assert prov[0]["origin"] == "original" and prov[1]["origin"] == "llm"
    assert hits[0].provenance["base"] == {"bm25": 1}
    # all three queries went to the base in ONE batch call (one embedding batch)
    assert base.calls == [["Q", "v1", "v2"]]


def test_weights_really_apply() -> None:
    gen = FixedGenerator([SubQuery("v1", 1.0, "llm"), SubQuery("v2", 1.0, "llm")])
    plain = MultiQueryRetriever(TableRetriever(TABLE), gen).retrieve("Q", k=2)
    assert plain[0].chunk.chunk_id == "a#0"
    heavy = MultiQueryRetriever(TableRetriever(TABLE), gen, weights={"llm": 25.0}).retrieve(
        "Q", k=2
    )
    assert heavy[0].chunk.chunk_id == "d#0"  # 50/61 > 1/61 + 25/62 + 25/63
    assert heavy[0].score == pytest.approx(50 / 61)
    assert heavy[1].score == pytest.approx(1 / 61 + 25 / 62 + 25 / 63)
    # a SubQuery's own weight also applies, and weight 0 drops the query entirely
    gen0 = FixedGenerator([SubQuery("v1", 0.0, "llm"), SubQuery("v2", 2.0, "llm")])
    base = TableRetriever(TABLE)
    hits = MultiQueryRetriever(base, gen0, original_weight=0.5).retrieve("Q", k=3)
    assert base.calls == [["Q", "v2"]]
    assert [h.chunk.chunk_id for h in hits] == ["a#0", "d#0", "f#0"]
    assert [h.score for h in hits] == pytest.approx([0.5 / 61 + 2 / 63, 2 / 61, 2 / 62])


def test_keep_original_off_and_duplicate_queries() -> None:
    gen = FixedGenerator(
        [SubQuery("v1", 1.0, "llm"), SubQuery("  V1 ", 1.0, "llm"), SubQuery("q?", 1.0, "llm")]
    )
    base = TableRetriever(TABLE)
    mq = MultiQueryRetriever(base, gen, keep_original=False)
    mq.retrieve("Q", k=3)
    assert base.calls == [["v1", "q?"]]  # "  V1 " duplicates v1; "q?" differs from nothing kept
    base2 = TableRetriever(TABLE)
    MultiQueryRetriever(base2, gen).retrieve("Q", k=3)
    assert base2.calls == [["Q", "v1"]]  # "q?" duplicates the kept original "Q"


def test_empty_generation_falls_back_to_question(caplog: pytest.LogCaptureFixture) -> None:
    base = TableRetriever(TABLE)
    mq = MultiQueryRetriever(base, FixedGenerator([]), keep_original=False)
    with caplog.at_level(logging.WARNING, logger="aspectrag.multiquery"):
        res = mq.search("Q", k=2)
    assert [h.chunk.chunk_id for h in res.hits] == ["a#0", "b#0"]
    assert "no query left" in caplog.text
    # the queries come back with the result (the retriever keeps no per-call state)
    assert res.queries == [{"query": "Q", "weight": 1.0, "kind": "fallback"}]
    assert not hasattr(mq, "last_queries")


def test_top_k_depth_sources_and_info_log(caplog: pytest.LogCaptureFixture) -> None:
    gen = FixedGenerator([SubQuery("v1", 1.0, "llm")])
    base = TableRetriever(TABLE)
    mq = MultiQueryRetriever(base, gen, depth=1)
    with caplog.at_level(logging.INFO, logger="aspectrag.multiquery"):
        hits = mq.retrieve("Q", k=5)
    assert [h.chunk.chunk_id for h in hits] == ["a#0", "d#0"]  # depth 1 per query
    assert "2 queries" in caplog.text and "v1" in caplog.text
    hits = MultiQueryRetriever(TableRetriever(TABLE), gen).retrieve("Q", 5, ["/src/e#0"])
    assert [h.chunk.chunk_id for h in hits] == ["e#0"]


def test_batch_of_questions_single_base_call_and_thread_pool() -> None:
    table = {**TABLE, "R": ["z#0"], "v1": TABLE["v1"]}
    gen = FixedGenerator([SubQuery("v1", 1.0, "llm")])
    base = TableRetriever(table)
    out = MultiQueryRetriever(base, gen).retrieve_batch(["Q", "R"], k=2)
    assert base.calls == [["Q", "v1", "R"]]  # the shared variant is searched once
    assert [h.chunk.chunk_id for h in out[1]] == ["z#0", "d#0"]  # tie: first seen first
    base2 = TableRetriever(table)
    out2 = MultiQueryRetriever(base2, gen, workers=2).retrieve_batch(["Q", "R"], k=2)
    assert sorted(map(len, base2.calls)) == [1, 2]  # two shards in parallel
    assert [[h.chunk.chunk_id for h in r] for r in out2] == [
        [h.chunk.chunk_id for h in r] for r in out
    ]


def test_invalid_settings() -> None:
    with pytest.raises(ValueError, match="weights"):
        MultiQueryRetriever(TableRetriever(TABLE), None, original_weight=-1)
    with pytest.raises(ValueError, match="depth"):
        MultiQueryRetriever(TableRetriever(TABLE), None, depth=0)


def test_rrf_depth_keeps_each_querys_top_hits_first() -> None:
    table = {
        "Q": ["a#0", "b#0", "c#0", "d#0", "e#0"],
        "v1": ["g#0", "h#0", "i#0", "d#0", "e#0"],
        "v2": ["j#0", "k#0", "l#0", "d#0", "e#0"],
    }
    gen = FixedGenerator([SubQuery("v1", 1.0, "llm"), SubQuery("v2", 1.0, "llm")])
    plain = MultiQueryRetriever(TableRetriever(table), gen, rrf_depth=None).retrieve("Q", k=12)
    # plain RRF: the documents every query has at rank 4-5 beat each query's own top hit
    assert [h.chunk.chunk_id for h in plain[:2]] == ["d#0", "e#0"]
    assert plain[0].score == pytest.approx(3 / 64)
    cut = MultiQueryRetriever(TableRetriever(table), gen, rrf_depth=3).retrieve("Q", k=12)
    ids = [h.chunk.chunk_id for h in cut]
    assert ids[:3] == ["a#0", "g#0", "j#0"]  # rank 1 of each query first (ties: query order)
    assert set(ids[:9]) == {f"{x}#0" for x in "abcghijkl"}
    assert ids[9:] == ["d#0", "e#0"]  # deeper hits only fill the remaining places
    scores = [h.score for h in cut]
    assert scores == sorted(scores, reverse=True)
    assert cut[0].score == pytest.approx(1 / 61)
    assert [p["rank"] for p in cut[9].provenance["queries"]] == [4, 4, 4]
    assert len(MultiQueryRetriever(TableRetriever(table), gen).retrieve("Q", k=4)) == 4
    with pytest.raises(ValueError, match="rrf_depth"):
        MultiQueryRetriever(TableRetriever(table), gen, rrf_depth=0)

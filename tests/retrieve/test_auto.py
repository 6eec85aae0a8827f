"""AutoRetriever: routes from the rule decomposition, anchored fusion, visible decisions."""

from __future__ import annotations

import pytest
from tests.retrieve.test_multiquery import FixedGenerator, TableRetriever

from aspectrag.retrieve.auto import AutoRetriever, route_of
from aspectrag.retrieve.query_gen.base import SubQuery
from aspectrag.retrieve.query_gen.rules import RuleBasedQueryGenerator

TABLE = {
    "Q": ["a#0", "b#0", "c#0", "d#0"],
    "x1": ["e#0", "f#0", "a#0"],
    "x2": ["e#0", "g#0", "f#0"],
}


def _ids(hits):  # type: ignore[no-untyped-def]
    return [h.chunk.chunk_id for h in hits]


@pytest.mark.parametrize(
    ("question", "route"),
    [
        ("What is the boiling point of water?", "single-aspect"),
        ("Were Scott Derrickson and Ed Wood of the same nationality?", "clauses"),
        ("Tell me about volcanoes. Then explain how tides work.", "multi-aspect"),
        ("First paragraph about the Nile river.\n\nSecond paragraph about Roman roads.",
         "multi-aspect"),
    ],
)
def test_routes_follow_the_rule_decomposition(question: str, route: str) -> None:
    gen = RuleBasedQueryGenerator()
    plan = [SubQuery(question, 1.0, "original"), *gen.generate(question)]
    r = route_of(plan, anchor_single=5, anchor_clauses=3)
    assert r.route == route
    assert r.reason.startswith(f"routed: {route}")
    assert r.anchor == {"single-aspect": 5, "clauses": 3, "multi-aspect": 0}[route]


def test_single_aspect_keeps_the_questions_top_and_adds_expansion_hits() -> None:
    gen = FixedGenerator([SubQuery("x1", 1.0, "prf"), SubQuery("x2", 1.0, "prf")])
    base = TableRetriever(TABLE)
    plain = AutoRetriever(base, gen, anchor_single=0).retrieve("Q", k=4)
    assert _ids(plain)[0] == "e#0"  # plain RRF puts the expansion queries' shared hit first
    hits = AutoRetriever(base, gen, anchor_single=2).retrieve("Q", k=4)
    assert _ids(hits)[:2] == ["a#0", "b#0"]  # the question's own first two places
    assert "e#0" in _ids(hits)[2:]  # an expansion-only hit still enters the top k
    assert [h.rank for h in hits] == [1, 2, 3, 4]
    assert all(a.score > b.score for a, b in zip(hits, hits[1:], strict=False))
    assert hits[0].provenance["route"]["route"] == "single-aspect"
    whole = AutoRetriever(base, gen, anchor_single=4).retrieve("Q", k=4)
    assert _ids(whole) == TABLE["Q"]  # anchor >= k: the base ranking itself


def test_multi_aspect_is_plain_multi_query_and_the_decision_is_reported() -> None:
    gen = FixedGenerator([SubQuery("x1", 1.0, "sentences"), SubQuery("x2", 1.0, "sentences")])
    base = TableRetriever(TABLE)
    auto = AutoRetriever(base, gen, anchor_single=5)
    from aspectrag.retrieve.multiquery import MultiQueryRetriever

    assert _ids(auto.retrieve("Q", k=5)) == _ids(MultiQueryRetriever(base, gen).retrieve("Q", 5))
    res = auto.search("Q", k=3)
    assert res.info["route"]["route"] == "multi-aspect"
    assert "2 sentences" in res.info["route"]["reason"]
    assert res.queries[0]["kind"] == "original"


def test_negative_anchor_is_refused() -> None:
    with pytest.raises(ValueError, match="anchors"):
        AutoRetriever(TableRetriever(TABLE), None, anchor_single=-1)


def test_default_anchor_is_the_same_for_both_one_sentence_routes() -> None:
    from aspectrag.retrieve.auto import DEFAULT_ANCHOR_CLAUSES, DEFAULT_ANCHOR_SINGLE

    auto = AutoRetriever(TableRetriever(TABLE), RuleBasedQueryGenerator())
    plan = [SubQuery("Were A and B of the same nationality?", 1.0, "original"),
            SubQuery("Were A of the same nationality?", 1.0, "clauses"),
            SubQuery("Were B of the same nationality?", 1.0, "clauses")]
    r = auto.route(plan)
    assert r.route == "clauses" and r.anchor == DEFAULT_ANCHOR_CLAUSES == DEFAULT_ANCHOR_SINGLE
    assert "keeps the first 5 places" in r.reason

"""Query routing: one default retriever for single- and multi-aspect questions.

A question is routed, per question and from its rule-based decomposition alone (no model call,
no extra search), to one of three routes:

* ``multi-aspect``: the question has several paragraphs or several sentences with content (the
  MRAG stories, a user's long question): every aspect query is searched and the runs are fused
  with multi-query's weighted RRF (:class:`~aspectrag.retrieve.multiquery.MultiQueryRetriever`).
* ``clauses``: one sentence whose coordinated clauses or enumerated items split apart
  ("Were A and B of the same nationality?", "effects of X, Y and Z on W"): the item queries are
  searched and fused, but the question's own ranking keeps the first ``anchor_clauses`` places.
* ``single-aspect``: nothing splits; the question is searched as is, and expansion queries
  (pseudo-relevance feedback) only fill the places after the question's first
  ``anchor_single`` hits.

Anchoring (our method): the fused list is the question's own base ranking for the first
``m`` places, then the multi-query fusion of all queries without those chunks. ``m = k`` is
the base retriever alone, ``m = 0`` plain multi-query. A single-aspect question thus keeps the
base (hybrid) ranking at the top, where nDCG@10 is decided, while a second-hop or
other-aspect passage found by an expansion query still enters the top k (HotpotQA bridge
questions). The thresholds and ``m`` were chosen on development data: SciFact train queries,
HotpotQA and MRAG Wikipedia v1 (``benchmarks/routing_dev.py``; figures in the README).

Signals that did not help (session 10, issue 15; ``benchmarks/routing_signals.py`` on SciFact
train and HotpotQA, ``results/routing/s10_signals_analysis.txt``): on SciFact train only 68 of
703 single-aspect questions change at all under anchoring (36 lose, 32 gain against hybrid),
and losers and gainers have the same hybrid score shape (top-1 0.91 / 0.93, top-1 minus top-2
0.13 / 0.16, top-1 minus 10th 0.51 / 0.50), PRF agreement (5.9 / 5.8 shared documents in the
first 10) and length (12.7 / 12.6 words). The HotpotQA gains of the expansion come from
*confident* questions (top-1 minus 10th 0.26-0.86), so "anchor more when confident" gives
them back (0.905 -> 0.885-0.895). The best of about 200 gated rules (feature x threshold x
anchor) gained +0.0007 on SciFact train, a selection effect, and none kept HotpotQA. A lower
PRF weight (0.25-0.5) costs HotpotQA 0.010-0.015; anchoring whole documents instead of chunks
(5 documents) is -0.0014 [-0.0027, -0.0003] on SciFact train. So the single-aspect rule
stays a fixed anchor of 5 chunks.

The decision is returned with every search: ``SearchResult.info["route"]`` =
``{"route", "reason", "anchor"}`` and the same dict under ``"route"`` in each hit's provenance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aspectrag.retrieve.multiquery import MultiQueryRetriever
from aspectrag.retrieve.query_gen.base import SubQuery
from aspectrag.types import Hit, SearchResult

MULTI_ORIGINS = frozenset({"paragraphs", "sentences"})
"""Rule pieces that mark a question with several aspects."""
CLAUSE_ORIGINS = frozenset({"clauses"})
"""Rule pieces that mark a one-sentence question with coordinated clauses / items."""

DEFAULT_ANCHOR_SINGLE = 5
"""Places kept for the question's own ranking on a single-aspect question (development data)."""
DEFAULT_ANCHOR_CLAUSES = 5
"""Places kept for the question's own ranking on a clause / enumeration question: the same 5
as :data:`DEFAULT_ANCHOR_SINGLE` (one anchor for every one-sentence question). Chosen on
development data at 128/16-token chunks (session 10, ``benchmarks/routing_signals.py``,
``results/routing/s10_*``): SciFact train nDCG@10 auto 0.7371 (anchor 3) -> 0.7379 (anchor 5;
+0.0008 [+0.0002, +0.0017] paired bootstrap; the 105 clause questions are the only ones
changed), HotpotQA both@10 0.905 unchanged, MRAG unchanged (every MRAG question routes
multi-aspect); anchor 5 was also >= 3 at the earlier 224/32 chunks (0.7327 vs 0.7324)."""


@dataclass(frozen=True, slots=True)
class Route:
    """A routing decision.

    Attributes:
        route: ``"single-aspect"``, ``"clauses"`` or ``"multi-aspect"``.
        reason: one line saying why (shown by ``--show-queries``, ``--json`` and the API).
        anchor: leading places kept for the question's own base ranking (0: none).
    """

    route: str
    reason: str
    anchor: int

    def to_dict(self) -> dict[str, Any]:
        """JSON form ``{"route", "reason", "anchor"}`` (``info.route``, hit provenance)."""
        return {"route": self.route, "reason": self.reason, "anchor": self.anchor}


def route_of(plan: Sequence[SubQuery], *, anchor_single: int, anchor_clauses: int) -> Route:
    """The route of a question from its planned queries (their ``origin`` fields)."""
    counts: dict[str, int] = {}
    for q in plan:
        counts[q.origin] = counts.get(q.origin, 0) + 1
    multi = {o: n for o, n in counts.items() if o in MULTI_ORIGINS}
    if multi:
        parts = ", ".join(f"{n} {o}" for o, n in sorted(multi.items()))
        return Route("multi-aspect", f"routed: multi-aspect because the question has {parts}", 0)
    n_clauses = sum(n for o, n in counts.items() if o in CLAUSE_ORIGINS)
    if n_clauses:
        return Route("clauses", f"routed: clauses because one sentence splits into {n_clauses} "
                     f"clauses or items; the question's ranking keeps the first "
                     f"{anchor_clauses} places", anchor_clauses)
    extra = sum(n for o, n in counts.items() if o not in ("original", "question", "fallback"))
    tail = (f"; {extra} expansion quer{'y' if extra == 1 else 'ies'} fill the places after "
            f"the first {anchor_single}" if extra else "")
    return Route("single-aspect", "routed: single-aspect because the question is one sentence "
                 f"without clauses or enumerations{tail}", anchor_single)


class AutoRetriever(MultiQueryRetriever):
    """Routes each question to single- or multi-aspect retrieval (see the module doc).

    Args:
        base: the base retriever (normally hybrid); a single-aspect question keeps its ranking.
        generator: the rule-based query generator (or any generator whose ``origin`` fields
            name rule pieces; an LLM's queries count as multi-aspect only through them).
        anchor_single: leading places kept for the question's ranking, single-aspect route.
        anchor_clauses: the same for the clauses route.
        **kwargs: the :class:`MultiQueryRetriever` options (``rrf_depth``, ``depth``...).

    Raises:
        ValueError: a negative anchor.
    """

    def __init__(self, base: Any, generator: Any, *, anchor_single: int = DEFAULT_ANCHOR_SINGLE,
                 anchor_clauses: int = DEFAULT_ANCHOR_CLAUSES, **kwargs: Any) -> None:
        if anchor_single < 0 or anchor_clauses < 0:
            raise ValueError("auto: anchors must be >= 0")
        super().__init__(base, generator, keep_original=True, **kwargs)
        self.anchor_single, self.anchor_clauses = anchor_single, anchor_clauses
        self.name = f"auto({getattr(base, 'name', type(base).__name__)})"

    def route(self, plan: Sequence[SubQuery]) -> Route:
        """The route of a planned question."""
        return route_of(plan, anchor_single=self.anchor_single,
                        anchor_clauses=self.anchor_clauses)

    def fuse(self, queries: Sequence[SubQuery], runs: Sequence[Sequence[Hit]], k: int) -> list[Hit]:
        """Anchored fusion: the question's own run (``queries[0]``, the original) fills the
        first ``anchor`` places of the route, then :meth:`MultiQueryRetriever.fuse` of all
        runs without those chunks; every hit's provenance gets the route. Scores decrease
        with rank: an anchored hit scores the best fused score plus 0.001 per place above
        the last anchored one."""
        route = self.route(queries)
        fused = super().fuse(queries, runs, 1 << 30)
        if route.anchor and queries and queries[0].origin == "original":
            lead_ids: list[str] = []
            for h in runs[0]:
                if h.chunk.chunk_id not in lead_ids:
                    lead_ids.append(h.chunk.chunk_id)
                if len(lead_ids) == route.anchor:
                    break
            by_id = {h.chunk.chunk_id: h for h in fused}
            top = fused[0].score if fused else 0.0
            lead = [Hit(by_id[c].chunk, top + 1e-3 * (len(lead_ids) - i), 0, by_id[c].provenance)
                    for i, c in enumerate(lead_ids)]
            taken = set(lead_ids)
            fused = lead + [h for h in fused if h.chunk.chunk_id not in taken]
        out = []
        for rank, h in enumerate(fused[:k], start=1):
            prov = dict(h.provenance or {})
            prov["route"] = route.to_dict()
            out.append(Hit(h.chunk, h.score, rank, prov))
        return out

    def search_batch(
        self, queries: Sequence[str], k: int = 10, sources: Sequence[str] | None = None
    ) -> list[SearchResult]:
        """:meth:`MultiQueryRetriever.search_batch` with the route in ``info["route"]``."""
        results = super().search_batch(queries, k, sources)
        for r in results:
            plan = [SubQuery(q["query"], q["weight"], q["kind"]) for q in r.queries]
            r.info["route"] = self.route(plan).to_dict()
        return results


def build_auto(
    store: Any,
    embedder: Any,
    *,
    base: Any,
    anchor_single: int = DEFAULT_ANCHOR_SINGLE,
    anchor_clauses: int = DEFAULT_ANCHOR_CLAUSES,
    pieces: str | None = None,
    query_depth: int | None = None,
    rrf_depth: int | None = None,
    workers: int = 1,
    late_chunking: str | None = None,
) -> AutoRetriever:
    """Factory entry ``auto``: an :class:`AutoRetriever` over the retriever ``base`` (default
    hybrid) with the rule-based generator (``pieces``: ``"paragraphs+sentences+clauses+prf"``
    style, default :data:`~aspectrag.retrieve.query_gen.rules.DEFAULT_PIECES`; PRF feedback
    from BM25 over the same index). Routing always uses the rules, never an LLM (no model
    call per question). ``late_chunking``: see
    :class:`~aspectrag.retrieve.multiquery.MultiQueryRetriever`; None follows the
    ``retrieval.multiquery_late_chunking`` setting.

    Raises:
        ValueError: an unknown rule piece or a negative anchor.
    """
    from aspectrag.retrieve.bm25 import BM25Retriever
    from aspectrag.retrieve.multiquery import DEFAULT_RRF_DEPTH, late_chunking_mode
    from aspectrag.retrieve.query_gen.rules import DEFAULT_PIECES, RuleBasedQueryGenerator

    chosen = tuple(pieces.split("+")) if pieces else DEFAULT_PIECES
    generator = RuleBasedQueryGenerator(chosen, feedback=BM25Retriever(store))
    return AutoRetriever(
        base, generator, anchor_single=anchor_single, anchor_clauses=anchor_clauses,
        depth=query_depth, rrf_depth=DEFAULT_RRF_DEPTH if rrf_depth is None else rrf_depth,
        workers=workers,
        late_chunking=late_chunking_mode() if late_chunking is None else late_chunking,
    )


build_auto.OPTIONS = (  # type: ignore[attr-defined]
    "anchor_single", "anchor_clauses", "pieces", "query_depth", "rrf_depth", "workers",
    "late_chunking",
)
"""Options of the ``auto`` table entry (besides ``base`` and the base's own options)."""

"""Multi-Query retrieval: search several rewritings / sub-questions of a question, fuse the rankings.

Method (ALGORITHMS.md section 1): LangChain's ``MultiQueryRetriever`` and RAG-Fusion
(Rackauckas 2024), with what their users asked for since: the original question kept (on by
default), weighted reciprocal rank fusion (Cormack, Clarke & Büttcher 2009; c = 60, 1-based
ranks) instead of an unordered union, a final top-k, results deduplicated by chunk id, one
batched base search for all queries (query embeddings computed in one batch), fusion weights
that really apply, and each hit saying which queries found it at which rank. Optionally
(``late_chunking``), the sub-queries that are pieces of the question are pooled from the question's own token vectors
(late chunking, Günther et al. 2024; :mod:`aspectrag.embed.late`) instead of encoded alone.
"""

from __future__ import annotations

import contextvars
import logging
import re
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aspectrag.embed.late import LATE_MODES, SpanPlan, plan_spans
from aspectrag.embed.late import late_chunking as pooled_spans
from aspectrag.retrieve.base import Retriever
from aspectrag.retrieve.fusion import reciprocal_rank_fusion
from aspectrag.retrieve.query_gen.base import QueryGenerator, SubQuery
from aspectrag.types import Hit, SearchResult

log = logging.getLogger("aspectrag.multiquery")

DEFAULT_RRF_DEPTH = 3
"""Ranks per query fused first (see ``MultiQueryRetriever``); chosen on MRAG Wikipedia v1."""
DEFAULT_LATE_MODE = "spans"
"""Which sub-queries the ``retrieval.multiquery_late_chunking`` setting pools from the
question (:data:`aspectrag.embed.late.LATE_MODES`). The setting is off by default: measured
(benchmarks/late_chunking.py, results/late_chunking.txt) late chunking lowers MRAG Wikipedia
v1 W@a (hybrid -0.018 [-0.029, -0.008], dense -0.056 [-0.073, -0.038]; the sentences of a
multi-aspect story pooled in context blur into the story), keeps HotpotQA both@10 within the
CI (-0.005 [-0.015, 0]) and cuts multi-query cost only from 2.71x to 2.51x (spans) / 2.35x
(subsequences) of one query (under load): few rule variants are spans of the question."""


def _key(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().rstrip("?.!").strip().casefold()


class MultiQueryRetriever:
    """Wraps a base retriever: generate queries, search them all, fuse with weighted RRF.

    Args:
        base: any :class:`~aspectrag.retrieve.base.Retriever` (bm25, dense, hybrid, multi-head).
        generator: produces the queries (LLM, replay, rule-based); None searches the question only.
        keep_original: also search the question itself (default True).
        original_weight: RRF weight of the question's ranking.
        weights: multipliers by query origin, e.g. ``{"prf": 0.5, "llm": 1.0}``, applied on top
            of each :class:`SubQuery`'s own weight; a final weight of 0 drops the query.
        depth: hits fetched per query from the base (default ``max(k, 10)``).
        rrf_depth: the first ``rrf_depth`` ranks of every query's list are fused first (RRF
            over those ranks); hits found only deeper fill the remaining places, ordered by
            RRF over the full lists. None fuses the full lists at once (plain RRF). With many
            queries, plain RRF ranks documents that sit mid-list for several queries above a
            query's own top hits; cutting the fusion depth keeps every aspect's top hits
            (measured in benchmarks/multiquery_mrag.py; default 3).
        c: RRF constant (60).
        max_queries: cap on the number of generated queries (None: no cap).
        workers: > 1 splits the base search into that many batches run in a thread pool (and
            generates the queries of several questions in parallel in ``retrieve_batch``); 1
            runs one batch, so query embeddings are computed in one forward pass.
        late_chunking: ``"spans"`` or ``"subsequences"``: sub-queries whose words are a run
            (or an in-order subsequence) of the question's are mean-pooled from the
            question's token vectors, one forward pass shared with the question (late
            chunking, :mod:`aspectrag.embed.late`; ONNX query embedders only, others encode
            them alone); None or ``"off"`` (default) encodes every query alone. Not applied over a
            multi-head base (CLS-pooled heads have no span of their own).

    Attributes:
        name: ``"multiquery(<base name>)"``.

    The queries searched for a question come back with its hits from :meth:`search` /
    :meth:`search_batch` (nothing per call is kept on the retriever, so one instance serves
    concurrent searches).
    """

    def __init__(
        self,
        base: Retriever,
        generator: QueryGenerator | None = None,
        *,
        keep_original: bool = True,
        original_weight: float = 1.0,
        weights: Mapping[str, float] | None = None,
        depth: int | None = None,
        rrf_depth: int | None = DEFAULT_RRF_DEPTH,
        c: float = 60.0,
        max_queries: int | None = None,
        workers: int = 1,
        late_chunking: str | None = None,
    ) -> None:
        if late_chunking in ("off", "none", ""):
            late_chunking = None
        if late_chunking is not None and late_chunking not in LATE_MODES:
            raise ValueError(f"late_chunking {late_chunking!r} unknown; use one of {LATE_MODES}")
        if original_weight < 0 or any(w < 0 for w in (weights or {}).values()):
            raise ValueError("multi-query weights must be >= 0")
        if depth is not None and depth < 1:
            raise ValueError(f"multi-query depth must be >= 1, got {depth}")
        if rrf_depth is not None and rrf_depth < 1:
            raise ValueError(f"multi-query rrf_depth must be >= 1, got {rrf_depth}")
        self.base = base
        self.generator = generator
        self.keep_original = keep_original
        self.original_weight = original_weight
        self.weights = dict(weights or {})
        self.depth = depth
        self.rrf_depth = rrf_depth
        self.c = c
        self.max_queries = max_queries
        self.workers = max(1, workers)
        base_name = str(getattr(base, "name", ""))
        self.late_chunking = None if base_name.startswith(("multihead", "split")) else late_chunking
        self.name = f"multiquery({getattr(base, 'name', type(base).__name__)})"

    # -- query planning -------------------------------------------------------------------
    def plan(self, question: str, generated: Sequence[SubQuery] | None = None) -> list[SubQuery]:
        """The weighted queries searched for ``question``: the original (if kept) first, then
        the generated ones (``generated`` if given, else the generator's), duplicates removed
        case- and space-insensitively (first kept), zero-weight queries dropped.
        Never empty: falls back to the question alone."""
        if generated is None:
            generated = self.generator.generate(question) if self.generator is not None else []
        if self.max_queries is not None:
            generated = list(generated)[: self.max_queries]
        cands: list[SubQuery] = []
        if self.keep_original:
            cands.append(SubQuery(question, self.original_weight, "original"))
        for q in generated:
            mult = self.weights.get(q.origin, 1.0)
            if q.origin == "fallback":
                mult = self.original_weight
            cands.append(SubQuery(q.text, q.weight * mult, q.origin))
        out: list[SubQuery] = []
        seen: set[str] = set()
        for q in cands:
            k = _key(q.text)
            if not k or k in seen or q.weight <= 0:
                continue
            seen.add(k)
            out.append(q)
        if not out:
            log.warning("multi-query: no query left for %r; searching the question", question[:80])
            out = [SubQuery(question, 1.0, "fallback")]
        return out

    # -- searching ------------------------------------------------------------------------
    def span_plan(self, questions: Sequence[str], plans: Sequence[Sequence[SubQuery]]
                  ) -> SpanPlan | None:
        """The late-chunking plan of planned questions (None when ``late_chunking`` is off)."""
        if self.late_chunking is None:
            return None
        pairs = [(question, q.text) for question, plan in zip(questions, plans, strict=True)
                 for q in plan]
        return plan_spans(pairs, self.late_chunking)

    def _search(
        self, texts: list[str], depth: int, sources: Sequence[str] | None,
        spans: SpanPlan | None = None,
    ) -> list[list[Hit]]:
        def one(batch: list[str]) -> list[list[Hit]]:
            with pooled_spans(spans):
                return self.base.retrieve_batch(batch, depth, sources)

        if self.workers <= 1 or len(texts) <= 1:
            return one(texts)
        n = min(self.workers, len(texts))
        size = -(-len(texts) // n)
        shards = [texts[i : i + size] for i in range(0, len(texts), size)]
        with ThreadPoolExecutor(max_workers=len(shards)) as pool:
            parts = pool.map(lambda s: contextvars.copy_context().run(one, s), shards)
            return [run for part in parts for run in part]

    def fuse(self, queries: Sequence[SubQuery], runs: Sequence[Sequence[Hit]], k: int) -> list[Hit]:
        """Weighted RRF of one ranking per query; top ``k`` hits, unique by chunk id.

        ``score(d) = sum_i w_i / (c + rank_i(d))`` over the queries i whose first
        ``rrf_depth`` hits contain d (1-based ranks); documents in none of those come after
        all that are, ordered by the same sum over the full lists (their ``Hit.score`` is that
        sum times 1e-6, so scores decrease with rank). ``Hit.provenance`` is ``{"queries":
        [{"query", "origin", "weight", "rank"}...], "base": <the base's provenance at its best
        rank>}``, listing every query whose list holds the chunk.
        """
        rankings = [[h.chunk.chunk_id for h in run] for run in runs]
        weights = [q.weight for q in queries]
        full = reciprocal_rank_fusion(rankings, weights, self.c)
        if self.rrf_depth is None:
            fused = full
        else:
            head = reciprocal_rank_fusion([r[: self.rrf_depth] for r in rankings], weights, self.c)
            in_head = {cid for cid, _ in head}
            fused = head + [(cid, 1e-6 * s) for cid, s in full if cid not in in_head]
        found: dict[str, list[dict[str, Any]]] = {}
        best: dict[str, Hit] = {}
        for q, run in zip(queries, runs, strict=True):
            seen: set[str] = set()
            for rank, h in enumerate(run, start=1):
                cid = h.chunk.chunk_id
                if cid in seen:
                    continue
                seen.add(cid)
                found.setdefault(cid, []).append(
                    {"query": q.text, "origin": q.origin, "weight": q.weight, "rank": rank}
                )
                if cid not in best or rank < best[cid].rank:
                    best[cid] = Hit(h.chunk, h.score, rank, h.provenance)
        out: list[Hit] = []
        for cid, score in fused[:k]:
            b = best[cid]
            prov: dict[str, Any] = {"queries": found[cid]}
            if b.provenance:
                prov["base"] = b.provenance
            out.append(Hit(b.chunk, float(score), len(out) + 1, prov))
        return out

    def retrieve_planned(
        self, plans: Sequence[Sequence[SubQuery]], k: int = 10, sources: Sequence[str] | None = None,
        questions: Sequence[str] | None = None,
    ) -> list[list[Hit]]:
        """Search already planned queries (one plan per question) in one base batch and fuse.
        ``questions`` (one per plan; default: each plan's first query) anchor late chunking."""
        depth = self.depth or max(k, 10)
        unique = list(dict.fromkeys(q.text for plan in plans for q in plan))
        if questions is None:
            questions = [plan[0].text if plan else "" for plan in plans]
        spans = self.span_plan(questions, plans)
        t0 = time.perf_counter()
        runs = dict(zip(unique, self._search(unique, depth, sources, spans), strict=True))
        log.debug("multi-query: %d base searches in %.3f s", len(unique), time.perf_counter() - t0)
        return [self.fuse(plan, [runs[q.text] for q in plan], k) for plan in plans]

    def retrieve(self, query: str, k: int = 10, sources: Sequence[str] | None = None) -> list[Hit]:
        """Top-``k`` fused hits for the question ``query`` (see :meth:`fuse` for provenance)."""
        return self.retrieve_batch([query], k, sources)[0]

    def retrieve_batch(
        self, queries: Sequence[str], k: int = 10, sources: Sequence[str] | None = None
    ) -> list[list[Hit]]:
        """``retrieve`` for several questions; all their queries go to the base in one batch."""
        return [r.hits for r in self.search_batch(queries, k, sources)]

    def search(
        self, query: str, k: int = 10, sources: Sequence[str] | None = None
    ) -> SearchResult:
        """The hits of :meth:`retrieve` with the queries searched (``SearchResult.queries``:
        query text, final weight, and origin as ``kind``), the planning and searching
        seconds, and the base retriever's name in ``info["base"]``."""
        return self.search_batch([query], k, sources)[0]

    def search_batch(
        self, queries: Sequence[str], k: int = 10, sources: Sequence[str] | None = None
    ) -> list[SearchResult]:
        """:meth:`search` for several questions (one base batch; the timings are the batch's)."""
        t0 = time.perf_counter()
        if self.workers > 1 and len(queries) > 1:
            with ThreadPoolExecutor(max_workers=self.workers) as pool:
                plans = list(pool.map(self.plan, queries))
        else:
            plans = [self.plan(q) for q in queries]
        for question, plan in zip(queries, plans, strict=True):
            log.info(
                "multi-query: %d queries for %r: %s",
                len(plan),
                question[:80],
                "; ".join(f"[{q.origin} w={q.weight:g}] {q.text[:80]}" for q in plan),
            )
        t1 = time.perf_counter()
        fused = self.retrieve_planned(plans, k, sources, queries)
        timings = {"plan": t1 - t0, "retrieve": time.perf_counter() - t1}
        base = getattr(self.base, "name", type(self.base).__name__)
        return [
            SearchResult(
                hits,
                [{"query": q.text, "weight": q.weight, "kind": q.origin} for q in plan],
                dict(timings),
                {"base": base},
            )
            for plan, hits in zip(plans, fused, strict=True)
        ]


def build_multiquery(
    store: Any,
    embedder: Any,
    *,
    base: Retriever,
    queries: str | None = "auto",
    queries_from: str | None = None,
    n_queries: int = 3,
    keep_original: bool = True,
    original_weight: float = 1.0,
    query_weights: Mapping[str, float] | None = None,
    query_depth: int | None = None,
    rrf_depth: int | None = DEFAULT_RRF_DEPTH,
    workers: int = 1,
    late_chunking: str | None = None,
) -> MultiQueryRetriever:
    """Factory entry ``multiquery``: a :class:`MultiQueryRetriever` over the retriever ``base``.

    Args:
        store, embedder: the index's store and embedder (as for every factory entry).
        base: the base retriever, built by the retriever table from the ``base`` name the
            user gave (``bm25``, ``dense``, ``hybrid``, ``multihead``...) with the options
            this builder does not declare (``fusion``, ``weight``...).
        queries: query generator spec (see :mod:`aspectrag.retrieve.query_gen.factory`).
        queries_from: a replay file; overrides ``queries``.
        n_queries: LLM variants asked for.
        keep_original, original_weight, workers: see :class:`MultiQueryRetriever`.
        query_weights: multipliers by query origin (``weights`` of the retriever).
        query_depth: hits per query from the base (``depth`` of the retriever).
        rrf_depth: see :class:`MultiQueryRetriever`.
        late_chunking: see :class:`MultiQueryRetriever`; None follows the
            ``retrieval.multiquery_late_chunking`` setting (:func:`late_chunking_mode`).

    Raises:
        aspectrag.errors.ConfigError / LoadError: bad generator spec / replay file.
    """
    from aspectrag.retrieve.bm25 import BM25Retriever
    from aspectrag.retrieve.query_gen.factory import build_query_generator

    spec = f"replay:{queries_from}" if queries_from else queries
    generator = build_query_generator(spec, feedback=BM25Retriever(store), n=n_queries)
    return MultiQueryRetriever(
        base,
        generator,
        keep_original=keep_original,
        original_weight=original_weight,
        weights=query_weights,
        depth=query_depth,
        rrf_depth=rrf_depth,
        workers=workers,
        late_chunking=late_chunking_mode() if late_chunking is None else late_chunking,
    )


def late_chunking_mode() -> str | None:
    """:data:`DEFAULT_LATE_MODE` when the ``retrieval.multiquery_late_chunking`` setting is
    on, else None."""
    from aspectrag.settings import get_settings

    return DEFAULT_LATE_MODE if get_settings().retrieval.multiquery_late_chunking else None


build_multiquery.OPTIONS = (  # type: ignore[attr-defined]
    "queries", "queries_from", "n_queries", "keep_original", "original_weight", "query_weights",
    "query_depth", "rrf_depth", "workers", "late_chunking",
)
"""Options of the ``multiquery`` table entry (besides ``base`` and the base's own options)."""

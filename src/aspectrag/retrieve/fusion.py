"""Rank fusion: reciprocal rank fusion and convex combination of normalised scores."""

from __future__ import annotations

from collections.abc import Sequence

from aspectrag.store.base import ScoredId


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[str]],
    weights: Sequence[float] | None = None,
    c: float = 60.0,
) -> list[tuple[str, float]]:
    """Weighted reciprocal rank fusion (Cormack, Clarke & Büttcher, SIGIR 2009).

    ``score(d) = sum_i w_i / (c + rank_i(d))`` with 1-based ranks; ids missing from a list
    contribute nothing for it.

    Args:
        rankings: one list of ids per ranking, best first (a repeated id keeps its first rank and
            does not push later ids down).
        weights: one weight per ranking (default all 1.0).
        c: the RRF constant (60 in the paper).

    Returns:
        ``[(id, fused score)]`` sorted by score descending (ties: first-seen order).

    Raises:
        ValueError: if ``weights`` and ``rankings`` differ in length.
    """
    if weights is None:
        weights = [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ValueError(f"{len(weights)} weights for {len(rankings)} rankings")
    scores: dict[str, float] = {}
    for ranking, w in zip(rankings, weights, strict=True):
        seen: set[str] = set()
        for doc in ranking:
            if doc in seen:
                continue
            seen.add(doc)  # rank among distinct ids, 1-based
            scores[doc] = scores.get(doc, 0.0) + w / (c + len(seen))
    return sorted(scores.items(), key=lambda kv: -kv[1])


def convex_combination(
    runs: Sequence[Sequence[ScoredId]], weights: Sequence[float]
) -> list[tuple[str, float]]:
    """Convex combination of min-max normalised scores (Bruch, Gai & Ingber, TOIS 2023).

    Each run's scores are scaled to [0, 1] over its own candidates; an id absent from a run
    gets 0 for that run. ``score(d) = sum_i w_i * norm_i(d)``.

    Args:
        runs: one scored candidate list per retriever (e.g. BM25 top-N, dense top-N).
        weights: one weight per run, normally summing to 1.

    Returns:
        ``[(id, fused score)]`` sorted by score descending.
    """
    if len(weights) != len(runs):
        raise ValueError(f"{len(weights)} weights for {len(runs)} runs")
    fused: dict[str, float] = {}
    for run, w in zip(runs, weights, strict=True):
        if not run:
            continue
        vals = [s.score for s in run]
        lo, hi = min(vals), max(vals)
        span = hi - lo
        for s in run:
            norm = (s.score - lo) / span if span > 0 else 1.0
            fused[s.chunk_id] = fused.get(s.chunk_id, 0.0) + w * norm
    for run in runs:
        for s in run:
            fused.setdefault(s.chunk_id, 0.0)
    return sorted(fused.items(), key=lambda kv: -kv[1])

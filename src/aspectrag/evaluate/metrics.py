"""Metrics shared by every evaluation (BEIR, MRAG, the LoRA dev set): chunk hits -> document
rankings, running a retriever over a query set, ranx metrics, and the paired bootstrap.

- Chunk hits are collapsed to documents by first occurrence, i.e. each document is ranked by its
  best chunk (MaxP, Dai & Callan 2019).
- nDCG / Recall / MRR are computed with ranx (Bassani 2022); a judged query without hits
  counts as zero.
- Paired bootstrap of a mean difference (Efron & Tibshirani 1993; for IR, Sakai 2006),
  optionally stratified (the MRAG evaluation resamples within each aspect count).
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Mapping, Sequence

import numpy as np

from aspectrag.retrieve.base import Retriever
from aspectrag.types import Hit

BEIR_METRICS = ("ndcg@10", "recall@100", "mrr@10")


def hits_to_docs(hits: Sequence[Hit], limit: int) -> list[str]:
    """Distinct ``doc_id`` of chunk hits in rank order (first occurrence), at most ``limit``."""
    out: list[str] = []
    seen: set[str] = set()
    for h in hits:
        if h.chunk.doc_id not in seen:
            seen.add(h.chunk.doc_id)
            out.append(h.chunk.doc_id)
            if len(out) == limit:
                break
    return out


def ranking_to_run(ranking: Sequence[str], n_docs: int) -> dict[str, float]:
    """A ranx run row ``{doc_id: score}`` from a ranked id list: scores strictly decreasing
    by rank (``n_docs - position``), so that metrics only see the order, whatever the
    retriever's score scale."""
    return {d: float(n_docs - i) for i, d in enumerate(ranking)}


def run_retriever(
    retriever: Retriever,
    texts: Sequence[str],
    *,
    chunk_depth: int,
    n_docs: int,
    batch: int,
    progress: bool = False,
) -> tuple[list[list[str]], float]:
    """Document rankings of ``retriever`` for every query text, and the wall-clock seconds of
    all retrieval calls.

    ``chunk_depth`` chunk hits are requested per query (``retrieve_batch`` over ``batch``
    queries at a time) and collapsed to at most ``n_docs`` documents (:func:`hits_to_docs`).
    Works for every retriever (bm25, dense, hybrid, multihead, multiquery, reranked...).
    """
    rankings: list[list[str]] = []
    starts = range(0, len(texts), batch)
    if progress:
        from aspectrag.progress import track

        starts = track(starts, "retrieving", "batch")  # type: ignore[assignment]
    t0 = time.perf_counter()
    for i in starts:
        for hits in retriever.retrieve_batch(list(texts[i : i + batch]), chunk_depth):
            rankings.append(hits_to_docs(hits, n_docs))
    return rankings, time.perf_counter() - t0


def score_run(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]],
              metrics: Sequence[str] = BEIR_METRICS) -> dict[str, float]:
    """Mean metrics with ranx; judged queries with no hits count as zero."""
    Qrels, Run, evaluate = _ranx()

    res = evaluate(Qrels(qrels), Run(_complete(qrels, run)), list(metrics), make_comparable=True)
    if isinstance(res, float):
        res = {metrics[0]: res}
    return {m: float(res[m]) for m in metrics}


def per_query_scores(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]],
                     metric: str = "ndcg@10") -> np.ndarray:
    """Per-query ``metric`` with ranx: float64 array of shape (len(qrels),), in ``qrels``
    order; queries with no hits score zero."""
    Qrels, Run, evaluate = _ranx()

    return np.asarray(evaluate(Qrels(qrels), Run(_complete(qrels, run)), metric,
                               return_mean=False, make_comparable=True), dtype=np.float64)


def _complete(qrels: dict[str, dict[str, int]],
              run: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """``run`` with a dummy hit for every judged query that has none (it then scores zero)."""
    return {q: (run.get(q) or {"__none__": 0.0}) for q in qrels}


def paired_bootstrap(
    a: np.ndarray,
    b: np.ndarray,
    strata: Sequence[Hashable] | None = None,
    *,
    n_boot: int = 10_000,
    seed: int = 0,
    level: float = 0.95,
) -> Mapping[str, tuple[float, float, float]]:
    """Paired bootstrap of the mean difference ``a - b`` of two systems' per-query values
    (same queries, same order; float arrays of shape (n,)).

    Queries are resampled with replacement within each stratum (``strata[i]`` of query i; None:
    one stratum), so every replicate keeps each stratum's size; NaN differences (queries
    without a value) are left out. Returns ``{"<stratum>": (diff, lo, hi), ..., "mean": (diff,
    lo, hi)}`` (no per-stratum entries when ``strata`` is None), where ``mean`` is the mean over
    strata of the strata's mean differences and ``lo``/``hi`` the percentile interval at
    ``level`` over ``n_boot`` replicates.

    Raises:
        ValueError: ``a``, ``b`` (and ``strata``) differ in length, or are empty.
    """
    if np.shape(a) != np.shape(b) or np.size(a) == 0:
        raise ValueError(f"need two non-empty per-query arrays of one shape, got {np.shape(a)} "
                         f"and {np.shape(b)}")
    if strata is not None and len(strata) != np.size(a):
        raise ValueError(f"{len(strata)} strata for {np.size(a)} queries")
    rng = np.random.default_rng(seed)
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    groups = np.asarray(strata) if strata is not None else np.zeros(d.size, dtype=np.int64)
    out: dict[str, tuple[float, float, float]] = {}
    lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
    reps_by_stratum = []
    points = []
    for stratum in sorted(set(groups.tolist())):
        x = d[(groups == stratum) & ~np.isnan(d)]
        idx = rng.integers(0, len(x), size=(n_boot, len(x)))
        reps = x[idx].mean(axis=1)
        reps_by_stratum.append(reps)
        point = float(x.mean())
        points.append(point)
        if strata is not None:
            out[str(stratum)] = (point, float(np.quantile(reps, lo_q)),
                                 float(np.quantile(reps, hi_q)))
    mean_reps = np.mean(reps_by_stratum, axis=0)
    out["mean"] = (float(np.mean(points)), float(np.quantile(mean_reps, lo_q)),
                   float(np.quantile(mean_reps, hi_q)))
    return out


def _ranx():  # type: ignore[no-untyped-def]
    """``ranx``'s Qrels, Run and evaluate (extra ``eval``; MissingExtraError when absent)."""
    from aspectrag.extras import optional_import

    ranx = optional_import("ranx", "evaluation metrics")
    return ranx.Qrels, ranx.Run, ranx.evaluate

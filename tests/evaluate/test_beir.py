"""Evaluation metrics (shared by BEIR and MRAG): document runs, ranx scoring, per-query
scores, paired bootstrap."""

from __future__ import annotations

import numpy as np
import pytest

from aspectrag.evaluate.metrics import (
    hits_to_docs,
    paired_bootstrap,
    per_query_scores,
    ranking_to_run,
    score_run,
)
from aspectrag.types import Chunk, Hit

QRELS = {"q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d3": 1}}


def test_per_query_scores_match_the_mean_and_count_missing_queries_as_zero() -> None:
    run = {"q1": {"d1": 2.0, "x": 1.0}, "q2": {"x": 2.0, "d2": 1.0}}  # q3: no hits
    per_q = per_query_scores(QRELS, run, "ndcg@10")
    assert per_q.dtype == np.float64 and per_q.shape == (3,)
    np.testing.assert_allclose(per_q, [1.0, 1 / np.log2(3), 0.0])
    assert per_q.mean() == pytest.approx(score_run(QRELS, run, ["ndcg@10"])["ndcg@10"])


def paired_bootstrap_ci(a, b):  # type: ignore[no-untyped-def]
    return paired_bootstrap(a, b)["mean"]  # one stratum: the plain paired bootstrap


def test_paired_bootstrap_ci() -> None:
    rng = np.random.default_rng(1)
    b = rng.random(300)
    assert paired_bootstrap_ci(b, b) == (0.0, 0.0, 0.0)
    diff, lo, hi = paired_bootstrap_ci(b + 0.05 + rng.normal(0, 0.1, 300), b)
    assert lo < diff < hi and lo > 0.0  # a clear +0.05 gain: the interval excludes zero
    noise = rng.normal(0, 0.1, 300)
    diff, lo, hi = paired_bootstrap_ci(b + noise - noise.mean(), b)
    assert lo < 0.0 < hi and abs(diff) < 1e-12  # no gain: zero inside the interval
    with pytest.raises(ValueError, match="one shape"):
        paired_bootstrap_ci(b, b[:10])


def test_hits_to_doc_run_keeps_each_document_at_its_best_chunk() -> None:
    def hit(doc: str, n: int) -> Hit:
        chunk = Chunk(f"{doc}#{n}", doc, "src", "", n, "text", 0, 4)
        return Hit(chunk, score=1.0, rank=1)

    run = ranking_to_run(hits_to_docs([hit("a", 0), hit("b", 0), hit("a", 1), hit("c", 0)], 2), 2)
    assert list(run) == ["a", "b"] and run["a"] > run["b"]

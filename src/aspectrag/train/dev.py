"""Held-out development evaluation for embedder fine-tuning: tune on it, not on the test split.

The training queries are split by query text (every pair of one query lands on the same side,
seeded). The dev queries are ranked against a small dev corpus: the union of their positives and
of their BM25-mined hard negatives (the sampled-corpus setting of sentence-transformers'
``InformationRetrievalEvaluator``), and scored with nDCG@10 and Recall@10 by ranx. The dev
corpus is a few thousand passages at most, so the score before and after training costs one
embedding pass over it each, instead of re-embedding the whole corpus per configuration.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from aspectrag.train.data import TrainPair
from aspectrag.train.encode import embed_eval

DEV_METRICS = ("ndcg@10", "recall@10")


def split_by_query(
    pairs: Sequence[TrainPair], fraction: float, seed: int = 0
) -> tuple[list[TrainPair], list[TrainPair]]:
    """``(train, dev)``: a seeded ``fraction`` of the distinct query texts (at least one)
    goes to dev with all its pairs.

    Raises:
        ValueError: ``fraction`` not in (0, 1), or fewer than 2 distinct queries.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"dev fraction must be in (0, 1), got {fraction}")
    queries = sorted({p.query for p in pairs})
    if len(queries) < 2:
        raise ValueError("a dev split needs at least 2 distinct queries")
    n_dev = min(len(queries) - 1, max(1, round(fraction * len(queries))))
    rng = np.random.default_rng(seed)
    dev_q = {queries[i] for i in rng.choice(len(queries), size=n_dev, replace=False)}
    return [p for p in pairs if p.query not in dev_q], [p for p in pairs if p.query in dev_q]


@dataclass(slots=True)
class DevSet:
    """Dev queries, dev corpus and binary qrels (query index -> corpus indices)."""

    queries: list[str]
    corpus: list[str]
    qrels: dict[int, set[int]]

    @classmethod
    def from_pairs(cls, pairs: Sequence[TrainPair]) -> DevSet:
        """Corpus = every positive and negative of ``pairs``; relevant = a query's positives."""
        queries = sorted({p.query for p in pairs})
        corpus = sorted({p.positive for p in pairs} | {x for p in pairs for x in p.negatives})
        qi = {q: i for i, q in enumerate(queries)}
        ci = {t: i for i, t in enumerate(corpus)}
        qrels: dict[int, set[int]] = {}
        for p in pairs:
            qrels.setdefault(qi[p.query], set()).add(ci[p.positive])
        return cls(queries, corpus, qrels)

    def evaluate(self, q: np.ndarray, d: np.ndarray) -> dict[str, float]:
        """Metrics of ranking the corpus by inner product. ``q``: float32 (n_queries, dim),
        ``d``: float32 (n_corpus, dim), unit rows, in the order of ``queries`` / ``corpus``."""
        from aspectrag.evaluate.metrics import score_run

        scores = q @ d.T
        top = np.argsort(-scores, axis=1)[:, :100]
        run = {str(i): {str(j): float(scores[i, j]) for j in row} for i, row in enumerate(top)}
        qrels = {str(i): {str(j): 1 for j in rel} for i, rel in self.qrels.items()}
        return score_run(qrels, run, DEV_METRICS)


def dev_metrics(model, tokenizer, dev: DevSet, max_tokens: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """nDCG@10 / Recall@10 of ``model`` on ``dev`` (see the module doc)."""
    q = embed_eval(model, tokenizer, dev.queries, max_tokens)
    d = embed_eval(model, tokenizer, dev.corpus, max_tokens)
    return dev.evaluate(q, d)

"""Evaluation on BEIR-layout data sets (Thakur et al. 2021): nDCG@10, Recall@100, MRR@10.

Chunks are aggregated to documents by their best-ranked chunk (MaxP, Dai & Callan 2019);
metrics are computed with ranx.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aspectrag.errors import AspectragError
from aspectrag.retrieve.base import Retriever
from aspectrag.types import Hit

METRICS = ("ndcg@10", "recall@100", "mrr@10")


@dataclass(slots=True)
class BeirDataset:
    """A BEIR data set: ``corpus`` path, ``queries`` {qid: text}, ``qrels`` {qid: {doc_id: grade}}
    restricted to the queries judged in the split."""

    root: Path
    corpus: Path
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def load_beir(root: str | Path, split: str = "test") -> BeirDataset:
    """Read ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv`` from ``root``.

    Raises:
        AspectragError: a file is missing or malformed (the message names it).
    """
    root = Path(root)
    corpus, qfile, qrels_file = root / "corpus.jsonl", root / "queries.jsonl", root / "qrels" / f"{split}.tsv"
    for f in (corpus, qfile, qrels_file):
        if not f.exists():
            raise AspectragError(f"{f}: missing; a BEIR folder needs corpus.jsonl, queries.jsonl "
                                 f"and qrels/{split}.tsv")
    qrels: dict[str, dict[str, int]] = {}
    with qrels_file.open(newline="") as fh:
        reader = csv.reader(fh, delimiter="\t")
        for i, row in enumerate(reader):
            if i == 0 and row and row[0] in ("query-id", "query_id", "qid"):
                continue
            if len(row) < 3:
                raise AspectragError(f"{qrels_file}:{i + 1}: expected 'query-id corpus-id score'")
            qrels.setdefault(row[0], {})[row[1]] = int(float(row[2]))
    queries: dict[str, str] = {}
    with qfile.open() as fh:
        for i, line in enumerate(fh):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise AspectragError(f"{qfile}:{i + 1}: invalid JSON ({e.msg})") from e
            if str(obj["_id"]) in qrels:
                queries[str(obj["_id"])] = obj["text"]
    missing = set(qrels) - set(queries)
    if missing:
        raise AspectragError(f"{qfile}: no text for {len(missing)} judged queries, e.g. {sorted(missing)[:3]}")
    return BeirDataset(root, corpus, queries, qrels)


def default_eval_index(root: Path) -> Path:
    """A reusable cache folder for the index of a BEIR corpus: ``<cache_dir>/beir/<name>-<hash>``
    (``cache_dir`` setting, default ``~/.cache/aspectrag``)."""
    from aspectrag.settings import get_settings

    h = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:8]
    return get_settings().cache_dir / "beir" / f"{root.resolve().name}-{h}"


def hits_to_doc_run(hits: Sequence[Hit], n_docs: int) -> dict[str, float]:
    """Aggregate chunk hits to documents by their best chunk; first ``n_docs`` documents.

    Scores are made strictly decreasing by rank (``n_docs - position``) so that metrics only see
    the order, whatever the retriever's score scale.
    """
    docs: dict[str, float] = {}
    for h in hits:
        if h.chunk.doc_id not in docs:
            docs[h.chunk.doc_id] = float(n_docs - len(docs))
            if len(docs) == n_docs:
                break
    return docs


def run_retriever(retriever: Retriever, queries: dict[str, str], *, n_docs: int = 100,
                  chunk_depth: int = 200, batch: int = 64,
                  progress: bool = False) -> dict[str, dict[str, float]]:
    """Document run ``{qid: {doc_id: score}}`` of ``retriever`` over ``queries``."""
    qids = list(queries)
    run: dict[str, dict[str, float]] = {}
    it = range(0, len(qids), batch)
    if progress:
        from aspectrag.progress import track

        it = track(it, "retrieving", "batch")
    for i in it:
        part = qids[i : i + batch]
        results = retriever.retrieve_batch([queries[q] for q in part], chunk_depth)
        for q, hits in zip(part, results, strict=True):
            run[q] = hits_to_doc_run(hits, n_docs)
    return run


def _ranx():  # type: ignore[no-untyped-def]
    """``ranx``'s Qrels, Run and evaluate (extra ``eval``; MissingExtraError when absent)."""
    from aspectrag.extras import optional_import

    ranx = optional_import("ranx", "evaluation metrics")
    return ranx.Qrels, ranx.Run, ranx.evaluate


def score_run(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]],
              metrics: Sequence[str] = METRICS) -> dict[str, float]:
    """Mean metrics with ranx (Bassani 2022); queries with no hits count as zero."""
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


def paired_bootstrap_ci(a: np.ndarray, b: np.ndarray, *, n_boot: int = 10_000, seed: int = 0,
                        level: float = 0.95) -> tuple[float, float, float]:
    """``(mean(a - b), lo, hi)``: the mean paired difference of two systems' per-query scores
    (same queries, same order; shape (n,)) and its percentile bootstrap interval at ``level``
    over ``n_boot`` resamples of the queries (Efron & Tibshirani 1993; for IR, Sakai 2006).

    Raises:
        ValueError: ``a`` and ``b`` differ in shape or are empty.
    """
    if np.shape(a) != np.shape(b) or np.size(a) == 0:
        raise ValueError(f"need two non-empty per-query arrays of one shape, got {np.shape(a)} "
                         f"and {np.shape(b)}")
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    idx = np.random.default_rng(seed).integers(0, d.size, size=(n_boot, d.size))
    lo, hi = np.quantile(d[idx].mean(axis=1), [(1 - level) / 2, (1 + level) / 2])
    return float(d.mean()), float(lo), float(hi)

"""Evaluation on BEIR-layout data sets (Thakur et al. 2021): nDCG@10, Recall@100, MRR@10.

Loading the data set and building the run; chunks are aggregated to documents by their
best-ranked chunk and the metrics computed with ranx in :mod:`aspectrag.evaluate.metrics`.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from aspectrag.errors import AspectragError
from aspectrag.evaluate.metrics import ranking_to_run, run_retriever
from aspectrag.retrieve.base import Retriever


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


def default_eval_index(root: Path, runtime: str = "torch") -> Path:
    """A reusable cache folder for the index of a BEIR corpus: ``<cache_dir>/beir/<name>-<hash>``
    (``cache_dir`` setting, default ``~/.cache/aspectrag``) for the torch embedder runtime,
    ``<name>-<hash>-<runtime>`` for another one (``onnx-int8``, ``onnx-fp32``: each runtime
    has its own index, since an index keeps the runtime it was built with)."""
    from aspectrag.settings import get_settings

    h = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:8]
    suffix = "" if runtime == "torch" else f"-{runtime}"
    return get_settings().cache_dir / "beir" / f"{root.resolve().name}-{h}{suffix}"


def beir_run(retriever: Retriever, queries: dict[str, str], *, n_docs: int = 100,
             chunk_depth: int = 200, batch: int = 64,
             progress: bool = False) -> dict[str, dict[str, float]]:
    """Document run ``{qid: {doc_id: score}}`` of ``retriever`` over ``queries`` for ranx
    (:func:`~aspectrag.evaluate.metrics.run_retriever`: ``chunk_depth`` chunks per query
    collapsed to ``n_docs`` documents by their best chunk)."""
    rankings, _ = run_retriever(retriever, list(queries.values()), chunk_depth=chunk_depth,
                                n_docs=n_docs, batch=batch, progress=progress)
    return {q: ranking_to_run(r, n_docs) for q, r in zip(queries, rankings, strict=True)}

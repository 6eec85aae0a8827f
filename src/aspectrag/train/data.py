"""Training pairs for the embedder: from a JSONL file or a BEIR split, plus BM25 hard negatives.

A pair is (query, positive passage, hard negatives). With the multiple-negatives ranking loss
(Henderson et al. 2017, "Efficient Natural Language Response Suggestion"), every other positive
in the batch is a negative too, so hard negatives are optional; BM25-mined ones (Karpukhin et
al. 2020, DPR section 3.2) make the task harder than random in-batch passages.
"""

from __future__ import annotations

import csv
import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aspectrag.errors import ConfigError

log = logging.getLogger("aspectrag.train")


@dataclass(slots=True)
class TrainPair:
    """One training example.

    Attributes:
        query: the query text.
        positive: a relevant passage (for BEIR: ``title + "\\n" + text``, as the index embeds it).
        negatives: hard-negative passages (may be empty).
    """

    query: str
    positive: str
    negatives: list[str] = field(default_factory=list)


def passage_text(title: str, text: str) -> str:
    """The text the index embeds for a one-chunk document (``Chunk.index_text``: title header)."""
    return f"{title}\n{text}" if title else text


def load_pairs_jsonl(path: str | Path) -> list[TrainPair]:
    """Read pairs from a JSONL file, one object per line:
    ``{"query": str, "positive": str, "negatives": [str, ...]}`` (``negatives`` optional).

    Raises:
        ConfigError: unreadable file, bad JSON, or a missing/empty field (names file and line).
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: pairs file not found")
    pairs: list[TrainPair] = []
    with p.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ConfigError(f"{p}:{n}: not valid JSON ({e.msg})") from e
            if not isinstance(obj, dict):
                raise ConfigError(f"{p}:{n}: expected an object with 'query' and 'positive'")
            q, pos, negs = obj.get("query"), obj.get("positive"), obj.get("negatives", [])
            for key, val in (("query", q), ("positive", pos)):
                if not isinstance(val, str) or not val.strip():
                    raise ConfigError(f"{p}:{n}: field '{key}' must be a non-empty string")
            if not isinstance(negs, list) or not all(isinstance(x, str) for x in negs):
                raise ConfigError(f"{p}:{n}: field 'negatives' must be a list of strings")
            pairs.append(TrainPair(q, pos, list(negs)))
    if not pairs:
        raise ConfigError(f"{p}: no pairs found (expected JSONL lines with 'query'/'positive')")
    return pairs


@dataclass(slots=True)
class BeirSplit:
    """A BEIR data set split: ``corpus`` doc id -> (title, text), ``queries`` id -> text, and
    ``qrels`` query id -> {doc id: relevance} (only queries of the split)."""

    corpus: dict[str, tuple[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def read_beir(beir_dir: str | Path, split: str) -> BeirSplit:
    """Read ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv`` of a BEIR folder.

    Raises:
        ConfigError: a file is missing or malformed (names the file and line).
    """
    d = Path(beir_dir)
    files = {"corpus": d / "corpus.jsonl", "queries": d / "queries.jsonl"}
    qrels_path = d / "qrels" / f"{split}.tsv"
    for f in (*files.values(), qrels_path):
        if not f.is_file():
            raise ConfigError(
                f"{f}: missing; expected a BEIR folder (corpus.jsonl, queries.jsonl, qrels/{split}.tsv)"
            )
    corpus = {
        str(o["_id"]): (o.get("title") or "", o.get("text") or "")
        for o in _read_jsonl(files["corpus"], ("_id",))
    }
    queries = {str(o["_id"]): o["text"] for o in _read_jsonl(files["queries"], ("_id", "text"))}
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    with qrels_path.open(encoding="utf-8") as f:
        rows = csv.reader(f, delimiter="\t")
        for n, row in enumerate(rows, 1):
            if n == 1 and row and row[0] == "query-id":
                continue
            if len(row) < 3:
                raise ConfigError(f"{qrels_path}:{n}: expected 'query-id<TAB>corpus-id<TAB>score'")
            try:
                qrels[row[0]][row[1]] = int(row[2])
            except ValueError as e:
                raise ConfigError(f"{qrels_path}:{n}: score {row[2]!r} is not an integer") from e
    return BeirSplit(corpus, queries, dict(qrels))


def _read_jsonl(path: Path, required: Sequence[str]) -> list[dict]:
    out = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ConfigError(f"{path}:{n}: not valid JSON ({e.msg})") from e
            for key in required:
                if key not in obj:
                    raise ConfigError(f"{path}:{n}: missing field '{key}'")
            out.append(obj)
    return out


def beir_pairs(
    beir_dir: str | Path,
    split: str = "train",
    *,
    hard_negatives: int = 0,
    depth: int = 20,
    seed: int = 0,
) -> list[TrainPair]:
    """One pair per judged-relevant (query, document) of a BEIR split (relevance > 0).

    With ``hard_negatives`` > 0, that many negatives per pair are drawn (seeded) from the query's
    BM25 top-``depth`` over the whole corpus, excluding every document judged relevant to it
    (to any query with the same text) and documents with the same text as one of those.

    Raises:
        ConfigError: see ``read_beir``; a qrels query or document id not in the corpus/queries.
    """
    data = read_beir(beir_dir, split)
    pairs: list[TrainPair] = []
    by_text: dict[str, set[str]] = defaultdict(set)  # query text -> relevant ids (texts repeat)
    for qid, docs in data.qrels.items():
        if qid not in data.queries:
            raise ConfigError(
                f"{beir_dir}/qrels/{split}.tsv: query id {qid!r} not in queries.jsonl"
            )
        rel = {d for d, s in docs.items() if s > 0}
        for did in sorted(rel):
            if did not in data.corpus:
                raise ConfigError(
                    f"{beir_dir}/qrels/{split}.tsv: corpus id {did!r} not in corpus.jsonl"
                )
            pairs.append(TrainPair(data.queries[qid], passage_text(*data.corpus[did])))
            by_text[data.queries[qid]] |= rel
    if hard_negatives > 0:
        ids = list(data.corpus)
        texts = [passage_text(*data.corpus[i]) for i in ids]
        # exclude the positives and any document with the same text (corpora hold duplicates)
        same_text: dict[str, set[int]] = defaultdict(set)
        for i, t in enumerate(texts):
            same_text[t].add(i)
        pos_idx = [
            set().union(*(same_text[passage_text(*data.corpus[d])] for d in rel))
            for rel in (by_text[p.query] for p in pairs)
        ]
        mined = mine_hard_negatives(
            [p.query for p in pairs], texts, pos_idx, hard_negatives, depth, seed
        )
        for p, negs in zip(pairs, mined, strict=True):
            p.negatives = [texts[i] for i in negs]
    log.info("BEIR %s/%s: %d pairs from %d queries", beir_dir, split, len(pairs), len(data.qrels))
    return pairs


def add_hard_negatives(
    pairs: list[TrainPair], n: int, *, depth: int = 20, seed: int = 0
) -> list[TrainPair]:
    """Hard negatives for pairs from a file: BM25 over the pool of all passages in the file
    (positives and given negatives), excluding the pair's own positives (same query text)."""
    pool = sorted({p.positive for p in pairs} | {x for p in pairs for x in p.negatives})
    index = {t: i for i, t in enumerate(pool)}
    by_query: dict[str, set[int]] = defaultdict(set)
    for p in pairs:
        by_query[p.query].add(index[p.positive])
    mined = mine_hard_negatives(
        [p.query for p in pairs], pool, [by_query[p.query] for p in pairs], n, depth, seed
    )
    for p, negs in zip(pairs, mined, strict=True):
        p.negatives = p.negatives + [pool[i] for i in negs]
    return pairs


def mine_hard_negatives(
    queries: Sequence[str],
    corpus: Sequence[str],
    exclude: Sequence[set[int]],
    n: int,
    depth: int = 20,
    seed: int = 0,
) -> list[list[int]]:
    """For each query, ``n`` corpus indices drawn without replacement (numpy ``default_rng(seed)``)
    from its BM25 top-``depth`` (bm25s, English stop words, Snowball stemmer), skipping
    ``exclude[i]`` (its positives). Fewer than ``n`` when the list runs short."""
    import bm25s

    stemmer = _stemmer()
    retriever = bm25s.BM25()
    retriever.index(
        bm25s.tokenize(list(corpus), stopwords="en", stemmer=stemmer, show_progress=False),
        show_progress=False,
    )
    k = min(depth + max((len(e) for e in exclude), default=0), len(corpus))
    # bm25s deduplicates nothing across queries: retrieve unique queries once.
    uniq = sorted(set(queries))
    tokens = bm25s.tokenize(uniq, stopwords="en", stemmer=stemmer, show_progress=False)
    docs, _ = retriever.retrieve(tokens, k=k, show_progress=False, n_threads=1)
    top = {q: [int(i) for i in row] for q, row in zip(uniq, docs, strict=True)}
    rng = np.random.default_rng(seed)
    out: list[list[int]] = []
    for q, ex in zip(queries, exclude, strict=True):
        cand = [i for i in top[q] if i not in ex][:depth]
        take = min(n, len(cand))
        out.append(
            [cand[j] for j in rng.choice(len(cand), size=take, replace=False)] if take else []
        )
    return out


def _stemmer():  # type: ignore[no-untyped-def]
    try:
        import Stemmer

        return Stemmer.Stemmer("english")
    except ImportError:  # pragma: no cover - PyStemmer is a dependency
        return None

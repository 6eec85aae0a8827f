"""Multi-aspect retrieval evaluation on the Multi-Head RAG data sets.

Source: Besta et al. 2024, "Multi-Head RAG: Solving Multi-Aspect Problems with LLMs"
(arXiv 2406.05085), section 4 and the reference code (``multirag/evaluation/evaluate.py``).

For a query with relevant set R (its aspects) and the set F of the first k *documents*
fetched (chunk hits are collapsed to documents by first occurrence):

- success = 1 if R is a subset of F's relevance units, else 0;
- retrieval success ratio (RSR) = |R ∩ units(F)| / |R|;
- category success / category RSR: the same over the categories of R and of F;
- weighted score = (2 * RSR + category RSR) / 3 (the paper's figures, weight 2:1).

Values are reported per aspect count at k = number of aspects, and ``weighted_avg`` is the
weighted score averaged over k = a .. a + 10 (capped at ``K_MAX`` = 32). Comparisons between
strategies use a paired bootstrap over queries, stratified by aspect count
(:func:`aspectrag.evaluate.metrics.paired_bootstrap` with ``MragDataset.strata``).

Data sets (``ASPECTRAG_SHARED_DATA``/mrag): ``wikipedia`` (``wikipedia_articles_v1.json.bz2``:
1,250 articles, relevance unit = article, category = ``label``; queries with LLM ``fusion``
sub-queries) and ``legal`` / ``chem`` (``*_documents_v1.tar.bz2``: one JSON file of 10
documents per topic in one folder per category; relevance unit = topic file, i.e. a query's
aspect is found when any document of that topic is fetched).
"""

from __future__ import annotations

import bz2
import hashlib
import json
import logging
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aspectrag.errors import AspectragError
from aspectrag.evaluate.metrics import run_retriever
from aspectrag.retrieve.base import Retriever
from aspectrag.types import Document

log = logging.getLogger("aspectrag.evaluate")

K_MAX = 32
"""Largest number of documents fetched (the paper evaluates up to 32)."""
AVG_SPAN = 10
"""``weighted_avg`` averages k = a .. a + AVG_SPAN."""
DATASETS = ("wikipedia", "legal", "chem")
METRICS = ("success", "rsr", "csuccess", "crsr", "weighted")


@dataclass(frozen=True, slots=True)
class MragQuery:
    """One multi-aspect query.

    Attributes:
        qid: ``"<aspects>-<index>"``.
        text: the query text.
        relevant: its relevance units (article titles or topic names), in file order.
        fusion: sub-queries an LLM wrote for it (Wikipedia only; raw, still numbered).
        aspects: the nominal aspect count (bucket), ``len(relevant)`` unless topics missing
            from the document archive were dropped.
    """

    qid: str
    text: str
    relevant: tuple[str, ...]
    fusion: tuple[str, ...]
    aspects: int


@dataclass(slots=True)
class MragDataset:
    """Documents, their relevance units and categories, and the queries.

    Attributes:
        name: ``wikipedia`` / ``legal`` / ``chem``.
        documents: one :class:`Document` per article / per document of a topic file;
            ``doc_id`` is unique (article title; ``"<category>/<topic>#<i>"``).
        unit_of: ``doc_id`` -> relevance unit.
        category_of: relevance unit -> category.
        queries: the queries, grouped by aspect count in file order.
        missing_units: relevance units named by queries but absent from the archive (dropped
            from the queries' relevant sets; see :func:`load_mrag`).
    """

    name: str
    documents: list[Document]
    unit_of: dict[str, str]
    category_of: dict[str, str]
    queries: list[MragQuery]
    missing_units: list[str] = field(default_factory=list)

    @property
    def strata(self) -> list[int]:
        """Aspect count of each query, in query order (the paired bootstrap's strata)."""
        return [q.aspects for q in self.queries]

    @property
    def buckets(self) -> list[int]:
        """Aspect counts present, ascending."""
        return sorted({q.aspects for q in self.queries})

    def fingerprint(self) -> str:
        """SHA-256 (16 hex) of the documents' ids and texts (names cache folders)."""
        h = hashlib.sha256()
        for d in self.documents:
            h.update(d.doc_id.encode())
            h.update(d.text.encode())
        return h.hexdigest()[:16]


def mrag_dir(data_dir: str | Path | None = None) -> Path:
    """``<data_dir or ASPECTRAG_SHARED_DATA>/mrag``."""
    from aspectrag.config import shared_data_dir

    return Path(data_dir) / "mrag" if data_dir is not None else shared_data_dir() / "mrag"


def load_mrag(name: str, data_dir: str | Path | None = None) -> MragDataset:
    """Load the v1 MRAG data set ``name`` (``wikipedia``, ``legal`` or ``chem``).

    ``data_dir`` is the shared data folder (default ``ASPECTRAG_SHARED_DATA``); the files are
    read from its ``mrag/`` sub-folder. For legal/chem the queries are ``generated_random.json``
    (the ones with text). The v1 archives lack 5 of the 625 topics that queries name (the
    topic files whose name contains ``/`` and a few others): those aspects are dropped from
    the queries' relevant sets (a warning says how many) and the query stays in its bucket.

    Raises:
        AspectragError: unknown name, a missing file, or a malformed record (named).
    """
    folder = mrag_dir(data_dir)
    if name not in DATASETS:
        raise AspectragError(f"unknown MRAG data set {name!r}; choose one of {', '.join(DATASETS)}")
    if name == "wikipedia":
        return _load_wikipedia(folder)
    return _load_topics(folder, name)


def _need(path: Path) -> Path:
    if not path.exists():
        raise AspectragError(
            f"{path}: missing; the MRAG data sets are read from "
            "$ASPECTRAG_SHARED_DATA/mrag (see the shared data README)"
        )
    return path


def _load_wikipedia(folder: Path) -> MragDataset:
    apath = _need(folder / "wikipedia_articles_v1.json.bz2")
    qpath = _need(folder / "wikipedia_queries_v1.json.bz2")
    try:
        articles = json.loads(bz2.open(apath, "rt", encoding="utf-8").read())
        raw_queries = json.loads(bz2.open(qpath, "rt", encoding="utf-8").read())
    except (OSError, ValueError, EOFError) as e:
        raise AspectragError(f"{apath.parent}: cannot read the Wikipedia MRAG files ({e})") from e
    docs: list[Document] = []
    unit_of: dict[str, str] = {}
    category_of: dict[str, str] = {}
    for i, a in enumerate(articles):
        try:
            title, text, label = str(a["title"]), str(a["text"]), str(a["label"])
        except (KeyError, TypeError) as e:
            raise AspectragError(f"{apath}: article {i} lacks title/text/label ({e})") from e
        if title in unit_of:
            raise AspectragError(f"{apath}: duplicate article title {title!r}")
        docs.append(_document(apath, title, title, text, {"category": label}))
        unit_of[title] = title
        category_of[title] = label
    queries: list[MragQuery] = []
    per_bucket: dict[int, int] = {}
    missing: set[str] = set()
    for i, q in enumerate(raw_queries):
        try:
            topics, text = [str(t) for t in q["topics"]], str(q["text"])
        except (KeyError, TypeError) as e:
            raise AspectragError(f"{qpath}: query {i} lacks topics/text ({e})") from e
        a = len(topics)
        j = per_bucket[a] = per_bucket.get(a, 0) + 1
        rel = tuple(t for t in topics if t in category_of)
        missing.update(t for t in topics if t not in category_of)
        queries.append(MragQuery(f"{a}-{j - 1}", text, rel, tuple(q.get("fusion") or ()), a))
    return _finish("wikipedia", docs, unit_of, category_of, queries, missing)


def _load_topics(folder: Path, name: str) -> MragDataset:
    dpath = _need(folder / f"{name}_documents_v1.tar.bz2")
    qpath = _need(folder / f"{name}_queries.tar.bz2")
    docs: list[Document] = []
    unit_of: dict[str, str] = {}
    category_of: dict[str, str] = {}
    try:
        files: list[tuple[str, bytes]] = []
        with tarfile.open(dpath, "r|bz2") as tar:  # one sequential pass (no re-decompression)
            for m in tar:
                fh = tar.extractfile(m) if m.isfile() else None
                if fh is not None:
                    files.append((m.name, fh.read()))
        for member_name, content in sorted(files):
            parts = member_name.split("/")
            if len(parts) < 3 or not member_name.endswith(".json"):
                continue
            category, fname = parts[1], "/".join(parts[2:])[: -len(".json")]
            topic = fname[len(category) + 1 :] if fname.startswith(category + "_") else fname
            for i, r in enumerate(json.loads(content.decode("utf-8"))):
                if not isinstance(r, dict) or "text" not in r:
                    raise AspectragError(f"{dpath}:{member_name}: record {i} has no 'text'")
                doc_id = f"{category}/{topic}#{i}"
                meta = {"category": category, "topic": topic}
                title = str(r.get("title") or topic)
                docs.append(_document(dpath, doc_id, title, str(r["text"]), meta))
                unit_of[doc_id] = topic
            category_of[topic] = category
        with tarfile.open(qpath) as tar:
            member = f"{name}_queries/generated_random.json"
            fh = tar.extractfile(member)
            raw = json.loads(fh.read().decode("utf-8")) if fh else {}
    except (OSError, tarfile.TarError, ValueError, KeyError) as e:
        raise AspectragError(f"{dpath.parent}: cannot read the {name} MRAG archives ({e})") from e
    queries: list[MragQuery] = []
    missing: set[str] = set()
    for bucket in sorted(raw, key=int):
        for j, q in enumerate(raw[bucket]):
            if "text" not in q or "related" not in q:
                raise AspectragError(f"{qpath}: query {bucket}/{j} lacks text/related")
            rel = tuple(t for t in q["related"] if t in category_of)
            missing.update(t for t in q["related"] if t not in category_of)
            queries.append(MragQuery(f"{bucket}-{j}", str(q["text"]), rel, (), int(bucket)))
    return _finish(name, docs, unit_of, category_of, queries, missing)


def _document(path: Path, doc_id: str, title: str, text: str, meta: dict[str, str]) -> Document:
    fp = hashlib.sha256(f"{doc_id}\x00{title}\x00{text}".encode()).hexdigest()
    return Document(doc_id, f"{path}#{doc_id}", title, text, [], fp, meta)


def _finish(
    name: str,
    docs: list[Document],
    unit_of: dict[str, str],
    category_of: dict[str, str],
    queries: list[MragQuery],
    missing: set[str],
) -> MragDataset:
    if missing:
        log.warning(
            "%s: %d relevance units named by queries are absent from the archive and "
            "were dropped from the relevant sets: %s",
            name,
            len(missing),
            ", ".join(sorted(missing)[:5]),
        )
    return MragDataset(name, docs, unit_of, category_of, queries, sorted(missing))


# -- metrics -----------------------------------------------------------------------------------
def score_rankings(
    ds: MragDataset, rankings: Sequence[Sequence[str]], k_max: int = K_MAX
) -> dict[str, np.ndarray]:
    """Per-query metrics for every prefix length k = 1..k_max.

    Args:
        ds: the data set (relevance units and categories).
        rankings: one ranked ``doc_id`` list per query of ``ds.queries`` (distinct ids).

    Returns:
        ``{metric: float64 array (n_queries, k_max)}`` for ``METRICS``; column k-1 is the value
        with the first k documents. A query whose relevant set is empty scores NaN.

    Raises:
        ValueError: the number of rankings differs from the number of queries.
    """
    if len(rankings) != len(ds.queries):
        raise ValueError(f"{len(rankings)} rankings for {len(ds.queries)} queries")
    n = len(ds.queries)
    out = {m: np.full((n, k_max), np.nan) for m in METRICS}
    for i, (q, ranking) in enumerate(zip(ds.queries, rankings, strict=True)):
        rel = set(q.relevant)
        if not rel:
            continue
        crel = {ds.category_of[u] for u in rel}
        units: set[str] = set()
        cats: set[str] = set()
        ranking = list(ranking)
        for k in range(1, k_max + 1):
            if k <= len(ranking):
                u = ds.unit_of.get(ranking[k - 1])
                if u is not None:
                    units.add(u)
                    cats.add(ds.category_of[u])
            found, cfound = len(rel & units), len(crel & cats)
            out["success"][i, k - 1] = float(found == len(rel))
            out["rsr"][i, k - 1] = found / len(rel)
            out["csuccess"][i, k - 1] = float(cfound == len(crel))
            out["crsr"][i, k - 1] = cfound / len(crel)
    out["weighted"] = (2 * out["rsr"] + out["crsr"]) / 3
    return out


def per_query_scores(ds: MragDataset, scores: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-query values at k = aspects (``success``, ``rsr``, ``crsr``, ``weighted``) and
    ``weighted_avg`` / ``rsr_avg`` (mean over k = a .. min(a + 10, K)); float64 ``(n,)`` each."""
    k_max = scores["rsr"].shape[1]
    out: dict[str, np.ndarray] = {}
    at = np.array([min(q.aspects, k_max) - 1 for q in ds.queries])
    rows = np.arange(len(ds.queries))
    for m in ("success", "rsr", "crsr", "weighted"):
        out[m] = scores[m][rows, at]
    for m in ("weighted", "rsr"):
        out[f"{m}_avg"] = np.array(
            [np.mean(scores[m][i, a : min(a + AVG_SPAN, k_max - 1) + 1]) for i, a in enumerate(at)]
        )
    return out


def summarise(ds: MragDataset, per_query: Mapping[str, np.ndarray]) -> dict:  # type: ignore[type-arg]
    """The issue's JSON shape for one strategy: ``{"by_aspects": {"<a>": {"success", "rsr",
    "crsr", "weighted", "weighted_avg"}}, "mean_weighted_avg": x}`` (means over queries;
    ``mean_weighted_avg`` is the mean of the buckets' ``weighted_avg``)."""
    by: dict[str, dict[str, float]] = {}
    aspects = np.array([q.aspects for q in ds.queries])
    for a in ds.buckets:
        sel = aspects == a
        by[str(a)] = {
            m: round(float(np.nanmean(per_query[m][sel])), 4)
            for m in ("success", "rsr", "crsr", "weighted", "weighted_avg")
        }
    mean = float(np.mean([v["weighted_avg"] for v in by.values()]))
    return {"by_aspects": by, "mean_weighted_avg": round(mean, 4)}


# -- running retrievers ------------------------------------------------------------------------
@dataclass(slots=True)
class StrategyRun:
    """Result of one strategy: per-query doc rankings, metric arrays and timings.

    ``scores``: :func:`score_rankings` output; ``per_query``: :func:`per_query_scores` output;
    ``seconds``: wall time of all retrieval calls; ``extra``: strategy facts (index size...).
    """

    name: str
    rankings: list[list[str]]
    scores: dict[str, np.ndarray]
    per_query: dict[str, np.ndarray]
    seconds: float
    extra: dict[str, float] = field(default_factory=dict)

    def summary(self, ds: MragDataset) -> dict:  # type: ignore[type-arg]
        return summarise(ds, self.per_query)


def run_strategy(
    ds: MragDataset,
    name: str,
    retriever: Retriever,
    *,
    k_max: int = K_MAX,
    chunk_depth: int | None = None,
    batch: int = 50,
) -> StrategyRun:
    """Retrieve for every query of ``ds`` with any :class:`Retriever` and score it.

    ``chunk_depth`` chunks are requested per query (default ``3 * k_max``, enough for k_max
    distinct documents when documents have a few chunks each); hits are collapsed to
    documents by first occurrence. Works for every retriever of the factory (dense, bm25,
    hybrid, multihead, multiquery...).
    """
    depth = chunk_depth or 3 * k_max
    rankings, secs = run_retriever(
        retriever, [q.text for q in ds.queries], chunk_depth=depth, n_docs=k_max, batch=batch
    )
    scores = score_rankings(ds, rankings, k_max)
    short = sum(len(r) < k_max for r in rankings)
    if short:
        log.info(
            "%s: %d queries got fewer than %d documents from %d chunks", name, short, k_max, depth
        )
    return StrategyRun(name, rankings, scores, per_query_scores(ds, scores), secs)

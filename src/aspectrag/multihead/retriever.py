"""Multi-Head RAG retrieval: one search per attention-head space, merged by weighted voting.

Method: Besta et al. 2024, "Multi-Head RAG: Solving Multi-Aspect Problems with LLMs"
(arXiv 2406.05085), section 3.3 and the reference code (``MultiHeadStrategy._multi_vote``):
each head space returns its top-n chunks (n = the number requested); the chunk at 0-based rank
r in head i gets ``s_i * 2^(-r)`` votes (s_i: head importance, ``multihead/stats.py``); votes
are summed over heads and the k chunks with most votes are returned. Ablations of the paper:
``2^(-r)`` without s_i (``votes="unweighted"``) and ``1 / distance`` (``votes="distance"``).
Baseline: Split RAG (``mode="split"``: the standard embedding cut into H segments, voted the
same way, unweighted as in the paper's ``split-rag``).

Default (``multihead``), chosen on MRAG Wikipedia v1 with MiniLM (``aspectrag eval mrag
wikipedia``): CLS-pooled heads centred at query time, unweighted ``2^-r`` votes, plus the
standard embedding voting with weight 2: mean weighted score +0.062 [95% CI +0.048, +0.076]
over standard dense, retrieval success ratio not lower at any aspect count; the paper's recipe
(mean pooling, s_i votes, no centring: ``multihead-paper``) is -0.006 [-0.019, +0.007].

Our additions:

- query-time centring of every head with the current corpus mean (``centre=True``), via the
  stored layout ``[v / |v|, 1 / |v|]`` (``multihead/layout.py``);
- the standard embedding as one more voter (``dense_weight``: its votes are
  ``dense_weight * 2^(-r)`` relative to a mean head weight of 1), which keeps single-aspect
  recall while the heads add aspect diversity;
- BM25 as a voter (``bm25_weight``), i.e. fusion with lexical search;
- grouped heads (G < H head spaces, averaged adjacent heads, set at ingest) need nothing
  here: every ``head*`` space of the index votes.

Everything goes through the :class:`~aspectrag.store.base.Store` protocol (one
``vector_search`` per space for the whole query batch, or one ``vector_search_spaces`` call
when the store offers that batched form); votes are accumulated with ``numpy.bincount`` over
the retrieved hits (no Python loop over documents).

Why one named space per head rather than one ``heads`` space of ``H * d_head`` dims: the
protocol searches a space as a whole, so per-head top-n from a single space would need
block-sparse queries costing H times the arithmetic; named spaces map one-to-one to Qdrant
named vectors; and the SQLite store stacks the head spaces in memory for its batched search,
so they cost one array operation per query anyway.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import numpy as np

from aspectrag.embed.base import Embedder
from aspectrag.errors import ConfigError
from aspectrag.multihead.embedder import MultiHeadEmbedder
from aspectrag.multihead.layout import (
    META_KEY,
    MIN_NORM,
    STATS_KEY,
    MultiHeadConfig,
    head_queries,
    is_head_space,
    split_space,
)
from aspectrag.multihead.stats import HeadStats, head_spaces, load_stats
from aspectrag.retrieve.base import timed_search
from aspectrag.retrieve.hits import to_hits
from aspectrag.store.base import CAP_BATCHED_VECTOR_SEARCH, ScoredId, Store
from aspectrag.types import Hit, SearchResult

log = logging.getLogger("aspectrag.multihead")

Votes = Literal["importance", "unweighted", "distance"]
Mode = Literal["heads", "split"]
VOTES: tuple[str, ...] = ("importance", "unweighted", "distance")


def query_embedder(embedder: Embedder, store: Store) -> MultiHeadEmbedder:
    """A :class:`MultiHeadEmbedder` that encodes queries the way ``store``'s chunks were
    (layer, pooling, groups from the index meta ``multihead.config``; the defaults if absent).

    Reuses ``embedder``'s loaded model when it is an ``HFEmbedder``
    (:meth:`MultiHeadEmbedder.from_embedder`). Raises ConfigError if the model's head layout
    differs from the index's.
    """
    mh = MultiHeadEmbedder.from_embedder(embedder)
    raw = store.get_meta(META_KEY)
    cfg = MultiHeadConfig.from_json(raw) if raw is not None else None
    if cfg is None:
        cfg = mh.config
        cfg.groups = len(head_spaces(store)) or cfg.groups
    return mh.with_config(cfg)


# The standard-embedding voter's space is searched on a second thread while the head spaces are
# searched on the caller's: numpy releases the GIL in the products, and the two scans (15 MB +
# 16 MB at 10k chunks) do not fit in the CPU cache together, so one after the other each runs
# from memory. At 10k chunks on 2 cores: 2.5 -> 1.4 ms (benchmarks/multihead_latency.py).
# The pool is created on first use (not at import) and shared by all retrievers; it only runs
# store searches, which are safe to run concurrently.
_VOTER_POOL: ThreadPoolExecutor | None = None
_VOTER_POOL_LOCK = threading.Lock()


def _voter_pool() -> ThreadPoolExecutor:
    global _VOTER_POOL
    with _VOTER_POOL_LOCK:
        if _VOTER_POOL is None:
            _VOTER_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="aspectrag-voter")
        return _VOTER_POOL


def search_spaces(
    store: Store,
    searches: Sequence[tuple[str, np.ndarray]],
    k: int,
    sources: Sequence[str] | None = None,
) -> list[list[list[ScoredId]]]:
    """``[store.vector_search(space, queries, k, sources) for space, queries in searches]``,
    in one call when the store offers ``vector_search_spaces`` (an optional batched form of
    the Store protocol's ``vector_search``: the SQLite store shares one chunk-id lookup across
    spaces, which is most of the per-call cost at 10k chunks). Spaces that are not head
    spaces (the standard ``dense`` voter) are searched concurrently on a second thread."""
    if CAP_BATCHED_VECTOR_SEARCH not in store.capabilities:
        return [store.vector_search(space, q, k, sources) for space, q in searches]
    batched = store.vector_search_spaces
    heads = [i for i, (space, _) in enumerate(searches) if is_head_space(space)]
    other = [i for i, (space, _) in enumerate(searches) if not is_head_space(space)]
    if not heads or not other:
        return list(batched(searches, k, sources))
    job = _voter_pool().submit(batched, [searches[i] for i in other], k, sources)
    out: list[list[list[ScoredId]]] = [[] for _ in searches]
    for i, res in zip(heads, batched([searches[i] for i in heads], k, sources), strict=True):
        out[i] = res
    for i, res in zip(other, job.result(), strict=True):
        out[i] = res
    return out


class MultiHeadRetriever:
    """Multi-aspect retrieval by per-head voting (MRAG, arXiv 2406.05085); see the module doc.

    Args:
        store: any Store holding ``head*`` spaces (written by the multi-head embedder).
        embedder: the index's embedder (a plain ``HFEmbedder`` is upgraded, sharing its model).
        votes: ``"importance"`` (s_i * 2^-r, the paper's MRAG; s_i normalised to mean 1),
            ``"unweighted"`` (2^-r) or ``"distance"`` (1 / cosine distance).
        mode: ``"heads"`` (MRAG) or ``"split"`` (Split RAG baseline: ``split*`` spaces when
            the index has them, else segments of the ``dense`` space scored by inner product).
        centre: centre query and chunk head vectors on the current corpus mean (heads mode).
        dense_weight: weight of the standard embedding as an extra voter (0 = paper's MRAG).
        bm25_weight: weight of BM25 as an extra voter (0 = none).
        depth: per-space top-n (default: the requested k, as in the paper).

    Raises:
        ConfigError: the index has no head spaces (built without the multi-head embedder), or
            an option is invalid.

    Searching never writes to the store: head statistics are read from the index meta (or,
    if missing or stale, computed in memory), see :func:`~aspectrag.multihead.stats.load_stats`.
    """

    OPTIONS: tuple[str, ...] = ("votes", "centre", "dense_weight", "bm25_weight", "depth")
    """Factory options (``build_retriever("multihead", ..., **options)``)."""

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        *,
        votes: Votes = "unweighted",
        mode: Mode = "heads",
        centre: bool = True,
        dense_weight: float = 2.0,
        bm25_weight: float = 0.0,
        depth: int | None = None,
    ) -> None:
        if votes not in VOTES:
            raise ConfigError(f"votes must be one of {', '.join(VOTES)}, got {votes!r}")
        if mode not in ("heads", "split"):
            raise ConfigError(f"mode must be 'heads' or 'split', got {mode!r}")
        if dense_weight < 0 or bm25_weight < 0:
            raise ConfigError("dense_weight and bm25_weight must be >= 0")
        if depth is not None and depth < 1:
            raise ConfigError(f"depth must be >= 1, got {depth}")
        self.store, self.votes, self.mode, self.centre = store, votes, mode, centre
        self.dense_weight, self.bm25_weight, self.depth = dense_weight, bm25_weight, depth
        self.embedder = query_embedder(embedder, store)
        self.spaces = head_spaces(store)
        if not self.spaces and mode == "heads":
            raise ConfigError(
                "this index has no per-head vectors: re-ingest it with the "
                "multi-head embedder (the default unless ASPECTRAG_HEADS=0) "
                "into a new --index folder"
            )
        self.name = "split" if mode == "split" else "multihead"
        # (recorded meta, it covers every chunk, chunk count, statistics)
        self._stats: tuple[str | None, bool, int, HeadStats] | None = None
        self._stats_lock = threading.Lock()

    # -- head statistics ------------------------------------------------------------------
    def stats(self) -> HeadStats:
        """Current head statistics, read-only (never written from here): re-read when the
        index meta changed; computed in memory when the meta lacks them or does not cover
        every chunk (see :func:`~aspectrag.multihead.stats.load_stats`; then re-computed when
        the chunk count changes). Thread-safe."""
        raw = self.store.get_meta(STATS_KEY)
        c = self._stats
        if c is not None and c[0] == raw and (c[1] or c[2] == self.store.stats()["chunks"]):
            return c[3]
        with self._stats_lock:
            chunks = self.store.stats()["chunks"]
            stats = load_stats(self.store)
            self._stats = (raw, raw is not None and stats.count == chunks, chunks, stats)
            return stats

    def weights(self, n_spaces: int) -> np.ndarray:
        """Per-space vote weights, float64 ``(n_spaces,)``, mean 1 for importance votes."""
        if self.mode == "heads" and self.votes == "importance":
            s = self.stats().importance
            return s / max(float(s.mean()), 1e-12)
        return np.ones(n_spaces)

    # -- searching ------------------------------------------------------------------------
    def _voter_runs(
        self, queries: Sequence[str], n: int, sources: Sequence[str] | None
    ) -> tuple[list[str], list[float], list[list[list[ScoredId]]]]:
        """``(voter names, voter weights, runs[voter][query])``."""
        dense, heads = self.embedder.encode_heads(list(queries))
        names: list[str] = []
        searches: list[tuple[str, np.ndarray]] = []
        if self.mode == "heads":
            centre = self.stats().centre if self.centre else None
            qv = head_queries(heads, centre)
            for g, space in enumerate(self.spaces):
                names.append(space)
                searches.append((space, np.ascontiguousarray(qv[:, g])))
        else:
            h = self.embedder.num_heads
            seg = dense.reshape(len(dense), h, -1)
            seg = seg / np.maximum(np.linalg.norm(seg, axis=-1, keepdims=True), MIN_NORM)
            have = set(self.store.vector_spaces())
            for i in range(h):
                if split_space(i) in have:
                    q, space = seg[:, i], split_space(i)
                else:  # zero-padded segment: inner product with the stored dense segment
                    q = np.zeros_like(dense)
                    width = dense.shape[1] // h
                    q[:, i * width : (i + 1) * width] = seg[:, i]
                    space = "dense"
                names.append(split_space(i))
                searches.append((space, np.ascontiguousarray(q)))
        weights = list(self.weights(len(names)))
        if self.dense_weight > 0:
            names.append("dense")
            weights.append(self.dense_weight)
            searches.append(("dense", dense))
        runs = search_spaces(self.store, searches, n, sources)
        if self.bm25_weight > 0:
            names.append("bm25")
            weights.append(self.bm25_weight)
            runs.append(self.store.keyword_search(list(queries), n, sources))
        return names, weights, runs

    def vote(
        self, queries: Sequence[str], k: int, sources: Sequence[str] | None = None
    ) -> list[tuple[list[tuple[str, float]], list[dict[str, int]]]]:
        """Per query: the top-``k`` ``(chunk_id, votes)`` (most votes first) and, for each, the
        1-based rank at which every voter found it (``{"head3": 1, "dense": 4}``)."""
        n = max(self.depth or k, 1)
        names, weights, runs = self._voter_runs(queries, n, sources)
        out = []
        for qi in range(len(queries)):
            index: dict[str, int] = {}
            rows: list[int] = []
            w: list[np.ndarray] = []
            for v, run in enumerate(runs):
                hits = run[qi]
                rows.extend(index.setdefault(s.chunk_id, len(index)) for s in hits)
                if self.votes == "distance" and names[v] != "bm25":
                    dist = np.maximum(1.0 - np.array([s.score for s in hits]), 1e-6)
                    w.append(weights[v] / dist)
                else:
                    w.append(weights[v] * np.exp2(-np.arange(len(hits), dtype=np.float64)))
            if not index:
                out.append(([], []))
                continue
            votes = np.bincount(np.array(rows), weights=np.concatenate(w), minlength=len(index))
            kk = min(k, len(index))
            top = np.argpartition(-votes, kk - 1)[:kk] if kk < len(index) else np.arange(kk)
            top = top[np.argsort(-votes[top], kind="stable")]
            ids = list(index)
            ranked = [(ids[i], float(votes[i])) for i in top]
            wanted = {cid for cid, _ in ranked}
            prov: dict[str, dict[str, int]] = {cid: {} for cid in wanted}
            for v, run in enumerate(runs):
                for r, s in enumerate(run[qi], start=1):
                    if s.chunk_id in wanted and names[v] not in prov[s.chunk_id]:
                        prov[s.chunk_id][names[v]] = r
            out.append((ranked, [prov[cid] for cid, _ in ranked]))
        return out

    def retrieve(self, query: str, k: int = 10, sources: Sequence[str] | None = None) -> list[Hit]:
        """Top-``k`` chunks by votes; ``Hit.score`` is the vote total and ``Hit.provenance``
        the rank at which each voting space found the chunk."""
        return self.retrieve_batch([query], k, sources)[0]

    def retrieve_batch(
        self, queries: Sequence[str], k: int = 10, sources: Sequence[str] | None = None
    ) -> list[list[Hit]]:
        """``retrieve`` for several queries: one encoder pass and one search per space."""
        return [
            to_hits(self.store, ranked, k, prov) for ranked, prov in self.vote(queries, k, sources)
        ]

    def search(
        self, query: str, k: int = 10, sources: Sequence[str] | None = None
    ) -> SearchResult:
        """The hits of :meth:`retrieve` with their wall-clock seconds."""
        return timed_search(self.retrieve, query, k, sources)

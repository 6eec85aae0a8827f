"""Head importance for Multi-Head RAG, kept up to date as chunks are added and removed.

Method: Besta et al. 2024, "Multi-Head RAG" (arXiv 2406.05085), section 3.2: the importance
of head i is ``s_i = a_i * b_i`` where ``a_i`` is the mean L2 norm of the head-i vectors of
the documents and ``b_i`` the mean pairwise cosine distance between them (how spread out the
head's space is). Heads with large, well-spread vectors get more votes.

Estimator of the pairwise term: none is needed. With unit vectors ``u_1..u_n`` of one head and
their sum ``S = sum_j u_j``, the sum of cosines over ordered pairs j != l is
``|S|^2 - n`` (``|S|^2 = sum_j sum_l u_j . u_l`` and each ``u_j . u_j = 1``), so

    b_i = 1 - (|S|^2 - n) / (n (n - 1))

exactly: the mean over all ``n (n - 1) / 2`` distinct pairs, from O(n d) work instead of
O(n^2 d), with no sampling error (only float64 rounding, ~1e-12 relative). The sufficient
statistics ``(n, sum of norms, S)`` are additive, so adding or removing chunks updates
``s_i`` exactly and incrementally: :class:`HeadStats`, persisted as JSON in the index meta
under ``multihead.stats`` (:data:`~aspectrag.multihead.layout.STATS_KEY`). The same statistics hold the sum of the raw head vectors, so the
corpus mean that the retriever centres queries with (``multihead/layout.py``) is exact and
current too. (The reference code averages over all n^2 pairs including each
vector with itself, i.e. ``1 - |S|^2 / n^2``; the two differ by a factor ``(n - 1) / n`` in the
distance part, irrelevant to the ranking of heads.)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from aspectrag.errors import ConfigError
from aspectrag.multihead.layout import (
    META_KEY,
    STATS_KEY,
    MultiHeadConfig,
    head_space,
    head_spaces_of,
    is_head_space,
)
from aspectrag.store.base import Store, StoreWriter

log = logging.getLogger("aspectrag.multihead")

@dataclass(slots=True)
class HeadStats:
    """Sufficient statistics of the head vectors of the chunks in an index.

    Attributes:
        count: number of chunks n.
        norm_sum: float64 ``(G,)``, sum over chunks of each head vector's L2 norm.
        unit_sum: float64 ``(G, d_head)``, sum over chunks of each head's unit vector.
        raw_sum: float64 ``(G, d_head)``, sum over chunks of each raw head vector.
    """

    count: int
    norm_sum: np.ndarray
    unit_sum: np.ndarray
    raw_sum: np.ndarray

    @classmethod
    def empty(cls, groups: int, head_dim: int) -> HeadStats:
        return cls(0, np.zeros(groups), np.zeros((groups, head_dim)), np.zeros((groups, head_dim)))

    @classmethod
    def of(cls, packed: Sequence[np.ndarray]) -> HeadStats:
        """Statistics of one batch: ``packed[g]`` float32 ``(n, d_head + 1)`` stored vectors
        ``[v / |v|, 1 / |v|]`` of head g (``multihead/layout.py``)."""
        x = np.stack([np.asarray(p, dtype=np.float64) for p in packed], axis=1)  # (n, G, dh+1)
        inv = x[..., -1]
        return cls(
            int(x.shape[0]),
            (1.0 / inv).sum(axis=0),
            x[..., :-1].sum(axis=0),
            (x[..., :-1] / inv[..., None]).sum(axis=0),
        )

    @classmethod
    def of_vectors(cls, vectors: Mapping[str, np.ndarray]) -> HeadStats | None:
        """Statistics of an embedder output (``head0``, ``head1``, ...); None when it has no
        head spaces."""
        packed = []
        while head_space(len(packed)) in vectors:
            packed.append(vectors[head_space(len(packed))])
        return cls.of(packed) if packed else None

    def __add__(self, other: HeadStats) -> HeadStats:
        if self.count == 0:
            return other
        if other.count == 0:
            return self
        return HeadStats(
            self.count + other.count,
            self.norm_sum + other.norm_sum,
            self.unit_sum + other.unit_sum,
            self.raw_sum + other.raw_sum,
        )

    def __sub__(self, other: HeadStats) -> HeadStats:
        count = self.count - other.count
        if count < 0:
            raise ValueError("removing more chunks than the statistics hold")
        if count == 0:
            return HeadStats.empty(*self.unit_sum.shape)
        return HeadStats(
            count,
            self.norm_sum - other.norm_sum,
            self.unit_sum - other.unit_sum,
            self.raw_sum - other.raw_sum,
        )

    @property
    def centre(self) -> np.ndarray:
        """Corpus mean of the raw head vectors, float32 ``(G, d_head)`` (zeros when empty)."""
        return (self.raw_sum / max(self.count, 1)).astype(np.float32)

    @property
    def mean_norm(self) -> np.ndarray:
        """a_i: mean L2 norm per head, float64 ``(G,)`` (zeros when empty)."""
        return self.norm_sum / max(self.count, 1)

    @property
    def mean_pairwise_distance(self) -> np.ndarray:
        """b_i: mean cosine distance over distinct pairs, float64 ``(G,)`` (exact, see module
        doc); 0 with fewer than 2 chunks."""
        n = self.count
        if n < 2:
            return np.zeros(len(self.norm_sum))
        sq = (self.unit_sum * self.unit_sum).sum(axis=1)
        return 1.0 - (sq - n) / (n * (n - 1))

    @property
    def importance(self) -> np.ndarray:
        """s_i = a_i * b_i, float64 ``(G,)``."""
        return self.mean_norm * self.mean_pairwise_distance

    def to_json(self) -> str:
        return json.dumps(
            {
                "count": self.count,
                "norm_sum": self.norm_sum.tolist(),
                "unit_sum": self.unit_sum.tolist(),
                "raw_sum": self.raw_sum.tolist(),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> HeadStats:
        """Parse :meth:`to_json` output. Raises ConfigError when malformed."""
        try:
            d = json.loads(text)
            return cls(
                int(d["count"]),
                np.asarray(d["norm_sum"], dtype=np.float64),
                np.asarray(d["unit_sum"], dtype=np.float64),
                np.asarray(d["raw_sum"], dtype=np.float64),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(
                f"index meta {STATS_KEY!r} is malformed ({e}); run `aspectrag heads --recompute`"
            ) from e


def head_spaces(store: Store) -> list[str]:
    """The store's head spaces in order (``head0``, ``head1``, ...), [] if none."""
    return head_spaces_of(store.vector_spaces())


def stats_of_chunks(store: Store, chunk_ids: Sequence[str], batch: int = 2048) -> HeadStats:
    """Statistics of stored chunks, read through ``Store.get_vectors`` in batches."""
    spaces = head_spaces(store)
    if not spaces:
        raise ConfigError(
            "this index has no per-head vectors; re-ingest with the multi-head "
            "embedder (the default) into a new --index folder"
        )
    total: HeadStats | None = None
    ids = list(chunk_ids)
    for i in range(0, len(ids), batch):
        part = ids[i : i + batch]
        st = HeadStats.of([store.get_vectors(s, part) for s in spaces])
        total = st if total is None else total + st
    if total is None:
        return HeadStats.empty(len(spaces), 0)
    return total


def compute_stats(store: Store) -> HeadStats:
    """Statistics over every chunk of the store, computed in memory (nothing is written)."""
    return stats_of_chunks(store, [c.chunk_id for c in store.iter_chunks()])


def recompute(store: Store) -> HeadStats:
    """Full recomputation over every chunk of the store, saved in the index meta through one
    writer transaction (``aspectrag heads --recompute``), and returned. A write: never called
    on the read path."""
    stats = compute_stats(store)
    with store.writer() as w:
        w.set_meta(STATS_KEY, stats.to_json())
    return stats


def load_stats(store: Store) -> HeadStats:
    """The index's head statistics, read-only: the recorded ``multihead.stats`` when they
    cover every chunk of the store; otherwise (an index written without the tracking hook,
    or by an older version) computed in memory from the stored head vectors, with a warning
    that ``aspectrag heads --recompute`` records them. Never writes to the store, so any
    number of concurrent searches may call it.

    Raises:
        ConfigError: the recorded statistics are malformed, or the index has no head spaces.
    """
    raw = store.get_meta(STATS_KEY)
    chunks = store.stats()["chunks"]
    if raw is not None:
        stats = HeadStats.from_json(raw)
        if stats.count == chunks:
            return stats
        log.warning(
            "head statistics cover %d chunks but the index holds %d; computing them in memory "
            "(run `aspectrag heads --recompute` to record them)",
            stats.count,
            chunks,
        )
    else:
        log.warning(
            "the index has no head statistics; computing them in memory "
            "(run `aspectrag heads --recompute` to record them)"
        )
    return compute_stats(store)



class HeadStatsTracker:
    """An ingest hook (``aspectrag.ingest.base.IngestHook``) that keeps ``multihead.stats``
    (and ``multihead.config``) exact across an ingest or a removal; the ingest pipeline calls
    it inside the write transaction, and :meth:`save` writes through that writer, so the meta
    commits (or rolls back) with the vectors.

    Protocol: :meth:`removing` with the sources about to be replaced or deleted (their stored
    head vectors are subtracted), :meth:`added` with every embedder output written, then
    :meth:`save` with the writer. Does nothing for embedders without head spaces.

    Args:
        store: the index.
        embedder: the ingesting embedder; its ``config`` (a :class:`MultiHeadConfig`) is
            recorded under ``multihead.config`` the first time head vectors are added.
    """

    def __init__(self, store: Store, embedder: object | None = None) -> None:
        self.store = store
        self.embedder = embedder
        self._stats: HeadStats | None = None
        self._loaded = False  # read at first use: under the writer lock the pipeline holds
        self.changed = False

    @property
    def stats(self) -> HeadStats | None:
        """The recorded statistics, read at first use (under the writer lock)."""
        if not self._loaded:
            raw = self.store.get_meta(STATS_KEY)
            self._stats = HeadStats.from_json(raw) if raw is not None else None
            self._loaded = True
        return self._stats

    @stats.setter
    def stats(self, value: HeadStats | None) -> None:
        self._stats, self._loaded = value, True

    def removing(self, sources: Sequence[str]) -> None:
        """Subtract the stored head vectors of the chunks of ``sources`` (one scan of the
        chunk list, then batched ``get_vectors``)."""
        wanted = set(sources)
        if not wanted or self.stats is None or not self.stats.count:
            return
        ids = [c.chunk_id for c in self.store.iter_chunks() if c.source in wanted]
        if ids:
            self.stats = self.stats - stats_of_chunks(self.store, ids)
            self.changed = True

    def added(self, vectors: Mapping[str, np.ndarray]) -> None:
        """Add the head vectors of freshly embedded chunks (an embedder output), as the store
        will read them back (``as_stored``: rounded to float16 in a float16 index, so that
        removing the chunks later subtracts exactly what was added)."""
        as_stored = getattr(self.store, "as_stored", None)
        if as_stored is not None:
            vectors = as_stored({k: v for k, v in vectors.items() if is_head_space(k)})
        st = HeadStats.of_vectors(vectors)
        if st is None:
            return
        self.stats = st if self.stats is None else self.stats + st
        self.changed = True

    def save(self, writer: StoreWriter) -> None:
        """Write the statistics (and the embedder's head config if not yet recorded) through
        ``writer``, the ingest's open transaction."""
        if not self.changed or self.stats is None:
            return
        writer.set_meta(STATS_KEY, self.stats.to_json())
        config = getattr(self.embedder, "config", None)
        if isinstance(config, MultiHeadConfig) and self.store.get_meta(META_KEY) is None:
            writer.set_meta(META_KEY, config.to_json())

"""Inner-product search over one vector space: exact (numpy) or HNSW (FAISS) once large.

Two segments (see :mod:`aspectrag.store.segments`): a base built from every vector at some
generation (with its HNSW graph when large, saved beside it as ``<name>-<base id>.hnsw`` so that
a new process reads it instead of rebuilding it) and a delta of the vectors added since plus
tombstones for base rows removed since. Exact search covers both; HNSW answers from the base
(over-fetching by the number of tombstones) and the delta is searched exactly and merged.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
import zipfile
from pathlib import Path

import numpy as np

from aspectrag.store.base import DERIVED_IO_LOCK
from aspectrag.store.segments import alive_after, new_base_id, npz_meta

log = logging.getLogger("aspectrag.store")
_NO_FAISS_NOTED = False
#: HNSW search breadth. 256: at 1M synthetic mixture vectors (float16 rows) recall@10 was
#: 0.896 / 0.950 / 0.980 / 0.985 / 0.985 at 64 / 128 / 192 / 256 / 384, p50 0.43-0.97 ms
#: (``benchmarks/hnsw_ef_sweep.py``, ``results/scale/hnsw_ef_sweep_s13.json``).
EF_SEARCH = 256


def _faiss():  # type: ignore[no-untyped-def]
    """The ``faiss`` module, or None when the ``ann`` extra is missing (exact search then;
    noted once per process at INFO level)."""
    global _NO_FAISS_NOTED
    try:
        import faiss
    except ImportError:
        if not _NO_FAISS_NOTED:
            _NO_FAISS_NOTED = True
            log.info("faiss is not installed: exact vector search on large indexes "
                     "(install aspectrag[ann] for HNSW)")
        return None
    return faiss


def _empty(n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(np.zeros(0, np.int64), np.zeros(0, np.float32)) for _ in range(n)]


class DenseIndex:
    """Base vectors ``(n, d) float32`` with store row ids ``(n,) int64``, plus a delta.

    Position ``i`` of :attr:`rowids` (base rows, then delta rows) is the chunk with that row id.
    Exact search is one matrix-vector product per segment plus ``argpartition``; above
    ``ann_threshold`` base rows of one norm (:meth:`equal_norms`) an HNSW graph (Malkov &
    Yashunin 2018, inner product, M=32, efSearch :data:`EF_SEARCH`) answers unfiltered
    queries; filtered queries stay exact on the subset. ``ann_dtype`` is how the graph holds its rows:
    ``float16`` (FAISS ``IndexHNSWSQ`` with ``QT_fp16``: half the memory, scores within ~1e-3
    of float32; the default, see ``store.ann_dtype``) or ``float32`` (``IndexHNSWFlat``). Once
    the graph exists, :attr:`base_vectors` is a view of the graph's rows, in that dtype.
    """

    def __init__(self, vectors: np.ndarray, rowids: np.ndarray, ann_threshold: int = 50_000,
                 generation: int = -1, ann_dtype: str = "float16") -> None:
        self.base_vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.base_rowids = np.asarray(rowids, dtype=np.int64)
        self.ann_threshold = ann_threshold
        self.ann_dtype = ann_dtype
        self.base_id, self.base_generation, self.generation = new_base_id(), generation, generation
        self.alive: np.ndarray | None = None
        self.delta_vectors = np.zeros((0, self.dim), np.float32)
        self.delta_rowids = np.zeros(0, np.int64)
        self._hnsw = None
        self._equal_norms: bool | None = None
        self._derive()

    def _derive(self) -> None:
        self.rowids = np.concatenate([self.base_rowids, self.delta_rowids])
        self._vectors: np.ndarray | None = None

    @property
    def dim(self) -> int:
        v = self.base_vectors
        return int(v.shape[1]) if v.ndim == 2 else 0

    @property
    def vectors(self) -> np.ndarray:
        """All rows ``(len(rowids), d)`` (base then delta; a copy when there is a delta, made
        once): float32, or float16 while a float16 HNSW graph holds the base and there is no
        delta."""
        if not len(self.delta_rowids):
            return self.base_vectors
        if self._vectors is None:
            self._vectors = np.concatenate([self.base_vectors, self.delta_vectors])
        return self._vectors

    def share_rows(self, rows: np.ndarray) -> None:
        """Hold ``rows`` (float32 ``(len(rowids), d)``, equal to :attr:`vectors`, e.g. one
        slice of the store's stacked head matrix) instead of an own copy, unless the rows are
        the HNSW graph's."""
        if self._hnsw is not None or rows.shape != (len(self.rowids), self.dim):
            return
        nb = len(self.base_rowids)
        self.base_vectors, self.delta_vectors = rows[:nb], rows[nb:]
        self._vectors = rows if len(self.delta_rowids) else None

    @property
    def live(self) -> np.ndarray:
        """Bool ``(len(rowids),)``: False at tombstoned base rows."""
        base = np.ones(len(self.base_rowids), bool) if self.alive is None else self.alive
        return np.concatenate([base, np.ones(len(self.delta_rowids), bool)])

    @property
    def live_rowids(self) -> np.ndarray:
        """Row ids (int64, ascending) of the vectors the index answers for."""
        return self.rowids if self.alive is None else self.rowids[self.live]

    @property
    def delta_size(self) -> int:
        """Rows held in the delta: added vectors plus tombstones."""
        dead = 0 if self.alive is None else int((~self.alive).sum())
        return len(self.delta_rowids) + dead

    def with_changes(self, added: np.ndarray, added_rowids: np.ndarray,
                     removed_rowids: np.ndarray, generation: int) -> DenseIndex:
        """A new index at ``generation`` sharing this base (and its HNSW graph): ``added``
        float32 ``(m, d)`` vectors of row ids ``added_rowids`` (ascending, greater than the rows
        held) join the delta; rows in ``removed_rowids`` leave. ``self`` is unchanged."""
        out = DenseIndex.__new__(DenseIndex)
        out.__dict__.update(self.__dict__)
        out.generation = generation
        out.alive = alive_after(self.base_rowids, self.alive, removed_rowids)
        keep = ~np.isin(self.delta_rowids, removed_rowids)
        vecs = np.asarray(added, dtype=np.float32).reshape(-1, self.dim)
        out.delta_vectors = np.concatenate([self.delta_vectors[keep], vecs])
        out.delta_rowids = np.concatenate([self.delta_rowids[keep],
                                           np.asarray(added_rowids, dtype=np.int64)])
        out._derive()
        return out

    def _ensure_hnsw(self):  # type: ignore[no-untyped-def]
        if self._hnsw is None and len(self.base_rowids) >= self.ann_threshold:
            faiss = _faiss()
            if faiss is None or not self.equal_norms():
                return None
            if self.ann_dtype == "float16":
                index = faiss.IndexHNSWSQ(self.dim, faiss.ScalarQuantizer.QT_fp16, 32,
                                          faiss.METRIC_INNER_PRODUCT)
                index.train(self.base_vectors[:1])  # fp16 learns nothing; marks it trained
            else:
                index = faiss.IndexHNSWFlat(self.dim, 32, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = 80
            index.add(self.base_vectors)
            index.hnsw.efSearch = EF_SEARCH
            self._hnsw = index
            self.base_vectors = _storage_view(index)  # one copy of the rows: the graph's
            self._vectors = None
        return self._hnsw

    def equal_norms(self, tolerance: float = 1e-3) -> bool:
        """True when the base rows have one norm (relative spread <= ``tolerance`` over a
        sample of up to 10k rows), the case where HNSW's inner-product search finds the true
        neighbours. Spaces whose norms vary (the per-head layout ``[v/|v|, 1/|v|]``) stay exact:
        measured at 100k rows with the real 1/|v| spread, HNSW recall@10 was 0.37 against 0.99
        on unit rows (``benchmarks/hnsw_head_layout.py``)."""
        if self._equal_norms is None:
            v = self.base_vectors[:: max(1, len(self.base_vectors) // 10_000)]
            n = np.linalg.norm(v, axis=1)
            self._equal_norms = bool(len(n) == 0 or (n.max() - n.min()) <= tolerance * n.max())
        return self._equal_norms

    def _exact(self, q: np.ndarray, positions: np.ndarray | None) -> np.ndarray:
        """Scores ``(len(q), m)`` float32 against the rows at ``positions`` (all when None)."""
        nb = len(self.base_rowids)
        if positions is None:
            base, delta = self.base_vectors, self.delta_vectors
        else:
            base = self.base_vectors[positions[positions < nb]]
            delta = self.delta_vectors[positions[positions >= nb] - nb]
        # a float16 graph's rows are widened (only filtered searches come here then)
        parts = [q @ base.astype(np.float32, copy=False).T]
        if len(delta):
            parts.append(q @ delta.T)
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)

    def search(
        self, queries: np.ndarray, k: int, mask: np.ndarray | None = None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Top-``k`` rows per query: ``(rowids int64 (m,), scores float32 (m,))``, best first.

        ``queries``: float32 ``(q, d)``; ``mask``: bool ``(len(rowids),)`` of allowed rows or
        None.
        """
        q = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        n = len(self.rowids)
        if n == 0 or k <= 0:
            return _empty(len(q))
        if mask is None:
            hnsw = self._ensure_hnsw()
            if hnsw is not None:
                return self._search_hnsw(hnsw, q, k)
        if mask is None and self.alive is None:
            positions = None
        else:
            allowed = self.live if mask is None else self.live & mask
            positions = np.flatnonzero(allowed)
        scores = self._exact(q, positions)  # (q, m)
        m = scores.shape[1]
        kk = min(k, m)
        if kk == 0:
            return _empty(len(q))
        out = []
        for row in scores:
            top = np.argpartition(-row, kk - 1)[:kk] if kk < m else np.arange(m)
            top = top[np.argsort(-row[top], kind="stable")]
            pos = top if positions is None else positions[top]
            out.append((self.rowids[pos], row[top].astype(np.float32)))
        return out

    def _search_hnsw(self, hnsw, q: np.ndarray, k: int) -> list[tuple[np.ndarray, np.ndarray]]:  # type: ignore[no-untyped-def]
        nb = len(self.base_rowids)
        dead = 0 if self.alive is None else int((~self.alive).sum())
        scores, idx = hnsw.search(q, min(k + dead, nb))
        delta = q @ self.delta_vectors.T if len(self.delta_rowids) else None
        out = []
        for i, (s, ix) in enumerate(zip(scores, idx, strict=True)):
            ok = ix >= 0
            if self.alive is not None:
                ok &= self.alive[np.where(ok, ix, 0)]
            rows, vals = self.base_rowids[ix[ok]], s[ok]
            if delta is not None:
                rows = np.concatenate([rows, self.delta_rowids])
                vals = np.concatenate([vals, delta[i]])
            top = np.argsort(-vals, kind="stable")[:k]
            out.append((rows[top], vals[top].astype(np.float32)))
        return out

    # -- files -------------------------------------------------------------------------------
    def save(self, path: Path, generation: int) -> None:
        """Write ``<path>.npz`` (the base, unless already there) and ``<path>-delta.npz``
        atomically, tagged with the base id and ``generation``."""
        with DERIVED_IO_LOCK:
            base = path.with_suffix(".npz")
            if npz_meta(base).get("base_id") != self.base_id:
                self._save_hnsw(path)
                _savez(base, vectors=self.base_vectors, rowids=self.base_rowids,
                       meta={"generation": self.base_generation, "base_id": self.base_id})
                for old in path.parent.glob(path.name + "-*.hnsw"):
                    if old != _hnsw_path(path, self.base_id):
                        old.unlink(missing_ok=True)  # graphs of replaced bases
            delta = _delta_path(path)
            if generation == self.base_generation and not self.delta_size:
                delta.unlink(missing_ok=True)
                return
            dead = (np.zeros(0, np.int64) if self.alive is None
                    else self.base_rowids[~self.alive])
            _savez(delta, vectors=self.delta_vectors, rowids=self.delta_rowids, dead=dead,
                   meta={"generation": generation, "base_id": self.base_id})

    def _save_hnsw(self, path: Path) -> None:
        """Build (if due) and write the base's HNSW graph to ``<path>-<base_id>.hnsw``, so a new
        process loads it instead of rebuilding it (minutes at 1M rows)."""
        hnsw = self._ensure_hnsw()
        if hnsw is None:
            return
        final = _hnsw_path(path, self.base_id)
        tmp = final.with_name(final.name + f".tmp{os.getpid()}-{uuid.uuid4().hex[:8]}")
        _faiss().write_index(hnsw, str(tmp))  # type: ignore[union-attr]
        os.replace(tmp, final)

    @classmethod
    def load(cls, path: Path, generation: int | None, ann_threshold: int = 50_000,
             base: DenseIndex | None = None, ann_dtype: str = "float16") -> DenseIndex | None:
        """The saved index if it reflects ``generation`` (any generation when None: the
        starting point for applying a change), else None. ``base``: an index already in memory;
        when the saved delta belongs to its base, only the delta file is read. A saved graph is
        used in whatever dtype it holds its rows; ``ann_dtype`` applies to graphs built later."""
        with DERIVED_IO_LOCK:
            try:
                if base is not None and base.base_id == npz_meta(_delta_path(path)).get("base_id"):
                    return base._with_saved_delta(path, generation)
                with np.load(path.with_suffix(".npz")) as z:
                    meta = json.loads(str(z["meta"]))
                    if "base_id" not in meta:
                        return None  # an older layout: rebuilt once
                    if generation is not None and meta["generation"] != generation and \
                            npz_meta(_delta_path(path)).get("generation") != generation:
                        return None  # neither the base nor its delta is at ``generation``
                    rowids = z["rowids"]
                    graph = _read_hnsw(_hnsw_path(path, meta["base_id"]), len(rowids),
                                       ann_threshold)
                    vectors = z["vectors"] if graph is None else _storage_view(graph)
                    idx = cls(vectors if graph is None else vectors[:0], rowids, ann_threshold,
                              int(meta["generation"]), ann_dtype)
                    if graph is not None:
                        idx.base_vectors = vectors  # the graph's rows, in its dtype
                    idx.base_id, idx._hnsw = meta["base_id"], graph
                if generation is not None and idx.base_generation == generation:
                    return idx
                return idx._with_saved_delta(path, generation) or (
                    idx if generation is None else None)
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
                return None

    def _with_saved_delta(self, path: Path, generation: int | None) -> DenseIndex | None:
        """This base plus the delta file at ``path`` when it belongs to this base and reflects
        ``generation`` (any when None); else None. The caller holds ``DERIVED_IO_LOCK``."""
        delta = _delta_path(path)
        if not delta.exists():
            return None
        with np.load(delta) as z:
            meta = json.loads(str(z["meta"]))
            if meta["base_id"] != self.base_id or (
                    generation is not None and meta["generation"] != generation):
                return None
            out = DenseIndex.__new__(DenseIndex)
            out.__dict__.update(self.__dict__)
            out.delta_vectors = z["vectors"].reshape(-1, self.dim)
            out.delta_rowids = z["rowids"]
            out.alive = alive_after(self.base_rowids, None, z["dead"])
            out.generation = int(meta["generation"])
        out._derive()
        return out


def _read_hnsw(graph: Path, n: int, ann_threshold: int):  # type: ignore[no-untyped-def]
    """The saved HNSW graph of ``n`` rows at ``graph``, or None (too few rows for one, no
    file, no faiss, or unreadable: then it is rebuilt on first use)."""
    faiss = _faiss() if n >= ann_threshold and graph.exists() else None
    if faiss is None:
        return None
    try:
        index = faiss.read_index(str(graph))
    except RuntimeError as e:
        log.info("could not read %s (%s): the graph is rebuilt", graph, e)
        return None
    if index.ntotal != n:
        return None
    index.hnsw.efSearch = EF_SEARCH
    return index


def _storage_view(index) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The rows held by a FAISS HNSW index as a numpy ``(ntotal, d)`` view (no copy; valid
    while ``index`` lives, which the owning :class:`DenseIndex` guarantees by holding both):
    float32 for ``IndexHNSWFlat``, float16 for ``IndexHNSWSQ`` with ``QT_fp16`` (its codes are
    IEEE half floats).

    Raises:
        ValueError: the graph stores its rows in another encoding (then it is rebuilt)."""
    import faiss

    storage = faiss.downcast_index(index.storage)
    n, d = int(index.ntotal), int(index.d)
    if isinstance(storage, faiss.IndexFlat):
        return faiss.rev_swig_ptr(storage.get_xb(), n * d).reshape(n, d)
    if isinstance(storage, faiss.IndexScalarQuantizer) and \
            storage.sq.qtype == faiss.ScalarQuantizer.QT_fp16:
        raw = faiss.rev_swig_ptr(storage.codes.data(), n * d * 2)
        return raw.view(np.float16).reshape(n, d)
    raise ValueError(f"unsupported HNSW storage {type(storage).__name__}")


def _hnsw_path(path: Path, base_id: str) -> Path:
    return path.with_name(f"{path.name}-{base_id}.hnsw")


def _delta_path(path: Path) -> Path:
    return path.with_name(path.name + "-delta.npz")


def _savez(path: Path, meta: dict, **arrays: np.ndarray) -> None:  # type: ignore[type-arg]
    tmp = path.with_name(path.name + f".tmp{os.getpid()}-{uuid.uuid4().hex[:8]}.npz")
    np.savez(tmp, meta=np.array(json.dumps(meta)), **arrays)
    os.replace(tmp, path)

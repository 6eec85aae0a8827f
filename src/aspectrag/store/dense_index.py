"""Inner-product search over one vector space: exact (numpy) or HNSW (FAISS) once large."""

from __future__ import annotations

import json
import logging
import os
import uuid
import zipfile
from pathlib import Path

import numpy as np

from aspectrag.store.base import DERIVED_IO_LOCK

log = logging.getLogger("aspectrag.store")
_NO_FAISS_NOTED = False


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


class DenseIndex:
    """Vectors ``(n, d) float32`` with store row ids ``(n,) int64``.

    Exact search is one matrix-vector product plus ``argpartition``; above ``ann_threshold``
    rows an HNSW graph (Malkov & Yashunin 2018, FAISS ``IndexHNSWFlat``, inner product,
    M=32, efSearch=128) answers unfiltered queries; filtered queries stay exact on the subset.
    """

    def __init__(self, vectors: np.ndarray, rowids: np.ndarray, ann_threshold: int = 50_000) -> None:
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.rowids = np.asarray(rowids, dtype=np.int64)
        self.ann_threshold = ann_threshold
        self._hnsw = None

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1]) if self.vectors.ndim == 2 else 0

    def _ensure_hnsw(self):  # type: ignore[no-untyped-def]
        if self._hnsw is None and len(self.rowids) >= self.ann_threshold:
            faiss = _faiss()
            if faiss is None:
                return None
            index = faiss.IndexHNSWFlat(self.dim, 32, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = 80
            index.add(self.vectors)
            index.hnsw.efSearch = 128
            self._hnsw = index
        return self._hnsw

    def search(
        self, queries: np.ndarray, k: int, mask: np.ndarray | None = None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Top-``k`` rows per query: ``(rowids int64 (m,), scores float32 (m,))``, best first.

        ``queries``: float32 ``(q, d)``; ``mask``: bool ``(n,)`` of allowed rows or None.
        """
        q = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        n = len(self.rowids)
        if n == 0 or k <= 0:
            return [(np.zeros(0, np.int64), np.zeros(0, np.float32)) for _ in q]
        if mask is None:
            hnsw = self._ensure_hnsw()
            if hnsw is not None:
                scores, idx = hnsw.search(q, min(k, n))
                return [(self.rowids[i[i >= 0]], s[i >= 0]) for s, i in zip(scores, idx, strict=True)]
            sub, base = self.vectors, None
        else:
            base = np.flatnonzero(mask)
            sub = self.vectors[base]
        scores = q @ sub.T  # (q, m)
        m = scores.shape[1]
        kk = min(k, m)
        out = []
        for row in scores:
            if kk == 0:
                out.append((np.zeros(0, np.int64), np.zeros(0, np.float32)))
                continue
            top = np.argpartition(-row, kk - 1)[:kk] if kk < m else np.arange(m)
            top = top[np.argsort(-row[top], kind="stable")]
            pos = top if base is None else base[top]
            out.append((self.rowids[pos], row[top].astype(np.float32)))
        return out

    def save(self, path: Path, generation: int) -> None:
        """Write ``<path>.npz`` atomically, tagged with ``generation``."""
        with DERIVED_IO_LOCK:
            self._save(path, generation)

    @classmethod
    def load(cls, path: Path, generation: int, ann_threshold: int = 50_000) -> DenseIndex | None:
        """The saved index at ``<path>.npz`` if built at ``generation``, else None."""
        with DERIVED_IO_LOCK:
            return cls._load(path, generation, ann_threshold)

    def _save(self, path: Path, generation: int) -> None:
        """Write ``<path>.npz`` atomically, tagged with ``generation``."""
        tmp = path.with_name(path.name + f".tmp{os.getpid()}-{uuid.uuid4().hex[:8]}.npz")
        np.savez(tmp, vectors=self.vectors, rowids=self.rowids,
                 meta=np.array(json.dumps({"generation": generation})))
        os.replace(tmp, path.with_suffix(".npz"))

    @classmethod
    def _load(cls, path: Path, generation: int, ann_threshold: int = 50_000) -> DenseIndex | None:
        """The saved index at ``<path>.npz`` if built at ``generation``, else None."""
        try:
            with np.load(path.with_suffix(".npz")) as z:
                if json.loads(str(z["meta"])).get("generation") != generation:
                    return None
                return cls(z["vectors"], z["rowids"], ann_threshold)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return None

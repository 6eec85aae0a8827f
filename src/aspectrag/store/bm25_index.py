"""BM25 over chunk texts with bm25s (Lucene BM25, English stemming and stop words).

A derived index: rebuilt from the durable store when missing or stale, saved atomically.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from aspectrag.store.base import DERIVED_IO_LOCK


def _stemmer():  # type: ignore[no-untyped-def]
    import Stemmer

    return Stemmer.Stemmer("english")


def tokenize(texts: Sequence[str], stemmer=None, *, return_ids: bool = False):  # type: ignore[no-untyped-def]
    """The BM25 tokenisation of every store (bm25s: lower case, English stop words removed,
    Snowball English stemmer): a list of token lists (``return_ids`` False) or bm25s'
    ``Tokenized`` ids and vocabulary. ``stemmer``: a ``Stemmer.Stemmer`` to reuse (one is made
    when None)."""
    import bm25s

    return bm25s.tokenize(list(texts), stopwords="en", stemmer=stemmer or _stemmer(),
                          return_ids=return_ids, show_progress=False)


class BM25Index:
    """Lexical index over ``n`` texts; row ``i`` of the corpus is row ``i`` of ``rowids``.

    Args:
        k1, b: BM25 parameters (Robertson & Zaragoza 2009; Lucene variant as in bm25s).
    """

    def __init__(self, k1: float = 1.5, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self._bm25 = None
        self.rowids = np.zeros(0, dtype=np.int64)
        self._stem = _stemmer()

    def _tokenize(self, texts: Sequence[str], *, return_ids: bool):  # type: ignore[no-untyped-def]
        return tokenize(texts, self._stem, return_ids=return_ids)

    def build(self, texts: Sequence[str], rowids: np.ndarray) -> BM25Index:
        """Index ``texts`` (one per chunk) whose store row ids are ``rowids`` (int64, shape (n,))."""
        import bm25s

        self.rowids = np.asarray(rowids, dtype=np.int64)
        self._bm25 = None
        if len(texts):
            bm = bm25s.BM25(k1=self.k1, b=self.b)
            bm.index(self._tokenize(texts, return_ids=True), show_progress=False)
            self._bm25 = bm
        return self

    def search(
        self, queries: Sequence[str], k: int, mask: np.ndarray | None = None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Top-``k`` per query as ``(rowids int64 (m,), scores float32 (m,))``, m <= k, zero-score
        rows dropped. ``mask`` (float32 (n,), 1 = allowed) restricts the candidates."""
        empty = (np.zeros(0, np.int64), np.zeros(0, np.float32))
        if self._bm25 is None or not len(queries):
            return [empty for _ in queries]
        n = len(self.rowids)
        kk = max(1, min(k, n))
        toks = self._tokenize(queries, return_ids=False)
        out = []
        for q in toks:
            if not q:
                out.append(empty)
                continue
            docs, scores = self._bm25.retrieve(
                [q], k=kk, show_progress=False, weight_mask=mask, n_threads=0
            )
            d, s = docs[0], scores[0]
            keep = s > 0
            out.append((self.rowids[d[keep]], s[keep].astype(np.float32)))
        return out

    def save(self, folder: Path, generation: int) -> None:
        """Write atomically to ``folder`` (temp folder + rename) tagged with ``generation``."""
        with DERIVED_IO_LOCK:
            self._save(folder, generation)

    @classmethod
    def load(cls, folder: Path, generation: int) -> BM25Index | None:
        """The saved index if it exists and was built at ``generation``, else None."""
        with DERIVED_IO_LOCK:
            return cls._load(folder, generation)

    def _save(self, folder: Path, generation: int) -> None:
        """Write atomically to ``folder`` (temp folder + rename) tagged with ``generation``."""
        tmp = folder.with_name(folder.name + f".tmp{os.getpid()}-{uuid.uuid4().hex[:8]}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        if self._bm25 is not None:
            self._bm25.save(str(tmp / "bm25"), show_progress=False)
        np.save(tmp / "rowids.npy", self.rowids)
        (tmp / "meta.json").write_text(json.dumps({"generation": generation}))
        old = folder.with_name(folder.name + f".old{os.getpid()}-{uuid.uuid4().hex[:8]}")
        if folder.exists():
            folder.rename(old)
        tmp.rename(folder)
        shutil.rmtree(old, ignore_errors=True)

    @classmethod
    def _load(cls, folder: Path, generation: int) -> BM25Index | None:
        """The saved index if it exists and was built at ``generation``, else None."""
        import bm25s

        try:
            meta = json.loads((folder / "meta.json").read_text())
            if meta.get("generation") != generation:
                return None
            idx = cls()
            idx.rowids = np.load(folder / "rowids.npy")
            if (folder / "bm25").exists():
                idx._bm25 = bm25s.BM25.load(str(folder / "bm25"), show_progress=False, verbosity=0)
            return idx
        except (OSError, ValueError, KeyError):
            return None

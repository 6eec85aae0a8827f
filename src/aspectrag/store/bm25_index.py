"""BM25 over chunk texts with bm25s (Lucene BM25, English stemming and stop words).

A derived index of the durable store, in two segments (see :mod:`aspectrag.store.segments`):

- the **base**: a bm25s index (precomputed per-term score columns) over every chunk at the
  generation it was built, with its collection statistics (document count ``N``, mean length
  ``avgdl``, document frequencies);
- the **delta**: chunks added since, scored with the *base's* statistics by the same Lucene
  formula (``idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5))``, term part
  ``tf / (tf + k1 (1 - b + b dl / avgdl))``; Kamphuis et al. 2020, as bm25s), and tombstones
  for base chunks removed since. A term the base never saw takes its document frequency from
  the delta. Scores of base and delta chunks are therefore comparable; they equal a full
  rebuild's once the base is rebuilt (the merge), and differ from it before only by the drift
  of ``N``, ``df`` and ``avgdl`` since the base was built (at most ``MERGE_FRACTION`` of the
  rows).

Saved atomically: the base as a folder (bm25s files + ``rowids.npy`` + ``meta.json``), the
delta as one ``.npz`` beside it, both tagged with the base id and the generation.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import uuid
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aspectrag.store.base import DERIVED_IO_LOCK
from aspectrag.store.segments import alive_after, new_base_id, npz_meta
from aspectrag.validate import bm25_terms

FORMAT = 2

NUMBA_MIN_DOCS: int | None = None
"""Score with bm25s' numba backend from this many base chunks on (None: never; the numpy
backend then). The numba code is compiled anew in every process (~8 s here: bm25s does not
cache it), so only long-lived processes turn it on: the HTTP service does
(``service/engine.py``). Measured at 1M chunks (under load, ``benchmarks/bm25_backend.py``):
0.9-1.5 ms per query against 32-42 ms with numpy, the same scores."""


def _stemmer():  # type: ignore[no-untyped-def]
    import Stemmer

    return Stemmer.Stemmer("english")


def _bm25s():  # type: ignore[no-untyped-def]
    """The ``bm25s`` module. Unless numba scoring is wanted in this process
    (:data:`NUMBA_MIN_DOCS`), bm25s is imported with numba hidden: it would import numba
    (0.2 s of every command's start) only to offer the backend the command line never uses."""
    if "bm25s" in sys.modules or NUMBA_MIN_DOCS is not None or "numba" in sys.modules:
        import bm25s

        return bm25s
    sys.modules["numba"] = None  # type: ignore[assignment]  # ImportError inside bm25s
    try:
        import bm25s
    finally:
        del sys.modules["numba"]
    return bm25s


def tokenize(texts: Sequence[str], stemmer=None, *, return_ids: bool = False):  # type: ignore[no-untyped-def]
    """The BM25 tokenisation of every store (bm25s: lower case, English stop words removed,
    Snowball English stemmer): a list of token lists (``return_ids`` False) or bm25s'
    ``Tokenized`` ids and vocabulary. ``stemmer``: a ``Stemmer.Stemmer`` to reuse (one is made
    when None). The token lists are built here with bm25s' token pattern and stop list
    (:func:`aspectrag.validate.bm25_terms`) and the same stemmer, equal to ``bm25s.tokenize``
    (kept so by ``tests/store/test_bm25_tokenize.py``) at a fraction of its cost per call:
    it matters for one-query searches."""
    stemmer = stemmer or _stemmer()
    if not return_ids:  # bm25s.tokenize's steps without its 3 tqdm bars per call (~50 us)
        return [stemmer.stemWords(bm25_terms(t)) for t in texts]
    return _bm25s().tokenize(list(texts), stopwords="en", stemmer=stemmer,
                             return_ids=True, show_progress=False)


@dataclass(frozen=True)
class _Delta:
    """Chunks added since the base: row ids int64 ``(m,)``, token counts ``tf`` as CSR
    ``(m, V)`` int32 over the base vocabulary extended by ``new_terms`` (columns ``V_base + j``),
    and lengths int32 ``(m,)`` in tokens after stop-word removal."""

    rowids: np.ndarray
    lengths: np.ndarray
    indptr: np.ndarray
    indices: np.ndarray
    counts: np.ndarray
    new_terms: tuple[str, ...]

    @classmethod
    def empty(cls) -> _Delta:
        z = np.zeros(0, np.int64)
        return cls(z, z.astype(np.int32), np.zeros(1, np.int64), z.astype(np.int32),
                   z.astype(np.int32), ())

    def keep(self, rows: np.ndarray) -> _Delta:
        """The delta without the chunks whose row ids are in ``rows``."""
        drop = np.isin(self.rowids, rows)
        if not drop.any():
            return self
        import scipy.sparse as sp

        m = sp.csr_matrix((self.counts, self.indices, self.indptr),
                          shape=(len(self.rowids), max(int(self.indices.max(initial=-1)) + 1, 1)))
        m = m[np.flatnonzero(~drop)]
        return _Delta(self.rowids[~drop], self.lengths[~drop], m.indptr.astype(np.int64),
                      m.indices.astype(np.int32), m.data.astype(np.int32), self.new_terms)


class BM25Index:
    """Lexical index; position ``i`` of :attr:`rowids` (base rows, then delta rows) is the
    chunk with that store row id.

    Args:
        k1, b: BM25 parameters (Robertson & Zaragoza 2009; Lucene variant as in bm25s).
    """

    def __init__(self, k1: float = 1.5, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self._bm25 = None
        self._stem = _stemmer()
        self.base_id = new_base_id()
        self.base_generation = self.generation = -1
        self.base_rowids = np.zeros(0, dtype=np.int64)
        self.n_docs, self.avgdl = 0, 1.0
        self.alive: np.ndarray | None = None
        self.delta = _Delta.empty()
        self._derive()

    # -- views -------------------------------------------------------------------------------
    def _derive(self) -> None:
        """Recompute what follows from the segments: positions, delta scores."""
        self.rowids = np.concatenate([self.base_rowids, self.delta.rowids])
        self._delta_scores = None
        self._vocab: dict[str, int] = dict(self._bm25.vocab_dict) if self._bm25 is not None else {}
        v = self._n_vocab()
        self._vocab.update({t: v + j for j, t in enumerate(self.delta.new_terms)})

    def _n_vocab(self) -> int:
        if self._bm25 is None:
            return 0
        return len(self._bm25.scores["indptr"]) - 1

    @property
    def live_rowids(self) -> np.ndarray:
        """Row ids (int64, ascending) of the chunks the index answers for."""
        base = self.base_rowids if self.alive is None else self.base_rowids[self.alive]
        return np.concatenate([base, self.delta.rowids])

    @property
    def delta_size(self) -> int:
        """Rows held in the delta: added chunks plus tombstones."""
        dead = 0 if self.alive is None else int((~self.alive).sum())
        return len(self.delta.rowids) + dead

    # -- building ----------------------------------------------------------------------------
    def build(self, texts: Sequence[str], rowids: np.ndarray, generation: int = -1) -> BM25Index:
        """A new base over ``texts`` (one per chunk) whose store row ids are ``rowids`` (int64,
        shape (n,), ascending), built at ``generation``; the delta is emptied."""
        bm25s = _bm25s()

        self.base_rowids = np.asarray(rowids, dtype=np.int64)
        self.base_id, self.base_generation = new_base_id(), generation
        self.generation = generation
        self._bm25, self.alive, self.delta = None, None, _Delta.empty()
        self.n_docs, self.avgdl = len(texts), 1.0
        if len(texts):
            toks = tokenize(texts, self._stem, return_ids=True)
            lengths = [len(d) for d in toks.ids]
            self.avgdl = float(np.mean(lengths)) if sum(lengths) else 1.0
            bm = bm25s.BM25(k1=self.k1, b=self.b)
            bm.index(toks, show_progress=False)
            self._bm25 = bm
        self._derive()
        return self

    def with_changes(self, added_texts: Sequence[str], added_rowids: np.ndarray,
                     removed_rowids: np.ndarray, generation: int) -> BM25Index:
        """A new index at ``generation`` sharing this base: ``added_texts`` (store row ids
        ``added_rowids``, int64 ascending, all greater than the rows held) join the delta and
        the chunks with row ids in ``removed_rowids`` leave it (tombstones for base rows).
        ``self`` is unchanged."""
        out = BM25Index.__new__(BM25Index)
        out.__dict__.update(self.__dict__)
        out.generation = generation
        out.alive = alive_after(self.base_rowids, self.alive, removed_rowids)
        delta = self.delta.keep(removed_rowids)
        if len(added_texts):
            delta = out._append(delta, tokenize(added_texts, self._stem, return_ids=False),
                                np.asarray(added_rowids, dtype=np.int64))
        out.delta = delta
        out._derive()
        return out

    def _append(self, delta: _Delta, docs: list[list[str]], rowids: np.ndarray) -> _Delta:
        vocab, new_terms = dict(self._vocab), list(delta.new_terms)
        v = self._n_vocab()
        indptr, indices, counts = [delta.indptr], [delta.indices], [delta.counts]
        end = int(delta.indptr[-1])
        for toks in docs:
            for t in toks:
                if t not in vocab:
                    vocab[t] = v + len(new_terms)
                    new_terms.append(t)
            cols, cnt = np.unique(np.array([vocab[t] for t in toks], dtype=np.int32),
                                  return_counts=True)
            indices.append(cols.astype(np.int32))
            counts.append(cnt.astype(np.int32))
            end += len(cols)
            indptr.append(np.array([end], dtype=np.int64))
        return _Delta(np.concatenate([delta.rowids, rowids]),
                      np.concatenate([delta.lengths,
                                      np.array([len(d) for d in docs], dtype=np.int32)]),
                      np.concatenate(indptr), np.concatenate(indices), np.concatenate(counts),
                      tuple(new_terms))

    def _scores_of_delta(self):  # type: ignore[no-untyped-def]
        """The delta's BM25 score matrix, CSC ``(m, V)`` float32, with the base's statistics."""
        if self._delta_scores is None:
            import scipy.sparse as sp

            d = self.delta
            n_cols = self._n_vocab() + len(d.new_terms)
            tf = sp.csr_matrix((d.counts.astype(np.float32), d.indices, d.indptr),
                               shape=(len(d.rowids), n_cols))
            df = np.zeros(n_cols, dtype=np.float64)
            if self._bm25 is not None:
                df[: self._n_vocab()] = np.diff(self._bm25.scores["indptr"])
            new = slice(self._n_vocab(), n_cols)
            df[new] = np.bincount(d.indices, minlength=n_cols)[new]
            n = max(self.n_docs, 1)
            idf = np.log(1 + (n - df + 0.5) / (df + 0.5)).astype(np.float32)
            norm = self.k1 * (1 - self.b + self.b * d.lengths / self.avgdl)  # (m,)
            coo = tf.tocoo()
            vals = coo.data / (coo.data + norm[coo.row]) * idf[coo.col]
            self._delta_scores = sp.csc_matrix(
                (vals.astype(np.float32), (coo.row, coo.col)), shape=tf.shape)
        return self._delta_scores

    # -- search ------------------------------------------------------------------------------
    def search(
        self, queries: Sequence[str], k: int, mask: np.ndarray | None = None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Top-``k`` per query as ``(rowids int64 (m,), scores float32 (m,))``, m <= k, zero-score
        rows dropped. ``mask`` (float32 ``(len(rowids),)``, 1 = allowed) restricts the
        candidates."""
        empty = (np.zeros(0, np.int64), np.zeros(0, np.float32))
        if not len(self.rowids) or not len(queries):
            return [empty for _ in queries]
        nb = len(self.base_rowids)
        base_w = None if self.alive is None else self.alive.astype(np.float32)
        if mask is not None:
            base_w = mask[:nb] if base_w is None else base_w * mask[:nb]
        if NUMBA_MIN_DOCS is not None and self._bm25 is not None and nb >= NUMBA_MIN_DOCS:
            if getattr(sys.modules["bm25s"], "_retrieve_numba_functional", None) is not None:
                self._bm25.backend = "numba"  # (not when bm25s was imported without numba)
        out = []
        for q in tokenize(queries, self._stem, return_ids=False):
            rows, scores = [], []
            if self._bm25 is not None and any(t in self._bm25.vocab_dict for t in q):
                kk = max(1, min(k, nb))
                if self._bm25.backend == "numba":
                    docs, s = self._bm25.retrieve([q], k=kk, show_progress=False,
                                                  weight_mask=base_w, n_threads=0)
                    docs, s = docs[0], s[0]
                else:  # what retrieve() does per query, without its tqdm and checks (~0.1 ms)
                    from bm25s.selection import topk

                    s, docs = topk(self._bm25.get_scores(q, weight_mask=base_w), k=kk,
                                   sorted=True, backend="auto")
                rows.append(self.base_rowids[docs])
                scores.append(s.astype(np.float32))
            if len(self.delta.rowids):
                cols = [self._vocab[t] for t in q if t in self._vocab]
                s = np.asarray(self._scores_of_delta()[:, cols].sum(axis=1)).ravel()
                if mask is not None:
                    s = s * mask[nb:]
                rows.append(self.delta.rowids)
                scores.append(s.astype(np.float32))
            if not rows:
                out.append(empty)
                continue
            r, s = np.concatenate(rows), np.concatenate(scores)
            top = np.argsort(-s, kind="stable")[:k]
            top = top[s[top] > 0]
            out.append((r[top], s[top]))
        return out

    # -- files -------------------------------------------------------------------------------
    def save(self, folder: Path, generation: int) -> None:
        """Write atomically: the base to ``folder`` (temp folder + rename) unless it is already
        there, the delta to ``<folder>-delta.npz``, tagged with ``generation``."""
        with DERIVED_IO_LOCK:
            if _read_meta(folder).get("base_id") != self.base_id:
                self._save_base(folder)
            self._save_delta(_delta_path(folder), generation)

    @classmethod
    def load(cls, folder: Path, generation: int,
             base: BM25Index | None = None) -> BM25Index | None:
        """The saved index if it reflects ``generation`` (base built then, or base plus a delta
        saved then), else None. ``base``: an index already in memory; when the saved delta
        belongs to its base, only the delta file is read."""
        with DERIVED_IO_LOCK:
            delta = npz_meta(_delta_path(folder))
            if base is not None and delta.get("base_id") == base.base_id:
                out = BM25Index.__new__(BM25Index)
                out.__dict__.update(base.__dict__)
                return out._load_delta(_delta_path(folder), generation)
            if _read_meta(folder).get("generation") != generation and \
                    delta.get("generation") != generation:
                return None  # neither the base nor its delta is at ``generation``
            idx = cls._load_base(folder)
            if idx is None:
                return None
            if idx.base_generation == generation:
                return idx  # a delta file beside it is for a later generation
            return idx._load_delta(_delta_path(folder), generation)

    @classmethod
    def load_any(cls, folder: Path) -> BM25Index | None:
        """The saved index at whatever generation it reflects (base plus its saved delta, if
        any), or None: the starting point for applying a change."""
        with DERIVED_IO_LOCK:
            idx = cls._load_base(folder)
            if idx is None:
                return None
            return idx._load_delta(_delta_path(folder), None) or idx

    def _save_base(self, folder: Path) -> None:
        tmp = folder.with_name(folder.name + f".tmp{os.getpid()}-{uuid.uuid4().hex[:8]}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        if self._bm25 is not None:
            self._bm25.save(str(tmp / "bm25"), show_progress=False)
        np.save(tmp / "rowids.npy", self.base_rowids)
        (tmp / "meta.json").write_text(json.dumps({
            "format": FORMAT, "generation": self.base_generation, "base_id": self.base_id,
            "n_docs": self.n_docs, "avgdl": self.avgdl, "k1": self.k1, "b": self.b}))
        old = folder.with_name(folder.name + f".old{os.getpid()}-{uuid.uuid4().hex[:8]}")
        _delta_path(folder).unlink(missing_ok=True)  # it belonged to the replaced base
        if folder.exists():
            folder.rename(old)
        tmp.rename(folder)
        shutil.rmtree(old, ignore_errors=True)

    def _save_delta(self, path: Path, generation: int) -> None:
        if generation == self.base_generation and not self.delta_size:
            path.unlink(missing_ok=True)
            return
        d = self.delta
        tmp = path.with_name(path.name + f".tmp{os.getpid()}-{uuid.uuid4().hex[:8]}.npz")
        dead = (np.zeros(0, np.int64) if self.alive is None
                else self.base_rowids[~self.alive])
        np.savez(tmp, rowids=d.rowids, lengths=d.lengths, indptr=d.indptr, indices=d.indices,
                 counts=d.counts, dead=dead, meta=np.array(json.dumps(
                     {"base_id": self.base_id, "generation": generation,
                      "new_terms": list(d.new_terms)})))
        os.replace(tmp, path)

    @classmethod
    def _load_base(cls, folder: Path) -> BM25Index | None:
        bm25s = _bm25s()

        try:
            meta = _read_meta(folder)
            if meta.get("format") != FORMAT:
                return None  # an older layout: rebuilt once
            idx = cls(float(meta["k1"]), float(meta["b"]))
            idx.base_rowids = np.load(folder / "rowids.npy")
            idx.base_id, idx.base_generation = meta["base_id"], int(meta["generation"])
            idx.generation = idx.base_generation
            idx.n_docs, idx.avgdl = int(meta["n_docs"]), float(meta["avgdl"])
            if (folder / "bm25").exists():
                idx._bm25 = bm25s.BM25.load(str(folder / "bm25"), show_progress=False,
                                            verbosity=0)
            idx._derive()
            return idx
        except (OSError, ValueError, KeyError):
            return None

    def _load_delta(self, path: Path, generation: int | None) -> BM25Index | None:
        """This base plus the delta saved at ``path`` if it belongs to this base and (unless
        ``generation`` is None) reflects ``generation``; else None."""
        try:
            with np.load(path) as z:
                meta = json.loads(str(z["meta"]))
                if meta["base_id"] != self.base_id or (
                        generation is not None and meta["generation"] != generation):
                    return None
                self.delta = _Delta(z["rowids"], z["lengths"], z["indptr"], z["indices"],
                                    z["counts"], tuple(meta["new_terms"]))
                self.alive = alive_after(self.base_rowids, None, z["dead"])
                self.generation = int(meta["generation"])  # the generation it reflects
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return None
        self._derive()
        return self


def _delta_path(folder: Path) -> Path:
    return folder.with_name(folder.name + "-delta.npz")


def _read_meta(folder: Path) -> dict:  # type: ignore[type-arg]
    try:
        return json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return {}

"""The embedded default store: SQLite (WAL) for documents, chunks and vectors, plus derived
BM25 / dense indexes rebuilt from it when missing or stale.

Folder layout (``path``):
    index.sqlite             durable store (the truth); every write is one transaction
    derived/bm25/            bm25s index of chunk texts, tagged with the store generation
    derived/vec-<space>.npz  vectors of one space, tagged with the store generation

Each committed write bumps ``generation`` in the ``meta`` table inside the same transaction,
so a derived index is stale exactly when its tag differs. A process killed mid-write leaves
the SQLite file as of the last commit (WAL rollback) and at worst a stale derived index,
which is rebuilt on next use. Readers use one connection per thread (WAL: readers never block
on the single writer).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from aspectrag.errors import AspectragError
from aspectrag.store.base import ScoredId
from aspectrag.store.bm25_index import BM25Index
from aspectrag.store.dense_index import DenseIndex
from aspectrag.types import Chunk, Document

log = logging.getLogger("aspectrag.store")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY,
    doc_id TEXT NOT NULL,
    source TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    metadata TEXT NOT NULL,
    sections TEXT NOT NULL,
    text_length INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    chunk_id TEXT NOT NULL UNIQUE,
    doc INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    text TEXT NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    page INTEGER,
    heading TEXT
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc);
CREATE TABLE IF NOT EXISTS vectors (
    chunk INTEGER NOT NULL REFERENCES chunks(id) ON DELETE CASCADE,
    space TEXT NOT NULL,
    vec BLOB NOT NULL,
    PRIMARY KEY (chunk, space)
) WITHOUT ROWID;
"""

_CHUNK_COLS = (
    "c.chunk_id, d.doc_id, d.source, d.title, c.idx, c.text, c.start, c.end, c.page, c.heading"
)


def _row_to_chunk(r: Sequence) -> Chunk:  # type: ignore[type-arg]
    return Chunk(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9])


class SQLiteStore:
    """Durable store in ``path`` implementing :class:`aspectrag.store.base.Store`.

    Args:
        path: index folder (created if missing).
        ann_threshold: chunk count from which unfiltered dense search uses FAISS HNSW.

    Raises:
        AspectragError: if ``path`` exists but is not an aspectrag index folder.
    """

    def __init__(self, path: str | Path, *, ann_threshold: int = 50_000) -> None:
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise AspectragError(f"{self.path}: index path exists and is not a folder; "
                                 "pass --index with a folder path")
        self.path.mkdir(parents=True, exist_ok=True)
        self.db_path = self.path / "index.sqlite"
        self.derived = self.path / "derived"
        self.ann_threshold = ann_threshold
        self._local = threading.local()
        self._lock = threading.Lock()
        self._bm25: tuple[int, BM25Index] | None = None
        self._dense: dict[str, tuple[int, DenseIndex]] = {}
        self._source_rows: tuple[int, dict[str, np.ndarray]] | None = None
        self._ids: tuple[int, dict[int, str]] | None = None
        self._stacks: dict[tuple[str, ...], tuple[int, np.ndarray, np.ndarray]] = {}
        with self._conn() as c:
            c.executescript(SCHEMA)
            c.execute("INSERT OR IGNORE INTO meta VALUES ('generation', '0')")

    # -- connections -------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.db_path, timeout=60, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
        return conn

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    @property
    def generation(self) -> int:
        """Number of committed writes so far; derived indexes are tagged with it."""
        row = self._conn().execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        return int(row[0])

    # -- writing -----------------------------------------------------------------------------
    @contextmanager
    def writer(self) -> Iterator[_Writer]:
        """One write transaction (``BEGIN IMMEDIATE``): commits on normal exit, rolls back on
        exception; a killed process leaves the last committed state."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        w = _Writer(conn)
        try:
            yield w
            if w.changed:
                conn.execute(
                    "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='generation'"
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def get_meta(self, key: str) -> str | None:
        row = self._conn().execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self._conn().execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # -- reading -----------------------------------------------------------------------------
    def fingerprint(self, source: str) -> str | None:
        row = self._conn().execute(
            "SELECT fingerprint FROM documents WHERE source=?", (source,)
        ).fetchone()
        return None if row is None else str(row[0])

    def sources(self) -> list[str]:
        return [r[0] for r in self._conn().execute("SELECT source FROM documents ORDER BY id")]

    def stats(self) -> dict[str, int]:
        c = self._conn()
        return {
            "documents": c.execute("SELECT COUNT(*) FROM documents").fetchone()[0],
            "chunks": c.execute("SELECT COUNT(*) FROM chunks").fetchone()[0],
        }

    def get_chunks(self, chunk_ids: Sequence[str]) -> list[Chunk]:
        if not chunk_ids:
            return []
        found: dict[str, Chunk] = {}
        ids = list(chunk_ids)
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            q = (f"SELECT {_CHUNK_COLS} FROM chunks c JOIN documents d ON c.doc = d.id "
                 f"WHERE c.chunk_id IN ({','.join('?' * len(part))})")
            for r in self._conn().execute(q, part):
                found[r[0]] = _row_to_chunk(r)
        missing = [c for c in ids if c not in found]
        if missing:
            raise KeyError(f"unknown chunk ids: {missing[:5]}")
        return [found[c] for c in ids]

    def _chunks_by_rowid(self, rowids: Sequence[int]) -> dict[int, Chunk]:
        out: dict[int, Chunk] = {}
        ids = [int(r) for r in rowids]
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            q = (f"SELECT c.id, {_CHUNK_COLS} FROM chunks c JOIN documents d ON c.doc = d.id "
                 f"WHERE c.id IN ({','.join('?' * len(part))})")
            for r in self._conn().execute(q, part):
                out[r[0]] = _row_to_chunk(r[1:])
        return out

    def iter_chunks(self) -> Iterator[Chunk]:
        q = f"SELECT {_CHUNK_COLS} FROM chunks c JOIN documents d ON c.doc = d.id ORDER BY c.id"
        for r in self._conn().execute(q):
            yield _row_to_chunk(r)

    def get_document(self, source: str) -> Document | None:
        """The stored document (text rebuilt from its chunks is not kept: ``text`` is '')."""
        r = self._conn().execute(
            "SELECT doc_id, source, title, fingerprint, metadata, sections FROM documents "
            "WHERE source=?", (source,)).fetchone()
        if r is None:
            return None
        from aspectrag.types import Section

        return Document(r[0], r[1], r[2], "", [Section(*s) for s in json.loads(r[5])], r[3],
                        json.loads(r[4]))

    def vector_spaces(self) -> list[str]:
        row = self._conn().execute("SELECT chunk FROM vectors LIMIT 1").fetchone()
        if row is None:
            return []
        return [r[0] for r in self._conn().execute(
            "SELECT space FROM vectors WHERE chunk=? ORDER BY space", (row[0],))]

    def get_vectors(self, space: str, chunk_ids: Sequence[str]) -> np.ndarray:
        if not chunk_ids:
            return np.zeros((0, 0), np.float32)
        rows: dict[str, bytes] = {}
        ids = list(chunk_ids)
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            q = ("SELECT c.chunk_id, v.vec FROM vectors v JOIN chunks c ON v.chunk = c.id "
                 f"WHERE v.space=? AND c.chunk_id IN ({','.join('?' * len(part))})")
            rows.update(self._conn().execute(q, [space, *part]).fetchall())
        missing = [c for c in ids if c not in rows]
        if missing:
            raise KeyError(f"no '{space}' vectors for chunk ids {missing[:5]}")
        return np.stack([np.frombuffer(rows[c], dtype=np.float32) for c in ids])

    # -- derived indexes ---------------------------------------------------------------------
    def bm25_index(self) -> BM25Index:
        """The BM25 index at the current generation (loaded or rebuilt and saved)."""
        gen = self.generation
        with self._lock:
            if self._bm25 is not None and self._bm25[0] == gen:
                return self._bm25[1]
            folder = self.derived / "bm25"
            idx = BM25Index.load(folder, gen)
            if idx is None:
                rows = self._conn().execute(
                    "SELECT c.id, d.title, c.heading, c.text FROM chunks c "
                    "JOIN documents d ON c.doc = d.id ORDER BY c.id").fetchall()
                texts = [_index_text(t, h, x) for _, t, h, x in rows]
                idx = BM25Index().build(texts, np.array([r[0] for r in rows], dtype=np.int64))
                self._try_save(lambda: idx.save(folder, gen))
            self._bm25 = (gen, idx)
            return idx

    def dense_index(self, space: str, generation: int | None = None) -> DenseIndex:
        """The dense index of ``space`` at the current generation (loaded or rebuilt);
        ``generation`` saves reading it again when the caller just did."""
        gen = self.generation if generation is None else generation
        with self._lock:
            cached = self._dense.get(space)
            if cached is not None and cached[0] == gen:
                return cached[1]
            path = self.derived / f"vec-{space}"
            idx = DenseIndex.load(path, gen, self.ann_threshold)
            if idx is None:
                rows = self._conn().execute(
                    "SELECT chunk, vec FROM vectors WHERE space=? ORDER BY chunk", (space,)
                ).fetchall()
                if rows:
                    mat = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32)
                    mat = mat.reshape(len(rows), -1)
                else:
                    mat = np.zeros((0, 0), np.float32)
                idx = DenseIndex(mat, np.array([r[0] for r in rows], dtype=np.int64),
                                 self.ann_threshold)
                self._try_save(lambda: idx.save(path, gen))
            self._dense[space] = (gen, idx)
            return idx

    def refresh(self) -> None:
        """Bring every derived index up to the current generation (called after ingest)."""
        self.bm25_index()
        for space in self.vector_spaces():
            self.dense_index(space)

    def _try_save(self, fn) -> None:  # type: ignore[no-untyped-def]
        try:
            self.derived.mkdir(parents=True, exist_ok=True)
            fn()
        except OSError as e:  # read-only index folder: keep the in-memory index
            log.warning("could not save derived index in %s: %s", self.derived, e)

    def _rows_of_sources(self, sources: Sequence[str]) -> np.ndarray:
        gen = self.generation
        if self._source_rows is None or self._source_rows[0] != gen:
            self._source_rows = (gen, {})
        cache = self._source_rows[1]
        key = "\x00".join(sorted(sources))
        if key not in cache:
            # a source matches exactly, or as a folder / corpus-file prefix
            conds = " OR ".join(["d.source = ? OR d.source LIKE ? OR d.source LIKE ?"] * len(sources))
            params: list[str] = []
            for s in sources:
                params += [s, s.rstrip("/") + "/%", s + "#%"]
            q = f"SELECT c.id FROM chunks c JOIN documents d ON c.doc = d.id WHERE {conds}"
            cache[key] = np.array([r[0] for r in self._conn().execute(q, params)], dtype=np.int64)
        return cache[key]

    def _mask(self, rowids: np.ndarray, sources: Sequence[str] | None) -> np.ndarray | None:
        if not sources:
            return None
        return np.isin(rowids, self._rows_of_sources(sources))

    def _to_scored(self, results: list[tuple[np.ndarray, np.ndarray]],
                   generation: int | None = None) -> list[list[ScoredId]]:
        all_rows = np.unique(np.concatenate([r for r, _ in results])) if results else []
        id_of = self._chunk_ids_of(all_rows, generation)
        return [[ScoredId(id_of[int(r)], float(s)) for r, s in zip(rows, scores, strict=True)]
                for rows, scores in results]

    def _chunk_ids_of(self, rowids, generation: int | None = None) -> dict[int, str]:  # type: ignore[no-untyped-def]
        """Row id -> chunk id, memoised for the current generation (searches repeat ids)."""
        gen = self.generation if generation is None else generation
        if self._ids is None or self._ids[0] != gen:
            self._ids = (gen, {})
        out = self._ids[1]
        ids = [r for r in map(int, rowids) if r not in out]
        for i in range(0, len(ids), 900):
            part = ids[i : i + 900]
            q = f"SELECT id, chunk_id FROM chunks WHERE id IN ({','.join('?' * len(part))})"
            out.update(self._conn().execute(q, part).fetchall())
        return out

    def keyword_search(
        self, queries: Sequence[str], k: int, sources: Sequence[str] | None = None
    ) -> list[list[ScoredId]]:
        idx = self.bm25_index()
        mask = self._mask(idx.rowids, sources)
        return self._to_scored(idx.search(queries, k, None if mask is None else mask.astype(np.float32)))

    def vector_search(
        self, space: str, queries: np.ndarray, k: int, sources: Sequence[str] | None = None
    ) -> list[list[ScoredId]]:
        idx = self.dense_index(space)
        q = np.atleast_2d(queries)
        if idx.dim and q.shape[1] != idx.dim:
            raise AspectragError(f"query vectors have {q.shape[1]} dims but space '{space}' has "
                                 f"{idx.dim}; was the index built with another embedder?")
        return self._to_scored(idx.search(q, k, self._mask(idx.rowids, sources)))


    def vector_search_spaces(
        self, searches: Sequence[tuple[str, np.ndarray]], k: int,
        sources: Sequence[str] | None = None,
    ) -> list[list[list[ScoredId]]]:
        """Several :meth:`vector_search` calls at once (multi-head retrieval searches one
        space per attention head): ``searches`` is ``[(space, queries (q, d_space))]``; returns
        one ``vector_search`` result per pair. Spaces of one dimension are searched together
        (one batched product over their stacked vectors and one vectorised exact top-k), and
        chunk ids are looked up once for all."""
        gen = self.generation
        flat: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(searches)
        groups: dict[int, list[int]] = {}
        for i, (space, queries) in enumerate(searches):
            idx = self.dense_index(space, gen)
            q = np.atleast_2d(np.asarray(queries, dtype=np.float32))
            if idx.dim and q.shape[1] != idx.dim:
                raise AspectragError(f"query vectors have {q.shape[1]} dims but space '{space}' "
                                     f"has {idx.dim}; was the index built with another embedder?")
            if sources or len(q) != 1 or idx.dim == 0 or idx._ensure_hnsw() is not None:
                flat[i] = idx.search(q, k, self._mask(idx.rowids, sources))
            else:
                groups.setdefault(idx.dim, []).append(i)
        for members in groups.values():
            if len(members) == 1:
                i = members[0]
                flat[i] = self.dense_index(searches[i][0], gen).search(searches[i][1], k)
                continue
            spaces = tuple(searches[i][0] for i in members)
            stacked, rowids = self._stacked(spaces, gen)
            q = np.stack([np.asarray(searches[i][1], dtype=np.float32).reshape(-1)
                          for i in members])
            scores = np.matmul(stacked, q[:, :, None])[:, :, 0]  # (spaces, n)
            for i, (pos, vals) in zip(members, top_k_rows(scores, k), strict=True):
                flat[i] = [(rowids[pos], vals)]
        results = [r for res in flat for r in res]  # type: ignore[union-attr]
        scored = self._to_scored(results, gen)
        out, j = [], 0
        for res in flat:
            out.append(scored[j : j + len(res)])  # type: ignore[arg-type]
            j += len(res)  # type: ignore[arg-type]
        return out

    def _stacked(self, spaces: tuple[str, ...], gen: int) -> tuple[np.ndarray, np.ndarray]:
        """Vectors of ``spaces`` stacked ``(len(spaces), n, d)`` (same chunks in each), cached
        per generation, and their row ids."""
        cached = self._stacks.get(spaces)
        if cached is None or cached[0] != gen:
            idxs = [self.dense_index(s, gen) for s in spaces]
            if any(not np.array_equal(ix.rowids, idxs[0].rowids) for ix in idxs[1:]):
                raise AspectragError(f"spaces {spaces} do not cover the same chunks")
            cached = (gen, np.stack([ix.vectors for ix in idxs]), idxs[0].rowids)
            self._stacks[spaces] = cached
        return cached[1], cached[2]


def top_k_rows(scores: np.ndarray, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Exact top-``k`` of every row of ``scores`` ``(r, n)``: ``[(positions, values)]`` per
    row, best first. A threshold per row (the 4th largest of a strided sample, a value of the
    row) selects candidates in one vectorised comparison; rows where fewer than k values reach
    it fall back to ``argpartition``."""
    r, n = scores.shape
    k = min(k, n)
    if k <= 0:
        return [(np.zeros(0, np.int64), np.zeros(0, np.float32)) for _ in range(r)]
    step = max(n // 256, 1)
    sample = scores[:, ::step]
    j = max(sample.shape[1] - 4, 0)
    t = np.partition(sample, j, axis=1)[:, j : j + 1]
    rows, cols = np.nonzero(scores >= t)
    vals = scores[rows, cols]
    order = np.lexsort((-vals, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    starts = np.searchsorted(rows, np.arange(r + 1))
    out = []
    for i in range(r):
        a, b = starts[i], starts[i + 1]
        if b - a >= k:
            out.append((cols[a : a + k], vals[a : a + k]))
        else:
            row = scores[i]
            top = np.argpartition(-row, k - 1)[:k] if k < n else np.arange(n)
            top = top[np.argsort(-row[top], kind="stable")]
            out.append((top, row[top]))
    return out


def _index_text(title: str, heading: str | None, text: str) -> str:
    return Chunk("", "", "", title, 0, text, 0, 0, None, heading).index_text()


class _Writer:
    """Mutations inside one transaction (see :meth:`SQLiteStore.writer`)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.changed = False

    def delete(self, source: str) -> int:
        """Delete the document with exactly this source; returns the chunks removed."""
        row = self.conn.execute("SELECT id FROM documents WHERE source=?", (source,)).fetchone()
        if row is None:
            return 0
        n = self.conn.execute("SELECT COUNT(*) FROM chunks WHERE doc=?", (row[0],)).fetchone()[0]
        self.conn.execute("DELETE FROM documents WHERE id=?", (row[0],))
        self.changed = True
        return int(n)

    def upsert(
        self, doc: Document, chunks: Sequence[Chunk], vectors: Mapping[str, np.ndarray]
    ) -> None:
        for space, arr in vectors.items():
            if arr.shape[0] != len(chunks):
                raise ValueError(f"vectors['{space}'] has {arr.shape[0]} rows for "
                                 f"{len(chunks)} chunks of {doc.source}")
        self.delete(doc.source)
        cur = self.conn.execute(
            "INSERT INTO documents (doc_id, source, title, fingerprint, metadata, sections, "
            "text_length) VALUES (?,?,?,?,?,?,?)",
            (doc.doc_id, doc.source, doc.title, doc.fingerprint, json.dumps(doc.metadata),
             json.dumps([[s.start, s.end, s.page, s.heading] for s in doc.sections]),
             len(doc.text)))
        doc_row = cur.lastrowid
        for i, ch in enumerate(chunks):
            cur = self.conn.execute(
                "INSERT INTO chunks (chunk_id, doc, idx, text, start, end, page, heading) "
                "VALUES (?,?,?,?,?,?,?,?)",
                (ch.chunk_id, doc_row, ch.index, ch.text, ch.start, ch.end, ch.page, ch.heading))
            crow = cur.lastrowid
            self.conn.executemany(
                "INSERT INTO vectors (chunk, space, vec) VALUES (?,?,?)",
                [(crow, space, np.ascontiguousarray(arr[i], dtype=np.float32).tobytes())
                 for space, arr in vectors.items()])
        self.changed = True

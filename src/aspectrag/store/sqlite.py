"""The embedded default store: SQLite (WAL) for documents, chunks and vectors, plus derived
BM25 / dense indexes rebuilt from it when missing or stale.

Folder layout (``path``):
    index.sqlite             durable store (the truth); every write is one transaction
    derived/bm25/            bm25s base segment of chunk texts (``store/bm25_index.py``)
    derived/bm25-delta.npz   chunks added / removed since that base, tagged with the generation
    derived/vec-<space>.npz  base segment of one vector space (``store/dense_index.py``)
    derived/vec-<space>-delta.npz  its delta, tagged with the generation
    write.lock(.json)        the exclusive cross-process writer lock (``store/lock.py``)
    <side files>             caches kept with the index (``side_path``: the rerank token cache)

Each committed write bumps ``generation`` in the ``meta`` table inside the same transaction,
so a derived index is stale exactly when its tag differs; a stale one is brought up to date
by a delta of the rows added and removed since (``store/segments.py``), or rebuilt. A process killed mid-write leaves
the SQLite file as of the last commit (WAL rollback) and at worst a stale derived index,
which is rebuilt on next use.

Readers and writers: opening the store and every read perform no write to the database
(schema creation and migrations happen only on the write path, :meth:`SQLiteStore.write_lock`).
Readers use one connection per thread and, in WAL mode, never wait for the writer; the writer
holds the SQLite write lock only for the commit (the pipeline embeds before it opens the
transaction). A read-only index (``readonly=True``, or a folder the process cannot write) is
opened with ``mode=ro``; WAL then needs ``index.sqlite-shm`` and ``-wal`` to exist or to be
creatable, so on a read-only mount where they are absent (an index whose last writer closed
cleanly) the file is opened with ``immutable=1`` (no locking: nothing may write it meanwhile).
Before copying an index to read-only media, let every writer finish (the last connection to
close checkpoints the WAL into ``index.sqlite``). Derived indexes that cannot be saved there
are kept in memory.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from urllib.parse import quote

import numpy as np

from aspectrag.errors import AspectragError, StoreError
from aspectrag.store.base import (
    CAP_BATCHED_VECTOR_SEARCH,
    CAP_CHECK,
    CAP_DERIVED_INDEXES,
    CAP_SIDE_FILES,
    CAP_TRANSACTIONS,
    CheckReport,
    ScoredId,
    SpaceSpec,
    source_matches,
)
from aspectrag.store.bm25_index import BM25Index
from aspectrag.store.dense_index import DenseIndex
from aspectrag.store.lock import WriterLock
from aspectrag.store.segments import RowDelta
from aspectrag.store.sqlite_write import (
    SCHEMA,
    SQLiteWriter,
    create_schema,
    inferred_spaces,
    recorded_dtypes,
    recorded_spaces,
)
from aspectrag.store.vector_codec import (
    DTYPES_KEY,
    as_stored,
    check_dtype,
    decode,
    itemsize,
    new_index_dtypes,
)
from aspectrag.types import Chunk, Document

log = logging.getLogger("aspectrag.store")

DB_FILE = "index.sqlite"

_CHUNK_COLS = (
    "c.chunk_id, d.doc_id, d.source, d.title, c.idx, c.text, c.start, c.end, c.page, c.heading"
)


_OWN_META = ("generation", "schema_version", "spaces", "next_chunk_row", DTYPES_KEY)
"""The meta rows the store keeps for itself (not index metadata: ``meta_keys`` leaves them out)."""


def _row_to_chunk(r: Sequence) -> Chunk:  # type: ignore[type-arg]
    return Chunk(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9])


def store_error(location: str, e: BaseException) -> StoreError:
    """One-line :class:`StoreError` for a ``sqlite3`` / OS error on index ``location``, naming
    the next step."""
    msg = str(e)
    low = msg.lower()
    if "locked" in low or "busy" in low:
        hint = "another process holds the database lock; try again when it has finished"
    elif "readonly" in low or "read-only" in low or isinstance(e, PermissionError):
        hint = "the index is read-only here; search it (reads work), or write to a copy"
    elif "unable to open" in low:
        hint = "check that the index folder exists and is readable"
    else:
        hint = f"the index may be damaged; run `aspectrag check --index {location}`"
    return StoreError(location, f"index {location}: {msg}; {hint}")


class SQLiteStore:
    """Durable store in folder ``path`` implementing :class:`aspectrag.store.base.Store`.

    Args:
        path: index folder (created by the first write).
        readonly: open for reading only: no file is created or changed, ``writer()`` raises.
        ann_threshold: chunk count from which unfiltered dense search uses FAISS HNSW.
        head_dtype: storage dtype of the head spaces when this store creates the index's
            spaces (``float16`` / ``float32``; None: the ``store.head_dtype`` setting). An
            existing index keeps the dtypes it records (``store/vector_codec.py``); searches
            always compute in float32.
        ann_dtype: how HNSW graphs built from now on hold their rows (``float16`` /
            ``float32``; None: the ``store.ann_dtype`` setting; see
            :class:`aspectrag.store.dense_index.DenseIndex`).

    Raises:
        AspectragError: if ``path`` exists but is not an aspectrag index folder.
        StoreError: (from any method) the database is damaged, locked or read-only.
    """

    capabilities = frozenset({CAP_BATCHED_VECTOR_SEARCH, CAP_DERIVED_INDEXES, CAP_SIDE_FILES,
                              CAP_TRANSACTIONS, CAP_CHECK})
    #: chunks :meth:`get_chunks` keeps in memory per store (least recently used dropped):
    #: about 1-2 KB each at the default chunk size, so a few MB.
    chunk_cache_size: int = 4096

    def __init__(self, path: str | Path, *, readonly: bool = False,
                 ann_threshold: int = 50_000, head_dtype: str | None = None,
                 ann_dtype: str | None = None) -> None:
        self.path = Path(path)
        if ann_dtype is None:
            from aspectrag.settings import get_settings

            ann_dtype = get_settings().store.ann_dtype
        check_dtype(ann_dtype)
        self.ann_dtype = ann_dtype
        self.head_dtype = head_dtype
        self.location = str(path)
        self.readonly = readonly
        if self.path.exists() and not self.path.is_dir():
            raise AspectragError(f"{self.path}: index path exists and is not a folder; "
                                 "pass --index with a folder path")
        self.db_path = self.path / DB_FILE
        self.derived = self.path / "derived"
        self.ann_threshold = ann_threshold
        self._local = threading.local()
        self._lock = threading.Lock()
        self._writer_lock = WriterLock(self.path, self.location)
        self._checked = False
        self._bm25: tuple[int, BM25Index] | None = None
        self._dense: dict[str, tuple[int, DenseIndex]] = {}
        self._source_rows: tuple[int, dict[str, np.ndarray]] = (-1, {})
        self._ids: tuple[int, dict[int, str]] = (-1, {})
        self._chunks: tuple[int, OrderedDict[str, Chunk]] = (-1, OrderedDict())
        self._chunks_lock = threading.Lock()  # its own: _lock is held through index loads
        self._rowids: tuple[int, np.ndarray] = (-1, np.zeros(0, np.int64))
        self._stacks: dict[tuple[str, ...],
                           tuple[int, np.ndarray, np.ndarray, np.ndarray | None]] = {}

    # -- connections -------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is not None and not (self._local.memory and self.db_path.exists()):
            return conn
        if conn is not None:
            conn.close()
        try:
            conn, memory = self._connect(), False
        except FileNotFoundError:  # no index yet: an empty one, in memory, without a file
            conn, memory = sqlite3.connect(":memory:", check_same_thread=False), True
            for stmt in SCHEMA:
                conn.execute(stmt)
            conn.execute("INSERT INTO meta VALUES ('generation', '0')")
        except sqlite3.Error as e:
            raise store_error(self.location, e) from None
        conn.isolation_level = None
        conn.execute("PRAGMA foreign_keys=ON")
        self._local.conn, self._local.memory = conn, memory
        return conn

    def _connect(self) -> sqlite3.Connection:
        """A connection to the existing file; raises FileNotFoundError when there is none.
        Read-only (``mode=ro``, then ``immutable=1``) when the store or the folder is."""
        if not self.db_path.is_file():
            raise FileNotFoundError(self.db_path)
        uri = "file:" + quote(str(self.db_path.resolve()))
        if not self.readonly and os.access(self.path, os.W_OK) and os.access(self.db_path, os.W_OK):
            return sqlite3.connect(f"{uri}?mode=rw", uri=True, timeout=60,
                                   check_same_thread=False)
        try:
            conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=60,
                                   check_same_thread=False)
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError as e:
            if "unable to open" not in str(e) and "readonly" not in str(e):
                raise
        log.info("%s: read-only without -wal/-shm files; opening it immutable", self.db_path)
        return sqlite3.connect(f"{uri}?immutable=1", uri=True, check_same_thread=False)

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    @property
    def generation(self) -> int:
        """Number of committed writes so far; derived indexes are tagged with it. Read once
        per :meth:`reading` transaction (its snapshot cannot change inside it)."""
        snap = getattr(self._local, "snapshot", None)
        if snap is not None and snap[0] is not None:
            return snap[0]
        row = self._conn().execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        gen = int(row[0]) if row else 0
        if snap is not None:
            self._local.snapshot = (gen,)
        return gen

    def side_path(self, name: str) -> Path:
        """``<path>/<name>``: a side file kept with the index (e.g. the token cache)."""
        return self.path / name

    @contextmanager
    def reading(self) -> Iterator[None]:
        """A consistent view for several reads on this thread (``Store.reading``): one SQLite
        read transaction, so the generation, the derived index of that generation, the row id
        -> chunk id mapping and the chunks fetched all belong to one committed state (WAL
        snapshot isolation) while a writer commits. Nests; a no-op inside a write."""
        conn = self._conn()
        depth = getattr(self._local, "read_depth", 0)
        begin = depth == 0 and not conn.in_transaction and not self._local.memory
        if begin:
            conn.execute("BEGIN DEFERRED")
            self._local.snapshot = (None,)  # this transaction's generation, once read
        self._local.read_depth = depth + 1
        try:
            yield
        finally:
            self._local.read_depth = depth
            if begin:
                self._local.snapshot = None
                if conn.in_transaction:
                    conn.execute("COMMIT")  # ends the read transaction (nothing was written)

    # -- writing -----------------------------------------------------------------------------
    def write_lock(self, *, wait: bool = True,
                   on_wait: Callable[[str], None] | None = None) -> AbstractContextManager[None]:
        """The exclusive cross-process writer session (see ``Store.write_lock``): creates the
        folder and the schema, migrates an older index, and refuses (``StoreError``) an index
        that fails ``PRAGMA quick_check``."""
        return self._write_session(wait, on_wait)

    @contextmanager
    def _write_session(self, wait: bool,
                       on_wait: Callable[[str], None] | None) -> Iterator[None]:
        if self.readonly:
            raise StoreError(self.location, f"index {self.location} is open read-only; "
                                            "open it without readonly to write")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise store_error(self.location, e) from None
        with self._writer_lock.hold(wait=wait, on_wait=on_wait):
            self._prepare_write()
            yield

    def _prepare_write(self) -> None:
        try:
            if not self._checked and self.db_path.exists():
                rows = [r[0] for r in self._conn().execute("PRAGMA quick_check").fetchall()]
                if rows != ["ok"]:
                    raise StoreError(self.location, (
                        f"index {self.location} failed its integrity check ({rows[0]}); nothing "
                        f"was written: run `aspectrag check --index {self.location}`"))
            conn = self._conn()
            if self._local.memory:
                conn = self._reconnect_file()
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                if conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] == 0:
                    # a new file: 16 KiB pages hold a 1,536-byte vector row without an overflow
                    # page (at 4 KiB the vectors table took 6.4 KB per chunk for 3.3 KB of data;
                    # 3.9 KB at 16 KiB, benchmarks/results/scale/NOTES.md). Only settable
                    # before the first table and before WAL mode.
                    conn.execute("PRAGMA page_size=16384")
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                create_schema(conn)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            self._checked = True
        except sqlite3.Error as e:
            raise store_error(self.location, e) from None

    def _reconnect_file(self) -> sqlite3.Connection:
        """Create the database file (write path only) and make it this thread's connection."""
        self.close()
        conn = sqlite3.connect(self.db_path, timeout=60, isolation_level=None,
                               check_same_thread=False)
        conn.execute("PRAGMA foreign_keys=ON")
        self._local.conn, self._local.memory = conn, False
        return conn

    @contextmanager
    def writer(self) -> Iterator[SQLiteWriter]:
        """One write transaction (``BEGIN IMMEDIATE``): commits on normal exit, rolls back on
        exception; a killed process leaves the last committed state. Holds the writer lock
        (waiting for another writer) if the caller does not."""
        with self.write_lock():
            conn = self._conn()
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as e:
                raise store_error(self.location, e) from None
            w = SQLiteWriter(conn, self.location, self.head_dtype)
            try:
                yield w
                if w.changed:
                    conn.execute(
                        "UPDATE meta SET value = CAST(value AS INTEGER) + 1 "
                        "WHERE key='generation'")
                conn.execute("COMMIT")
            except BaseException as e:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(e, sqlite3.Error):
                    raise store_error(self.location, e) from None
                raise

    def get_meta(self, key: str) -> str | None:
        row = self._conn().execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def meta_keys(self) -> list[str]:
        """Keys written with ``set_meta`` (not ``generation``, ``schema_version``, ``spaces``)."""
        return [r[0] for r in self._conn().execute(
            f"SELECT key FROM meta WHERE key NOT IN ({','.join('?' * len(_OWN_META))}) ORDER BY key",
            _OWN_META)]

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
        """The chunks of ``chunk_ids``, in that order (``Store.get_chunks``). Inside
        :meth:`reading`, chunks come from a cache of the :attr:`chunk_cache_size` most recently
        fetched ones of the current generation (a commit empties it), so a search whose hits
        were seen before runs no SQL for them. The chunks returned are shared: treat them as
        read-only.

        Raises:
            KeyError: an id that is not in the index.
        """
        if not chunk_ids:
            return []
        ids = list(chunk_ids)
        cache = self._chunk_cache() if getattr(self._local, "snapshot", None) else None
        found: dict[str, Chunk] = {}
        if cache is not None:
            with self._chunks_lock:
                for c in ids:
                    hit = cache.get(c)
                    if hit is not None:
                        cache.move_to_end(c)
                        found[c] = hit
        todo = [c for c in dict.fromkeys(ids) if c not in found]
        fetched: dict[str, Chunk] = {}
        for i in range(0, len(todo), 500):
            part = todo[i : i + 500]
            q = (f"SELECT {_CHUNK_COLS} FROM chunks c JOIN documents d ON c.doc = d.id "
                 f"WHERE c.chunk_id IN ({','.join('?' * len(part))})")
            for r in self._conn().execute(q, part):
                fetched[r[0]] = _row_to_chunk(r)
        missing = [c for c in todo if c not in fetched]
        if missing:
            raise KeyError(f"unknown chunk ids: {missing[:5]}")
        if cache is not None and fetched:
            with self._chunks_lock:
                cache.update(fetched)
                while len(cache) > self.chunk_cache_size:
                    cache.popitem(last=False)
        found.update(fetched)
        return [found[c] for c in ids]

    def _chunk_cache(self) -> OrderedDict[str, Chunk] | None:
        """The chunk cache of the generation this thread reads (emptied when a newer one is
        read; None for a reader of an older snapshot, which must not see newer chunks)."""
        gen = self.generation
        with self._chunks_lock:
            if self._chunks[0] < gen:
                self._chunks = (gen, OrderedDict())
            elif self._chunks[0] > gen:  # a reader of an older snapshot: no cache for it
                return None
            return self._chunks[1]

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

    def spaces(self) -> list[SpaceSpec]:
        """The declared spaces (``meta.spaces``); for an index written before spaces were
        declared, those of its stored vectors (read-only; recorded by the next write)."""
        conn = self._conn()
        recorded = recorded_spaces(conn)
        return inferred_spaces(conn) if recorded is None else recorded

    def vector_spaces(self) -> list[str]:
        return [s.name for s in self.spaces()]

    def vector_dtypes(self) -> dict[str, str] | None:
        """``{space: dtype}`` of the spaces not stored as float32 ({}: all float32, e.g. an
        index written before dtypes were recorded); None while the index has no spaces yet
        (its first write decides, ``store/vector_codec.py``)."""
        conn = self._conn()
        dtypes = recorded_dtypes(conn)
        if dtypes or recorded_spaces(conn) or conn.execute(
                "SELECT 1 FROM vectors LIMIT 1").fetchone():
            return dtypes
        return None

    def vector_dtype(self, space: str) -> str:
        """Storage dtype of ``space``: ``float32`` or ``float16``."""
        return (self.vector_dtypes() or {}).get(space, "float32")

    def as_stored(self, vectors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``vectors`` (an embedder output) as this index will read them back once written:
        float32, float16 spaces rounded (what the head statistics must add)."""
        dtypes = self.vector_dtypes()
        if dtypes is None:
            dtypes = new_index_dtypes(list(vectors), self.head_dtype)
        return as_stored(vectors, dtypes)

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
        dtype = self.vector_dtype(space)
        return np.stack([decode(rows[c], dtype) for c in ids])

    # -- derived indexes ---------------------------------------------------------------------
    def bm25_index(self, generation: int | None = None) -> BM25Index:
        """The BM25 index at the current generation: cached, loaded, brought up to date from
        the last one by a delta (``store/segments.py``), or rebuilt; saved. ``generation``
        saves reading it again when the caller just did."""
        cached = self._bm25  # a current index without the lock, which is held through loads
        if generation is not None and cached is not None and cached[0] == generation:
            return cached[1]
        with self._lock, self.reading():
            gen = self.generation if generation is None else generation
            if self._bm25 is not None and self._bm25[0] == gen:
                return self._bm25[1]
            folder = self.derived / "bm25"
            idx = BM25Index.load(folder, gen,
                                 base=self._bm25[1] if self._bm25 is not None else None)
            if idx is None:
                prev = self._bm25[1] if self._bm25 is not None else BM25Index.load_any(folder)
                idx = self._updated_bm25(prev, gen)
                self._try_save(lambda: idx.save(folder, gen))
            self._bm25 = (gen, idx)
            return idx

    def _updated_bm25(self, prev: BM25Index | None, gen: int) -> BM25Index:
        change = self._change_since(prev, gen)
        if prev is not None and change is not None:
            texts = [_index_text(t, h, x) for _, t, h, x in self._chunk_texts(change.added)]
            return prev.with_changes(texts, change.added, change.removed, gen)
        rows = self._conn().execute(
            "SELECT c.id, d.title, c.heading, c.text FROM chunks c "
            "JOIN documents d ON c.doc = d.id ORDER BY c.id").fetchall()
        texts = [_index_text(t, h, x) for _, t, h, x in rows]
        return BM25Index().build(texts, np.array([r[0] for r in rows], dtype=np.int64), gen)

    def _change_since(self, prev: BM25Index | DenseIndex | None, gen: int) -> RowDelta | None:
        """The rows added and removed since ``prev`` was built when a delta can carry them;
        None when the index must be rebuilt (no base, too large a change, or rows that are
        not newer than the index's: an index written before row ids only grew)."""
        if prev is None or not len(prev.base_rowids):
            return None
        change = RowDelta.between(prev.live_rowids, self._chunk_rowids(gen))
        if change.needs_merge(len(prev.base_rowids), prev.delta_size):
            return None
        if len(change.added) and len(prev.rowids) and change.added[0] <= prev.rowids.max():
            return None
        return change

    def _chunk_rowids(self, gen: int) -> np.ndarray:
        """Row ids of all chunks (int64, ascending), cached per generation."""
        if self._rowids[0] != gen:
            rows = self._conn().execute("SELECT id FROM chunks ORDER BY id").fetchall()
            self._rowids = (gen, np.array([r[0] for r in rows], dtype=np.int64))
        return self._rowids[1]

    def _chunk_texts(self, rowids: np.ndarray) -> list[tuple[int, str, str | None, str]]:
        """``(row id, title, heading, text)`` of the chunks ``rowids`` (ascending)."""
        if not len(rowids):
            return []
        wanted = set(rowids.tolist())
        rows = self._conn().execute(
            "SELECT c.id, d.title, c.heading, c.text FROM chunks c JOIN documents d "
            "ON c.doc = d.id WHERE c.id >= ? ORDER BY c.id", (int(rowids[0]),)).fetchall()
        return [r for r in rows if r[0] in wanted]

    def dense_index(self, space: str, generation: int | None = None) -> DenseIndex:
        """The dense index of ``space`` at the current generation: cached, loaded, brought up
        to date by a delta, or rebuilt; saved. ``generation`` saves reading it again when the
        caller just did."""
        cached = self._dense.get(space)  # a current index without the lock (held through loads)
        if generation is not None and cached is not None and cached[0] == generation:
            return cached[1]
        with self._lock, self.reading():
            gen = self.generation if generation is None else generation
            cached = self._dense.get(space)
            if cached is not None and cached[0] == gen:
                return cached[1]
            path = self.derived / f"vec-{space}"
            idx = DenseIndex.load(path, gen, self.ann_threshold,
                                  base=cached[1] if cached is not None else None,
                                  ann_dtype=self.ann_dtype)
            if idx is None:
                prev = (cached[1] if cached is not None
                        else DenseIndex.load(path, None, self.ann_threshold,
                                             ann_dtype=self.ann_dtype))
                idx = self._updated_dense(space, prev, gen)
                self._try_save(lambda: idx.save(path, gen))
            self._dense[space] = (gen, idx)
            return idx

    def _updated_dense(self, space: str, prev: DenseIndex | None, gen: int) -> DenseIndex:
        change = self._change_since(prev, gen)
        if prev is not None and change is not None:
            rows: list[tuple[int, bytes]] = []
            if len(change.added):
                wanted = set(change.added.tolist())
                rows = [r for r in self._conn().execute(
                    "SELECT chunk, vec FROM vectors WHERE chunk >= ? AND space = ? ORDER BY chunk",
                    (int(change.added[0]), space)) if r[0] in wanted]
            return prev.with_changes(_matrix(rows, prev.dim, self.vector_dtype(space)),
                                     np.array([r[0] for r in rows], dtype=np.int64),
                                     change.removed, gen)
        # streamed into one preallocated matrix: a fetchall() plus a join held the vectors
        # three times over (the build's peak memory at 1M chunks)
        conn = self._conn()
        n = conn.execute("SELECT COUNT(*) FROM vectors WHERE space=?", (space,)).fetchone()[0]
        if not n:
            return DenseIndex(np.zeros((0, 0), np.float32), np.zeros(0, np.int64),
                              self.ann_threshold, gen, self.ann_dtype)
        cur = conn.execute("SELECT chunk, vec FROM vectors WHERE space=? ORDER BY chunk", (space,))
        first = cur.fetchone()
        dtype = self.vector_dtype(space)
        raw = np.float16 if dtype == "float16" else np.float32
        mat = np.empty((n, len(first[1]) // itemsize(dtype)), np.float32)  # float32 in memory
        rowids = np.empty(n, np.int64)
        for i, (row, blob) in enumerate(itertools.chain([first], cur)):
            rowids[i] = row
            mat[i] = np.frombuffer(blob, dtype=raw)
        return DenseIndex(mat, rowids, self.ann_threshold, gen, self.ann_dtype)

    def refresh(self) -> None:
        """Bring every derived index up to the current generation (called after ingest)."""
        self.bm25_index()
        for space in self.vector_spaces():
            self.dense_index(space)

    def check(self, *, quick: bool = False) -> CheckReport:
        """Integrity of the database and the derived indexes (see ``store/sqlite_check.py``)."""
        from aspectrag.store.sqlite_check import check_store

        return check_store(self, quick=quick)

    def repair(self) -> list[str]:
        """Rebuild the derived indexes and damaged SQL indexes (see ``store/sqlite_check.py``)."""
        from aspectrag.store.sqlite_check import repair_store

        return repair_store(self)

    def _try_save(self, fn) -> None:  # type: ignore[no-untyped-def]
        if self.readonly or not self.db_path.exists():  # reads of a read-only (or not yet
            return  # written) index create nothing: keep the rebuilt index in memory
        try:
            self.derived.mkdir(parents=True, exist_ok=True)
            fn()
        except OSError as e:  # read-only index folder: keep the in-memory index
            log.info("could not save derived index in %s: %s", self.derived, e)

    def _rows_of_sources(self, sources: Sequence[str]) -> np.ndarray:
        """Row ids of the chunks whose source passes the filter: the documents are matched
        with :func:`source_matches` itself (one definition of the filter), cached per
        generation and filter."""
        gen = self.generation
        with self._lock:
            if self._source_rows[0] != gen:
                self._source_rows = (gen, {})
            cache = self._source_rows[1]
        key = "\x00".join(sorted(sources))
        if key not in cache:
            conn = self._conn()
            docs = [i for i, src in conn.execute("SELECT id, source FROM documents")
                    if source_matches(src, sources)]
            rows: list[int] = []
            for i in range(0, len(docs), 900):
                part = docs[i : i + 900]
                rows += [r[0] for r in conn.execute(
                    f"SELECT id FROM chunks WHERE doc IN ({','.join('?' * len(part))})", part)]
            cache[key] = np.array(sorted(rows), dtype=np.int64)
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
        with self._lock:
            if self._ids[0] != gen:
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
        with self.reading():
            gen = self.generation
            idx = self.bm25_index(gen)
            mask = self._mask(idx.rowids, sources)
            return self._to_scored(
                idx.search(queries, k, None if mask is None else mask.astype(np.float32)), gen)

    def vector_search(
        self, space: str, queries: np.ndarray, k: int, sources: Sequence[str] | None = None
    ) -> list[list[ScoredId]]:
        with self.reading():
            gen = self.generation
            idx = self.dense_index(space, gen)
            q = np.atleast_2d(queries)
            if idx.dim and q.shape[1] != idx.dim:
                raise AspectragError(f"query vectors have {q.shape[1]} dims but space '{space}' "
                                     f"has {idx.dim}; was the index built with another embedder?")
            return self._to_scored(idx.search(q, k, self._mask(idx.rowids, sources)), gen)


    def vector_search_spaces(
        self, searches: Sequence[tuple[str, np.ndarray]], k: int,
        sources: Sequence[str] | None = None,
    ) -> list[list[list[ScoredId]]]:
        """Several :meth:`vector_search` calls at once (multi-head retrieval searches one
        space per attention head): ``searches`` is ``[(space, queries (q, d_space))]``; returns
        one ``vector_search`` result per pair. Spaces of one dimension are searched together
        (one batched product over their stacked vectors and one vectorised exact top-k), and
        chunk ids are looked up once for all."""
        with self.reading():
            return self._vector_search_spaces(searches, k, sources)

    def _vector_search_spaces(
        self, searches: Sequence[tuple[str, np.ndarray]], k: int,
        sources: Sequence[str] | None = None,
    ) -> list[list[list[ScoredId]]]:
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
            stacked, rowids, live = self._stacked(spaces, gen)
            q = np.stack([np.asarray(searches[i][1], dtype=np.float32).reshape(-1)
                          for i in members])
            scores = np.matmul(stacked, q[:, :, None])[:, :, 0]  # (spaces, n)
            if live is not None:
                scores[:, ~live] = -np.inf  # tombstoned rows of the base segment
            for i, (pos, vals) in zip(members, top_k_rows(scores, k), strict=True):
                ok = vals > -np.inf
                flat[i] = [(rowids[pos[ok]], vals[ok])]
        results = [r for res in flat for r in res]  # type: ignore[union-attr]
        scored = self._to_scored(results, gen)
        out, j = [], 0
        for res in flat:
            out.append(scored[j : j + len(res)])  # type: ignore[arg-type]
            j += len(res)  # type: ignore[arg-type]
        return out

    def _stacked(self, spaces: tuple[str, ...],
                 gen: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Vectors of ``spaces`` stacked ``(len(spaces), n, d)`` (same chunks in each), cached
        per generation, their row ids ``(n,)`` and live-row mask (bool ``(n,)``, None when no
        row is tombstoned)."""
        with self._lock:
            cached = self._stacks.get(spaces)
        if cached is None or cached[0] != gen:
            idxs = [self.dense_index(s, gen) for s in spaces]
            if any(not np.array_equal(ix.rowids, idxs[0].rowids) for ix in idxs[1:]):
                raise AspectragError(f"spaces {spaces} do not cover the same chunks")
            live = None if idxs[0].alive is None else idxs[0].live
            # filled space by space, each index then holding a view of its slice, so that its
            # own copy is freed at once: np.stack held every space twice (1.6 GB more at 1M)
            stacked = np.empty((len(idxs), len(idxs[0].rowids), idxs[0].dim), np.float32)
            for j, ix in enumerate(idxs):
                stacked[j] = ix.vectors
                ix.share_rows(stacked[j])
            cached = (gen, stacked, idxs[0].rowids, live)
            with self._lock:
                self._stacks[spaces] = cached
        return cached[1], cached[2], cached[3]


def _matrix(rows: Sequence[tuple[int, bytes]], dim: int = 0,
            dtype: str = "float32") -> np.ndarray:
    """Float32 ``(len(rows), d)`` from ``(row id, blob)`` rows of storage ``dtype`` (``(0,
    dim)`` when empty)."""
    if not rows:
        return np.zeros((0, dim), np.float32)
    mat = decode(b"".join(r[1] for r in rows), dtype)
    return mat.reshape(len(rows), -1)


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


def _guarded(fn):  # type: ignore[no-untyped-def]
    """``fn`` with ``sqlite3`` errors turned into one-line :class:`StoreError` s."""
    import functools
    import inspect

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen(self, *a, **kw):  # type: ignore[no-untyped-def]
            try:
                yield from fn(self, *a, **kw)
            except sqlite3.Error as e:
                raise store_error(self.location, e) from None
        return gen

    @functools.wraps(fn)
    def call(self, *a, **kw):  # type: ignore[no-untyped-def]
        try:
            return fn(self, *a, **kw)
        except sqlite3.Error as e:
            raise store_error(self.location, e) from None
    return call


for _name in ("fingerprint", "sources", "stats", "get_chunks", "iter_chunks", "get_document",
              "get_meta", "meta_keys", "spaces", "vector_dtypes", "as_stored", "get_vectors", "bm25_index", "dense_index", "refresh",
              "keyword_search", "vector_search", "vector_search_spaces"):
    setattr(SQLiteStore, _name, _guarded(getattr(SQLiteStore, _name)))
SQLiteStore.generation = property(_guarded(SQLiteStore.generation.fget))  # type: ignore[method-assign, assignment]

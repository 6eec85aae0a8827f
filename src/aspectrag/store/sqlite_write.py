"""The write path of the SQLite store: schema, migrations, and the transaction writer.

Only the write path creates or changes the schema (readers open the file as it is). Schema
versions (``meta.schema_version``):

1. (no key) chunk ids were ``"<doc_id>#<i>"`` -- two BEIR corpus files sharing an ``_id``
   collided; vector spaces were not recorded.
2. chunk ids are ``chunk_key(source, i)`` = ``"<source>#<i>"``; the declared spaces are in
   ``meta.spaces`` (JSON list of :class:`SpaceSpec` dicts). Since issue 13.6, without a
   schema change: ``meta.vector_dtypes`` (JSON ``{space: "float16"}``, written with the
   spaces of a new index) names the spaces whose blobs are float16; every other blob is
   float32, as in every index written before (``store/vector_codec.py``).

Migration runs in one transaction on the first write open of an older index.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence

import numpy as np

from aspectrag.errors import IndexMismatchError
from aspectrag.store.base import SpaceSpec, check_vectors
from aspectrag.store.vector_codec import DTYPES_KEY, encode, new_index_dtypes
from aspectrag.types import Chunk, Document

SCHEMA_VERSION = 2

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY,
    doc_id TEXT NOT NULL,
    source TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    metadata TEXT NOT NULL,
    sections TEXT NOT NULL,
    text_length INTEGER NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    chunk_id TEXT NOT NULL UNIQUE,
    doc INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    text TEXT NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    page INTEGER,
    heading TEXT
)""",
    "CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc)",
    """CREATE TABLE IF NOT EXISTS vectors (
    chunk INTEGER NOT NULL REFERENCES chunks(id) ON DELETE CASCADE,
    space TEXT NOT NULL,
    vec BLOB NOT NULL,
    PRIMARY KEY (chunk, space)
) WITHOUT ROWID""",
]


def create_schema(conn: sqlite3.Connection) -> None:
    """Create the tables if missing and migrate older versions (inside the caller's
    transaction)."""
    fresh = conn.execute(
        "SELECT COUNT(*) FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()[0] == 0
    for stmt in SCHEMA:
        conn.execute(stmt)
    conn.execute("INSERT OR IGNORE INTO meta VALUES ('generation', '0')")
    if fresh:
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)",
                     (str(SCHEMA_VERSION),))
        return
    row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    version = int(row[0]) if row else 1
    if version > SCHEMA_VERSION:
        raise IndexMismatchError(
            f"this index has schema version {version}, newer than this aspectrag "
            f"({SCHEMA_VERSION}); upgrade aspectrag to write into it")
    if version < 2:
        _migrate_1_to_2(conn)


def _migrate_1_to_2(conn: sqlite3.Connection) -> None:
    # two steps, so that no intermediate state collides with the UNIQUE constraint
    conn.execute("UPDATE chunks SET chunk_id = printf('migrating:%d:%s', id, hex(randomblob(8)))")
    conn.execute("UPDATE chunks SET chunk_id = "
                 "(SELECT source FROM documents WHERE documents.id = chunks.doc) || '#' || idx")
    if conn.execute("SELECT value FROM meta WHERE key='spaces'").fetchone() is None:
        specs = inferred_spaces(conn)
        if specs:
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('spaces', ?)",
                         (json.dumps([s.to_dict() for s in specs]),))
    conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', '2')")
    conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='generation'")


def inferred_spaces(conn: sqlite3.Connection) -> list[SpaceSpec]:
    """Spaces of a version-1 index, from the stored vectors of its first chunk (read-only)."""
    row = conn.execute("SELECT chunk FROM vectors LIMIT 1").fetchone()
    if row is None:
        return []
    return [SpaceSpec(r[0], int(r[1]) // 4) for r in conn.execute(
        "SELECT space, length(vec) FROM vectors WHERE chunk=? ORDER BY space", (row[0],))]


def recorded_dtypes(conn: sqlite3.Connection) -> dict[str, str]:
    """``{space: dtype}`` of the spaces not stored as float32 (``meta.vector_dtypes``; {} when
    absent: an index written before dtypes were recorded is float32 throughout)."""
    row = conn.execute("SELECT value FROM meta WHERE key=?", (DTYPES_KEY,)).fetchone()
    return {} if row is None else {str(k): str(v) for k, v in json.loads(row[0]).items()}


def recorded_spaces(conn: sqlite3.Connection) -> list[SpaceSpec] | None:
    """The declared spaces from ``meta.spaces``, or None when not recorded."""
    row = conn.execute("SELECT value FROM meta WHERE key='spaces'").fetchone()
    if row is None:
        return None
    return [SpaceSpec.from_dict(d) for d in json.loads(row[0])]


class SQLiteWriter:
    """Mutations inside one transaction (see :meth:`SQLiteStore.writer`); implements
    :class:`aspectrag.store.base.StoreWriter`. ``head_dtype``: storage dtype of the head
    spaces if this transaction creates the index's spaces (None: the ``store.head_dtype``
    setting); an index whose spaces exist keeps its recorded dtypes."""

    def __init__(self, conn: sqlite3.Connection, location: str,
                 head_dtype: str | None = None) -> None:
        self.conn = conn
        self.location = location
        self.changed = False
        self.head_dtype = head_dtype
        self._dtypes = recorded_dtypes(conn)
        row = conn.execute("SELECT value FROM meta WHERE key='next_chunk_row'").fetchone()
        top = conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM chunks").fetchone()[0]
        self._next_row = max(int(row[0]) if row else 0, int(top))
        recorded = recorded_spaces(conn)
        self._dims: dict[str, int] | None = (
            None if recorded is None else {s.name: s.dim for s in recorded})

    def declare_spaces(self, specs: Sequence[SpaceSpec]) -> None:
        recorded = recorded_spaces(self.conn)
        if recorded is None and self.conn.execute("SELECT 1 FROM vectors LIMIT 1").fetchone():
            recorded = inferred_spaces(self.conn)  # a version-1 index not yet migrated
        if not recorded:
            if specs:
                self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('spaces', ?)",
                                  (json.dumps([s.to_dict() for s in specs]),))
                self._dtypes = new_index_dtypes(
                    [s.name for s in specs if s.kind == "dense"], self.head_dtype)
                if self._dtypes:
                    self.set_meta(DTYPES_KEY, json.dumps(self._dtypes, sort_keys=True))
            self._dims = {s.name: s.dim for s in specs}
            return
        if sorted(recorded, key=lambda s: s.name) != sorted(specs, key=lambda s: s.name):
            raise IndexMismatchError(
                f"index {self.location} holds vector spaces "
                f"{[(s.name, s.dim) for s in recorded]} but the embedder gives "
                f"{[(s.name, s.dim) for s in specs]}; use the embedder that built it, or a new "
                "--index folder")
        self._dims = {s.name: s.dim for s in recorded}

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

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
        self._check_spaces(doc, vectors)
        self.delete(doc.source)
        cur = self.conn.execute(
            "INSERT INTO documents (doc_id, source, title, fingerprint, metadata, sections, "
            "text_length) VALUES (?,?,?,?,?,?,?)",
            (doc.doc_id, doc.source, doc.title, doc.fingerprint, json.dumps(doc.metadata),
             json.dumps([[s.start, s.end, s.page, s.heading] for s in doc.sections]),
             len(doc.text)))
        doc_row = cur.lastrowid
        stored = {space: encode(arr, self._dtypes.get(space, "float32"))
                  for space, arr in vectors.items()}
        for i, ch in enumerate(chunks):
            try:
                self.conn.execute(
                    "INSERT INTO chunks (id, chunk_id, doc, idx, text, start, end, page, "
                    "heading) VALUES (?,?,?,?,?,?,?,?,?)",
                    (self._next_row, ch.chunk_id, doc_row, ch.index, ch.text, ch.start, ch.end,
                     ch.page, ch.heading))
            except sqlite3.IntegrityError:
                raise ValueError(f"{doc.source}: chunk id {ch.chunk_id!r} is already used by "
                                 "another document; chunk ids must be unique "
                                 "(aspectrag.store.base.chunk_key)") from None
            crow, self._next_row = self._next_row, self._next_row + 1
            self.conn.executemany(
                "INSERT INTO vectors (chunk, space, vec) VALUES (?,?,?)",
                [(crow, space, arr[i].tobytes()) for space, arr in stored.items()])
        # chunk row ids only grow, even past deleted ones: derived indexes tell added rows
        # from kept ones by row id (store/segments.py)
        self.set_meta("next_chunk_row", str(self._next_row))
        self.changed = True

    def _check_spaces(self, doc: Document, vectors: Mapping[str, np.ndarray]) -> None:
        if not vectors:
            return
        if self._dims is None:
            # no declaration: an index written before spaces were declared keeps its layout
            self.declare_spaces([SpaceSpec(s, int(v.shape[1])) for s, v in vectors.items()])
        dims = self._dims or {}
        check_vectors(doc.source, self.location, dims, vectors)

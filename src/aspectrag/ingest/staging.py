"""Staging of an ingest on disk, so memory stays bounded whatever the input size.

The pipeline reads and splits every source into a temporary SQLite file (documents and
chunks), embeds the staged chunks in fixed-size batches (vectors written back to the file),
and only then opens the store's write transaction and copies the staged documents in, one
document at a time. The store's write lock is thus held only for that copy, and the process
holds at most one embedding batch or one document's chunks and vectors in memory (the largest
document is bounded by the pipeline's ``max_file_bytes``). The file is not durable
(``journal_mode=OFF``): a killed ingest simply leaves it behind, and the next ingest into the
same index deletes it.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from aspectrag.types import Chunk, Document, Section


class Staging:
    """A temporary staging file in a fresh folder under ``parent`` (None: the system temp
    folder); use as a context manager (the folder is deleted on exit)."""

    def __init__(self, parent: Path | None = None) -> None:
        if parent is not None:
            shutil.rmtree(parent, ignore_errors=True)  # left over by a killed ingest
            parent.mkdir(parents=True, exist_ok=True)
        self.folder = Path(tempfile.mkdtemp(prefix="ingest-", dir=parent))
        self.db = sqlite3.connect(self.folder / "staging.sqlite", isolation_level=None)
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("CREATE TABLE docs (seq INTEGER PRIMARY KEY, doc TEXT NOT NULL, "
                        "is_update INTEGER NOT NULL, first INTEGER NOT NULL, n INTEGER NOT NULL)")
        self.db.execute("CREATE TABLE chunks (seq INTEGER PRIMARY KEY, data TEXT NOT NULL)")
        self.db.execute("CREATE TABLE vecs (chunk INTEGER NOT NULL, space TEXT NOT NULL, "
                        "vec BLOB NOT NULL, PRIMARY KEY (chunk, space)) WITHOUT ROWID")
        self.documents = 0
        self.total_chunks = 0
        self.updates: list[str] = []

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc: object) -> None:
        self.db.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def add(self, doc: Document, chunks: Sequence[Chunk], is_update: bool) -> None:
        """Stage ``doc`` (replacing an indexed version when ``is_update``) and its chunks."""
        first = self.total_chunks
        self.db.execute("BEGIN")
        self.db.execute("INSERT INTO docs VALUES (?,?,?,?,?)", (
            self.documents, json.dumps([doc.doc_id, doc.source, doc.title, doc.text,
                                        [[s.start, s.end, s.page, s.heading] for s in doc.sections],
                                        doc.fingerprint, doc.metadata]),
            int(is_update), first, len(chunks)))
        self.db.executemany("INSERT INTO chunks VALUES (?,?)", [
            (first + i, json.dumps([c.chunk_id, c.doc_id, c.source, c.title, c.index, c.text,
                                    c.start, c.end, c.page, c.heading]))
            for i, c in enumerate(chunks)])
        self.db.execute("COMMIT")
        self.documents += 1
        self.total_chunks += len(chunks)
        if is_update:
            self.updates.append(doc.source)

    def chunk_batches(self, size: int) -> Iterator[tuple[int, list[Chunk]]]:
        """``(first chunk number, chunks)`` in staging order, ``size`` chunks at a time."""
        for start in range(0, self.total_chunks, size):
            rows = self.db.execute("SELECT data FROM chunks WHERE seq >= ? AND seq < ? "
                                   "ORDER BY seq", (start, start + size)).fetchall()
            yield start, [Chunk(*json.loads(r[0])) for r in rows]

    def put_vectors(self, start: int, vectors: Mapping[str, np.ndarray]) -> None:
        """Store an embedder output for chunks ``start, start + 1, ...``."""
        self.db.execute("BEGIN")
        for space, arr in vectors.items():
            a = np.ascontiguousarray(arr, dtype=np.float32)
            self.db.executemany("INSERT INTO vecs VALUES (?,?,?)",
                                [(start + i, space, a[i].tobytes()) for i in range(len(a))])
        self.db.execute("COMMIT")

    def staged(self) -> Iterator[tuple[Document, list[Chunk], dict[str, np.ndarray], bool]]:
        """``(doc, chunks, vectors, is_update)`` per staged document, in staging order."""
        docs = self.db.execute("SELECT seq FROM docs ORDER BY seq").fetchall()
        for (seq,) in docs:
            raw, is_update, first, n = self.db.execute(
                "SELECT doc, is_update, first, n FROM docs WHERE seq=?", (seq,)).fetchone()
            d = json.loads(raw)
            doc = Document(d[0], d[1], d[2], d[3], [Section(*s) for s in d[4]], d[5], d[6])
            chunks = [Chunk(*json.loads(r[0])) for r in self.db.execute(
                "SELECT data FROM chunks WHERE seq >= ? AND seq < ? ORDER BY seq",
                (first, first + n))]
            vectors: dict[str, list[bytes]] = {}
            for space, blob in self.db.execute(
                    "SELECT space, vec FROM vecs WHERE chunk >= ? AND chunk < ? "
                    "ORDER BY space, chunk", (first, first + n)):
                vectors.setdefault(space, []).append(blob)
            arrays = {s: np.frombuffer(b"".join(v), dtype=np.float32).reshape(len(v), -1)
                      for s, v in vectors.items()}
            yield doc, chunks, arrays, bool(is_update)

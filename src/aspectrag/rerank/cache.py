"""On-disk cache of late-interaction token vectors, keyed by chunk id (a side file of the index).

Why a side file and not a ``Store`` vector space: the store's named spaces hold *one* vector per
chunk (``(n_chunks, d)``), token vectors are a variable-length matrix per chunk. The cache is a
SQLite file (stdlib, transactional, incremental) next to the index, typically
``<index folder>/token_vectors.sqlite``, with one float16 blob per chunk. It records the
embedder name and refuses another embedder (``IndexMismatchError``), like the index itself.
A row is used only if the chunk's text hash matches, so a re-ingested, changed chunk is
recomputed, never served stale.

Size: 2 bytes x dim per token (MiniLM: 768 bytes per token, about 190 kB per 250-token chunk).
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from aspectrag.errors import IndexMismatchError
from aspectrag.types import Chunk

log = logging.getLogger("aspectrag.rerank")

CACHE_FILE = "token_vectors.sqlite"


def text_key(chunk: Chunk) -> str:
    """SHA-1 (hex) of the text that is encoded (``chunk.index_text()``)."""
    return hashlib.sha1(chunk.index_text().encode("utf-8")).hexdigest()


class TokenVectorCache:
    """Token vectors per chunk id in a SQLite file.

    Args:
        path: the SQLite file (created if missing; parent folder must exist).
        embedder_name: ``Embedder.name`` of the model producing the vectors.
        dim: vector size.
        config: the encoding options (e.g. ``"skip_punctuation=1"``), part of the identity.

    Raises:
        IndexMismatchError: the file was written by another embedder, dim or config.

    Thread-safe: one connection shared by the threads of a process, each call under a lock
    (a reranker with a cache may serve concurrent searches).
    """

    def __init__(self, path: str | Path, embedder_name: str, dim: int, config: str = "") -> None:
        self.path = Path(path)
        self.dim = dim
        self._db = sqlite3.connect(str(self.path), check_same_thread=False)
        self._lock = threading.Lock()
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS vectors (chunk_id TEXT PRIMARY KEY, text_sha1 TEXT NOT NULL,"
            " n_tokens INTEGER NOT NULL, data BLOB NOT NULL)"
        )
        ident = f"{embedder_name}|dim={dim}|{config}"
        row = self._db.execute("SELECT value FROM meta WHERE key='embedder'").fetchone()
        if row is None:
            with self._db:
                self._db.execute("INSERT INTO meta VALUES ('embedder', ?)", (ident,))
        elif row[0] != ident:
            raise IndexMismatchError(
                f"{self.path}: token vectors were computed with {row[0]!r}, not {ident!r}; "
                "delete the file to rebuild it with the current embedder"
            )
        self._db.commit()

    def get(self, chunks: Sequence[Chunk]) -> dict[str, np.ndarray]:
        """Cached vectors of ``chunks`` whose text is unchanged: chunk id -> float32 (n, dim)."""
        if not chunks:
            return {}
        want = {c.chunk_id: text_key(c) for c in chunks}
        out: dict[str, np.ndarray] = {}
        ids = list(want)
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            q = f"SELECT chunk_id, text_sha1, n_tokens, data FROM vectors WHERE chunk_id IN ({','.join('?' * len(part))})"
            with self._lock:
                rows = self._db.execute(q, part).fetchall()
            for cid, sha, n, data in rows:
                if sha == want[cid]:
                    arr = np.frombuffer(data, dtype=np.float16).reshape(n, self.dim)
                    out[cid] = arr.astype(np.float32)
        return out

    def put(self, items: Iterable[tuple[Chunk, np.ndarray]]) -> int:
        """Store (chunk, float32 (n, dim)) pairs in one transaction (stored as float16);
        replaces older rows of the same chunk id. Returns the number written."""
        rows = [
            (
                c.chunk_id,
                text_key(c),
                int(v.shape[0]),
                np.ascontiguousarray(v, np.float16).tobytes(),
            )
            for c, v in items
        ]
        with self._lock, self._db:
            self._db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?)", rows)
        return len(rows)

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

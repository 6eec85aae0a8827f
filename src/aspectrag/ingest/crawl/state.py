"""Durable crawl state beside the index (``<index>/crawl.sqlite``): the frontier, the visited
set, the pages waiting to be embedded, conditional-GET validators and de-duplication signatures.

Every page's outcome is committed as soon as it is known, so a crawl killed at any point (even
SIGKILL) resumes where it stopped: finished pages are never fetched again, pages fetched but not
yet embedded are embedded from their stored text.

Statuses of a URL row: ``queued`` (to fetch), ``fetched`` (document stored, waiting for the
index), ``indexed``, ``unchanged`` (recrawl: same content), ``skipped`` (reason, maybe
``dup_of``) and ``failed`` (reason).
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from aspectrag.types import Document, Section

_SCHEMA = """
CREATE TABLE IF NOT EXISTS urls (
    key TEXT PRIMARY KEY, url TEXT NOT NULL, depth INTEGER NOT NULL, status TEXT NOT NULL,
    seq INTEGER NOT NULL, gen INTEGER NOT NULL DEFAULT 0, reason TEXT, dup_of TEXT,
    source TEXT, etag TEXT, last_modified TEXT, content_hash TEXT, fetched_at REAL,
    document TEXT);
CREATE INDEX IF NOT EXISTS urls_status ON urls(status, seq);
CREATE TABLE IF NOT EXISTS signatures (
    source TEXT PRIMARY KEY, content_hash TEXT NOT NULL, minhash BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS signatures_hash ON signatures(content_hash);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
FINISHED = ("fetched", "indexed", "unchanged", "skipped", "failed")


@dataclass(slots=True)
class UrlRow:
    """One URL of the crawl (see the module docstring for ``status``)."""

    key: str
    url: str
    depth: int
    status: str
    seq: int = 0
    etag: str | None = None
    last_modified: str | None = None
    content_hash: str | None = None
    source: str | None = None


class CrawlState:
    """The SQLite file holding one index's crawl state (WAL, one writer: the crawling process).

    Args:
        path: the ``crawl.sqlite`` file (its folder is created).
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        self._seq = self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM urls").fetchone()[0]

    def close(self) -> None:
        self.db.close()

    # -- meta -------------------------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    @property
    def generation(self) -> int:
        """Crawl generation: a fresh crawl or ``--recrawl`` starts a new one, a resume does not."""
        return int(self.get_meta("generation", "0") or 0)

    def new_generation(self) -> int:
        gen = self.generation + 1
        self.set_meta("generation", str(gen))
        return gen

    # -- frontier ---------------------------------------------------------------------------
    def status(self, key: str) -> tuple[str, str, str] | None:
        """``(status, url, source_or_url)`` of ``key``, or None if never seen."""
        row = self.db.execute("SELECT status, url, COALESCE(source, url) FROM urls WHERE key = ?",
                              (key,)).fetchone()
        return (row[0], row[1], row[2]) if row else None

    def finished_keys(self) -> set[str]:
        """Keys of pages holding a document (fetched, indexed, unchanged)."""
        return {k for (k,) in self.db.execute(
            "SELECT key FROM urls WHERE status IN ('fetched', 'indexed', 'unchanged')")}

    def owner(self, source: str) -> str | None:
        """Key of the page already holding document ``source`` (fetched, indexed or unchanged)."""
        row = self.db.execute("SELECT key FROM urls WHERE source = ? AND status IN "
                              "('fetched', 'indexed', 'unchanged') LIMIT 1", (source,)).fetchone()
        return row[0] if row else None

    def add(self, key: str, url: str, depth: int, status: str = "queued",
            reason: str | None = None, dup_of: str | None = None) -> bool:
        """Record a new URL; returns False (and changes nothing) when ``key`` is known."""
        self._seq += 1
        cur = self.db.execute(
            "INSERT OR IGNORE INTO urls (key, url, depth, status, seq, gen, reason, dup_of) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (key, url, depth, status, self._seq, self.generation, reason, dup_of))
        return cur.rowcount == 1

    def queued(self) -> list[UrlRow]:
        """URLs still to fetch, in discovery order."""
        rows = self.db.execute(
            "SELECT key, url, depth, status, seq, etag, last_modified, content_hash, source "
            "FROM urls WHERE status = 'queued' ORDER BY seq").fetchall()
        return [UrlRow(*r) for r in rows]

    def fetched_this_generation(self) -> int:
        """Pages requested in the current generation (the page budget counts these)."""
        return self.db.execute("SELECT COUNT(*) FROM urls WHERE gen = ? AND fetched_at IS NOT "
                               "NULL", (self.generation,)).fetchone()[0]

    def pages_of_host(self, host_prefix: str) -> int:
        """Pages fetched from one ``scheme://host[:port]/`` in the current generation."""
        return self.db.execute(
            "SELECT COUNT(*) FROM urls WHERE gen = ? AND fetched_at IS NOT NULL AND key LIKE ? "
            "ESCAPE '\\'", (self.generation, _like_prefix(host_prefix))).fetchone()[0]

    def finish(self, key: str, status: str, *, reason: str | None = None,
               dup_of: str | None = None, fetched: bool = True, source: str | None = None,
               etag: str | None = None, last_modified: str | None = None,
               content_hash: str | None = None, document: Document | None = None) -> None:
        """Record the outcome of fetching ``key`` (validators and hash kept when not given)."""
        self.db.execute(
            "UPDATE urls SET status = ?, reason = ?, dup_of = ?, gen = ?, "
            "fetched_at = CASE WHEN ? THEN ? ELSE fetched_at END, "
            "source = COALESCE(?, source), etag = COALESCE(?, etag), "
            "last_modified = COALESCE(?, last_modified), "
            "content_hash = COALESCE(?, content_hash), document = ? WHERE key = ?",
            (status, reason, dup_of, self.generation, fetched, time.time(), source, etag,
             last_modified, content_hash, _dump(document) if document else None, key))

    def requeue_for_recrawl(self) -> int:
        """Queue every indexed / unchanged / failed page again (validators kept); returns how
        many."""
        cur = self.db.execute(
            "UPDATE urls SET status = 'queued', reason = NULL, gen = ?, fetched_at = NULL "
            "WHERE status IN ('indexed', 'unchanged', 'failed')", (self.generation,))
        return cur.rowcount

    # -- pages waiting for the index --------------------------------------------------------
    def pending_documents(self) -> list[tuple[str, Document]]:
        """``(key, document)`` of pages fetched but not yet written to the index."""
        rows = self.db.execute("SELECT key, document FROM urls WHERE status = 'fetched' "
                               "ORDER BY seq").fetchall()
        return [(k, _load(d)) for k, d in rows]

    def mark_indexed(self, keys: list[str]) -> None:
        with self.db:
            self.db.executemany("UPDATE urls SET status = 'indexed', document = NULL "
                                "WHERE key = ?", [(k,) for k in keys])

    # -- de-duplication signatures ----------------------------------------------------------
    def signatures(self) -> list[tuple[str, str, bytes]]:
        """``(source, content_hash, minhash_bytes)`` of every page kept so far."""
        return list(self.db.execute("SELECT source, content_hash, minhash FROM signatures"))

    def put_signature(self, source: str, content_hash: str, minhash: bytes) -> None:
        self.db.execute("INSERT OR REPLACE INTO signatures VALUES (?, ?, ?)",
                        (source, content_hash, minhash))

    def drop_signatures(self, sources: list[str]) -> None:
        with self.db:
            self.db.executemany("DELETE FROM signatures WHERE source = ?",
                                [(x,) for x in sources])

    def crawled_sources(self) -> set[str]:
        """Document sources of pages fetched by a crawl (any status holding a document)."""
        return {x for (x,) in self.db.execute(
            "SELECT source FROM urls WHERE source IS NOT NULL AND status IN "
            "('fetched', 'indexed', 'unchanged', 'queued')")}

    def counts(self) -> dict[str, int]:
        """Rows by status."""
        return dict(self.db.execute("SELECT status, COUNT(*) FROM urls GROUP BY status"))


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _dump(doc: Document) -> str:
    return json.dumps(asdict(doc), ensure_ascii=False)


def _load(raw: str) -> Document:
    d = json.loads(raw)
    d["sections"] = [Section(**s) for s in d.get("sections", [])]
    return Document(**d)

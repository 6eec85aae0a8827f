"""Durable ingest jobs and the one writer thread that runs them.

Jobs live in ``<state_dir>/jobs.sqlite`` (WAL), so every server process (``--workers N``) sees
every job. Each process runs one :class:`JobRunner` thread; a queued job is *claimed* in a
``BEGIN IMMEDIATE`` transaction, so exactly one process runs it, and the index's own writer
lock (``Index.ingest``) keeps two writers from overlapping. Searches never touch this table.

A job whose process died (SIGKILL, crash) is marked ``failed`` by the next runner that sees
it: its owner pid is gone, or it belongs to this pid but an earlier boot, or its heartbeat is
older than ``stale_after`` seconds. The ingest itself is one transaction, so a killed job
leaves the index exactly as before it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("aspectrag.service")

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    payload TEXT NOT NULL,
    progress TEXT NOT NULL DEFAULT '{}',
    result TEXT,
    error TEXT,
    owner_pid INTEGER,
    owner_boot TEXT,
    heartbeat REAL,
    created REAL NOT NULL,
    started REAL,
    finished REAL
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, created);
"""

INTERRUPTED = ("interrupted: the server stopped while this job ran; nothing of it was committed "
               "unless its documents are listed in GET /v1/documents; submit it again "
               "(unchanged documents are skipped)")

#: Identifies this process's lifetime (a restarted server with a reused pid has another).
BOOT = uuid.uuid4().hex

#: Runs one job: (kind, payload, report_progress) -> result dict.
JobHandler = Callable[[str, dict[str, Any], Callable[[dict[str, Any]], None]], dict[str, Any]]


def _wal(c: sqlite3.Connection, timeout: float = 30.0) -> None:
    """Switch ``c``'s database to WAL, retrying "database is locked" for up to ``timeout`` s.

    SQLite answers a journal-mode change while another connection holds a write lock on the
    file (e.g. creating the schema of the new table) with SQLITE_BUSY at once, without its
    busy handler: 3 ``serve`` worker processes opening a new job table together failed so in
    4 of 15 trials (session 16; one worker of a ``--workers 2`` benchmark run died of it at
    start-up)."""
    end = time.monotonic() + timeout
    while True:
        try:
            c.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) and "busy" not in str(e) or time.monotonic() > end:
                raise
            time.sleep(0.02)


class JobStore:
    """The job table (one SQLite file); safe from any thread or process."""

    def __init__(self, state_dir: str | Path) -> None:
        self.dir = Path(state_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / "jobs.sqlite"
        self._local = threading.local()
        self.boot = BOOT
        self._conn().executescript(SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        c = getattr(self._local, "conn", None)
        if c is None:
            c = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                check_same_thread=False)
            _wal(c)
            c.execute("PRAGMA synchronous=NORMAL")
            c.row_factory = sqlite3.Row
            self._local.conn = c
        return c

    def submit(self, kind: str, payload: dict[str, Any]) -> str:
        """Queue a job; returns its id."""
        job_id = uuid.uuid4().hex[:16]
        self._conn().execute(
            "INSERT INTO jobs (id, kind, status, payload, created) VALUES (?, ?, 'queued', ?, ?)",
            (job_id, kind, json.dumps(payload), time.time()))
        return job_id

    def get(self, job_id: str) -> dict[str, Any] | None:
        """The job as JSON (``id, kind, status, progress, result, error, created, started,
        finished``), or None."""
        row = self._conn().execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        return None if row is None else _job_json(row)

    def counts(self) -> dict[str, int]:
        """Number of jobs by status."""
        return {r[0]: r[1] for r in
                self._conn().execute("SELECT status, COUNT(*) FROM jobs GROUP BY status")}

    def claim(self) -> tuple[str, str, dict[str, Any]] | None:
        """Take the oldest queued job for this process: ``(id, kind, payload)`` or None."""
        c = self._conn()
        c.execute("BEGIN IMMEDIATE")
        try:
            row = c.execute("SELECT id, kind, payload FROM jobs WHERE status='queued' "
                            "ORDER BY created LIMIT 1").fetchone()
            if row is not None:
                now = time.time()
                c.execute("UPDATE jobs SET status='running', owner_pid=?, owner_boot=?, "
                          "heartbeat=?, started=? WHERE id=?",
                          (os.getpid(), self.boot, now, now, row[0]))
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        return None if row is None else (row[0], row[1], json.loads(row[2]))

    def progress(self, job_id: str, progress: dict[str, Any]) -> None:
        """Record progress (and a heartbeat) of a running job."""
        self._conn().execute("UPDATE jobs SET progress=?, heartbeat=? WHERE id=?",
                             (json.dumps(progress), time.time(), job_id))

    def heartbeat(self) -> None:
        """Mark every job this process runs as alive."""
        self._conn().execute("UPDATE jobs SET heartbeat=? WHERE status='running' AND owner_pid=? "
                             "AND owner_boot=?", (time.time(), os.getpid(), self.boot))

    def finish(self, job_id: str, result: dict[str, Any] | None, error: str | None) -> None:
        """Mark a job succeeded (``error`` None) or failed."""
        self._conn().execute(
            "UPDATE jobs SET status=?, result=?, error=?, finished=? WHERE id=?",
            ("failed" if error else "succeeded", json.dumps(result) if result is not None else None,
             error, time.time(), job_id))

    def reap(self, stale_after: float = 60.0) -> int:
        """Fail running jobs whose process is gone; returns how many."""
        c = self._conn()
        rows = c.execute("SELECT id, owner_pid, owner_boot, heartbeat FROM jobs "
                         "WHERE status='running'").fetchall()
        dead = [r["id"] for r in rows if _dead(r, self.boot, stale_after)]
        for job_id in dead:
            c.execute("UPDATE jobs SET status='failed', error=?, finished=? "
                      "WHERE id=? AND status='running'", (INTERRUPTED, time.time(), job_id))
        if dead:
            log.warning("marked %d interrupted job(s) as failed", len(dead))
        return len(dead)

    def prune(self, older_than_s: float) -> int:
        """Delete finished (succeeded or failed) jobs that finished more than ``older_than_s``
        seconds ago; returns how many. Queued and running jobs are never deleted."""
        cur = self._conn().execute(
            "DELETE FROM jobs WHERE status IN ('succeeded', 'failed') AND finished < ?",
            (time.time() - older_than_s,))
        return cur.rowcount

    def wait(self, job_id: str, timeout: float) -> dict[str, Any] | None:
        """Poll until the job is finished or ``timeout`` seconds pass; the job."""
        end = time.monotonic() + timeout
        while True:
            job = self.get(job_id)
            if job is None or job["status"] in ("succeeded", "failed") or time.monotonic() > end:
                return job
            time.sleep(0.05)


def _dead(row: sqlite3.Row, boot: str, stale_after: float) -> bool:
    pid = row["owner_pid"]
    if pid == os.getpid():
        return row["owner_boot"] != boot
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    return (row["heartbeat"] or 0) < time.time() - stale_after


def _job_json(row: sqlite3.Row) -> dict[str, Any]:
    return {"id": row["id"], "kind": row["kind"], "status": row["status"],
            "progress": json.loads(row["progress"] or "{}"),
            "result": json.loads(row["result"]) if row["result"] else None,
            "error": row["error"], "created": row["created"], "started": row["started"],
            "finished": row["finished"]}


class JobRunner(threading.Thread):
    """The writer thread of one server process: claims queued jobs one at a time and runs
    them with ``handler``; marks interrupted jobs of dead processes as failed.

    Args:
        jobs: the job table.
        handler: runs one job (see ``JobHandler``); raising fails the job with the message.
        poll: seconds between looks at the table when idle (``notify`` wakes it at once).
        retention_s: finished jobs older than this many seconds are deleted (looked at once a
            minute while idle).
        nice: nice increment of this thread (Linux schedules threads by their own nice; None:
            unchanged), so the job's own Python work (loading, splitting, writing) yields the
            cores to the search threads.
        switch_interval: seconds, ``sys.setswitchinterval`` while a job runs (restored after):
            a search thread waiting for the GIL held by the writer waits at most about this
            long (Python's default is 5 ms, ten 0.5 ms BM25 searches). In
            ``benchmarks/service_load.py`` during a 500-document ingest, 1 client, bm25 p99:
            7.8 ms (idle 3.0) with the child process alone, 5.4 ms (idle 2.1) with this at 1 ms
            and the thread at nice +10 (two runs, not interleaved).
    """

    def __init__(self, jobs: JobStore, handler: JobHandler, *, poll: float = 0.5,
                 retention_s: float = 7 * 86400.0, nice: int | None = None,
                 switch_interval: float | None = None) -> None:
        super().__init__(name="aspectrag-writer", daemon=True)
        self.jobs, self.handler, self.poll = jobs, handler, poll
        self.retention_s = retention_s
        self.nice, self.switch_interval = nice, switch_interval
        self._pruned = 0.0
        self._wake = threading.Event()
        self._halt = threading.Event()
        self._hb_stop = threading.Event()

    def notify(self) -> None:
        """A job was queued: look now."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the current job (jobs still queued stay queued)."""
        self._halt.set()
        self._wake.set()
        self.join(timeout)

    def run(self) -> None:
        if self.nice and hasattr(os, "setpriority"):
            try:  # Linux: a thread id is a PRIO_PROCESS target of its own
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(),
                               os.getpriority(os.PRIO_PROCESS, 0) + self.nice)
            except OSError as e:
                log.info("writer thread priority unchanged: %s", e)
        hb = threading.Thread(target=self._heartbeats, daemon=True, name="aspectrag-heartbeat")
        hb.start()
        try:
            while not self._halt.is_set():
                try:
                    self.jobs.reap()
                    claimed = self.jobs.claim()
                except sqlite3.Error as e:  # a busy job table: try again later
                    log.warning("job table: %s", e)
                    claimed = None
                if claimed is None:
                    self._prune()
                    self._wake.wait(self.poll)
                    self._wake.clear()
                    continue
                self._run_one(*claimed)
        finally:
            self._hb_stop.set()

    def _prune(self) -> None:
        now = time.monotonic()
        if now - self._pruned < 60.0:
            return
        self._pruned = now
        try:
            if n := self.jobs.prune(self.retention_s):
                log.info("deleted %d finished job(s) older than %g s", n, self.retention_s)
        except sqlite3.Error as e:
            log.warning("job table: %s", e)

    def _run_one(self, job_id: str, kind: str, payload: dict[str, Any]) -> None:
        last = [0.0]

        def report(progress: dict[str, Any]) -> None:
            now = time.monotonic()
            if now - last[0] >= 0.2 or progress.get("final"):
                last[0] = now
                self.jobs.progress(job_id, progress)

        interval = sys.getswitchinterval()
        if self.switch_interval is not None:
            sys.setswitchinterval(self.switch_interval)
        try:
            result = self.handler(kind, payload, report)
        except Exception as e:  # the job fails with a one-line reason; the server goes on
            log.warning("job %s failed: %s", job_id, e)
            msg = str(e) if _is_user_error(e) else f"internal error ({type(e).__name__}); see the server log"
            if not _is_user_error(e):
                log.exception("job %s", job_id)
            self.jobs.finish(job_id, None, msg)
        else:
            self.jobs.finish(job_id, result, None)
        finally:
            sys.setswitchinterval(interval)
            incoming = payload.get("incoming")
            if incoming:
                shutil.rmtree(incoming, ignore_errors=True)

    def _heartbeats(self) -> None:
        while not self._hb_stop.wait(2.0):
            try:
                self.jobs.heartbeat()
            except sqlite3.Error:
                pass


def _is_user_error(e: Exception) -> bool:
    from aspectrag.errors import AspectragError

    return isinstance(e, AspectragError | ValueError)

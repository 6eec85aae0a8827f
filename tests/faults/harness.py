"""Fault-injection harness (issue 17 item 9, after SQLite's own crash and I/O-error tests):
a small corpus in two versions, index state snapshots, injection hooks (test-only monkeypatches:
nothing in ``src`` reads an environment variable or knows about them), and the trial runners
shared by ``tests/faults`` (few trials) and ``benchmarks/faults.py`` (many).

Injection points, counted in the process doing the ingest:
    ``stmt:N``  SIGKILL when the N-th SQL statement starts (sqlite3 trace callback): inside
                the write transaction, at ``COMMIT``, after it (derived-index rebuild);
    ``fs:N``    SIGKILL before the N-th ``os.replace``/``os.rename`` (derived-index saves);
    ``time:S``  SIGKILL S seconds after the ingest started (anywhere, embedding included).
I/O errors:
    ``fsize:B`` the child's files may not grow past B bytes (``RLIMIT_FSIZE``, SIGXFSZ
                ignored: writes fail with EFBIG like a full disk);
    ``deny:N``  every SQL write after the N-th is refused (sqlite3 authorizer; statement cache
                off so each execution is authorised).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("child.py")

_TOPICS = {
    "enzymes": "Enzymes are biological catalysts. They speed up chemical reactions in cells "
               "without being consumed, and each enzyme binds a specific substrate.",
    "rome": "The Roman Republic was governed by two consuls elected every year. The senate "
            "advised the consuls and controlled the treasury.",
    "volcano": "A volcano is a rupture in the crust of a planet. Lava, ash and gases escape "
               "from a magma chamber below the surface.",
    "bees": "Honey bees live in colonies with one queen. Worker bees collect nectar and pollen "
            "and communicate with a waggle dance.",
    "chess": "Chess is a board game for two players. Each player begins with sixteen pieces "
             "and the goal is to checkmate the opponent's king.",
}
QUERIES = ["enzymes catalysts", "consuls senate", "magma lava", "queen bees dance",
           "checkmate king", "reactions in cells"]


def write_corpus(folder: Path, version: int) -> Path:
    """Version 0: three files; version 1: one changed, one added (an update and an add)."""
    folder.mkdir(parents=True, exist_ok=True)
    names = ["enzymes", "rome", "volcano"] + (["bees", "chess"] if version else [])
    for name in names:
        body = "\n\n".join(f"{_TOPICS[name]} (Part {i}.)" for i in range(6))
        if version and name == "rome":
            body += "\n\nLater the republic became an empire under Augustus."
        (folder / f"{name}.txt").write_text(body + "\n")
    return folder


# ---------------------------------------------------------------------------- state
@dataclass
class State:
    """What an index holds: sources with fingerprints, chunks, vectors per space."""

    sources: list[tuple[str, str]]
    chunks: list[tuple[str, str, int, int]]  # (chunk_id, text, start, end), sorted
    vectors: dict[str, np.ndarray] = field(default_factory=dict)  # space -> (n, d), chunk order

    def same(self, other: State, atol: float = 1e-4) -> bool:
        if self.sources != other.sources or self.chunks != other.chunks:
            return False
        if set(self.vectors) != set(other.vectors):
            return False
        return all(self.vectors[s].shape == other.vectors[s].shape
                   and np.allclose(self.vectors[s], other.vectors[s], atol=atol)
                   for s in self.vectors)

    def digest(self) -> str:
        h = hashlib.sha256(json.dumps([self.sources, self.chunks]).encode())
        for s in sorted(self.vectors):
            h.update(np.round(self.vectors[s], 3).tobytes())
        return h.hexdigest()[:12]


def integrity(index: Path) -> str:
    """``PRAGMA integrity_check`` of the index's SQLite file ("ok" when sound)."""
    conn = sqlite3.connect(index / "index.sqlite", timeout=5)
    try:
        return "; ".join(r[0] for r in conn.execute("PRAGMA integrity_check"))
    finally:
        conn.close()


def snapshot(index: Path) -> State:
    """The index's state read through the Store API (so it survives store refactors)."""
    from aspectrag.store.factory import build_store

    store = build_store(index)
    try:
        src = [(s, store.fingerprint(s) or "") for s in store.sources()]
        chunks = sorted((c.chunk_id, c.text, c.start, c.end) for c in store.iter_chunks())
        ids = [c[0] for c in chunks]
        vecs = {s: np.asarray(store.get_vectors(s, ids)) for s in store.vector_spaces()} if ids else {}
        return State(sorted(src), chunks, vecs)
    finally:
        close = getattr(store, "close", None)
        if callable(close):
            close()


# ---------------------------------------------------------------------------- hooks
@dataclass
class Counter:
    """Counts injection-point events; ``kill_at`` = (kind, n) SIGKILLs at the n-th event."""

    active: bool = False
    stmt: int = 0
    fs: int = 0
    kill_at: tuple[str, int] | None = None
    deny_after: int | None = None
    writes: int = 0

    def event(self, kind: str) -> None:
        if not self.active:
            return
        if kind == "stmt":
            self.stmt += 1
            n = self.stmt
        else:
            self.fs += 1
            n = self.fs
        if self.kill_at == (kind, n):
            os.kill(os.getpid(), signal.SIGKILL)


_WRITE_ACTIONS = {sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE,
                  sqlite3.SQLITE_CREATE_TABLE, sqlite3.SQLITE_CREATE_INDEX,
                  sqlite3.SQLITE_DROP_TABLE}


@contextmanager
def hooks(counter: Counter, *, max_timeout: float | None = None) -> Iterator[Counter]:
    """Patch ``sqlite3.connect`` (trace callback, optional authorizer, capped busy timeout)
    and ``os.replace``/``os.rename`` to report to ``counter``; undone on exit."""
    real_connect, real_replace, real_rename = sqlite3.connect, os.replace, os.rename

    def connect(*args: Any, **kw: Any) -> sqlite3.Connection:
        if max_timeout is not None:
            kw["timeout"] = min(float(kw.get("timeout", 5.0)), max_timeout)
        if counter.deny_after is not None:
            kw["cached_statements"] = 0
        conn = real_connect(*args, **kw)
        conn.set_trace_callback(lambda sql: counter.event("stmt"))
        if counter.deny_after is not None:
            def authorize(action: int, *rest: Any) -> int:
                if counter.active and action in _WRITE_ACTIONS:
                    counter.writes += 1
                    if counter.writes > counter.deny_after:  # type: ignore[operator]
                        return sqlite3.SQLITE_DENY
                return sqlite3.SQLITE_OK
            conn.set_authorizer(authorize)
        return conn

    def replace(*args: Any, **kw: Any) -> None:
        counter.event("fs")
        real_replace(*args, **kw)

    def rename(*args: Any, **kw: Any) -> None:
        counter.event("fs")
        real_rename(*args, **kw)

    sqlite3.connect, os.replace, os.rename = connect, replace, rename  # type: ignore[assignment]
    try:
        yield counter
    finally:
        sqlite3.connect, os.replace, os.rename = real_connect, real_replace, real_rename


# ---------------------------------------------------------------------------- children
def child_env() -> dict[str, str]:
    """The environment of a child: this process's ``aspectrag`` (its PYTHONPATH first) and the
    repository root (for ``tests.*``)."""
    import aspectrag

    env = dict(os.environ)
    src = str(Path(aspectrag.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([src, str(ROOT)])
    return env


def run_child(args: list[str], *, kill_after: float | None = None,
              timeout: float = 300) -> tuple[int, str, str]:
    """Run ``child.py args``; with ``kill_after``, SIGKILL it that many seconds after it prints
    READY (its model is loaded and the ingest starts). Returns (returncode, stdout, stderr)."""
    p = subprocess.Popen([sys.executable, str(CHILD), *args], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=child_env(), cwd=ROOT)
    try:
        if kill_after is not None:
            assert p.stdout is not None
            line = p.stdout.readline()
            if line.strip() == "READY":
                time.sleep(kill_after)
                if p.poll() is None:
                    p.send_signal(signal.SIGKILL)
        out, err = p.communicate(timeout=timeout)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    return p.returncode, out, err


# ---------------------------------------------------------------------------- crash trials
@dataclass
class CrashSetup:
    """A before index (corpus v0 ingested), the v1 corpus and the reference after state."""

    root: Path
    before_index: Path
    corpus: Path
    before: State
    after: State
    statements: int  # SQL statements the reference ingest of v1 ran
    fs_ops: int  # os.replace / os.rename calls it made
    seconds: float  # its wall time


def crash_setup(root: Path, embedder: Any) -> CrashSetup:
    """Build the before index and the reference after state in-process with ``embedder``
    (the bundled MiniLM: the children load the same model)."""
    from aspectrag.index import Index

    corpus = root / "corpus"
    write_corpus(corpus, 0)
    before_index = root / "before"
    Index(before_index, embedder=embedder).ingest([corpus])
    before = snapshot(before_index)
    write_corpus(corpus, 1)
    ref = root / "reference"
    shutil.copytree(before_index, ref)
    idx = Index(ref, embedder=embedder)
    with hooks(Counter()) as c:
        c.active = True
        t0 = time.perf_counter()
        idx.ingest([corpus])
        seconds = time.perf_counter() - t0
        c.active = False
    after = snapshot(ref)
    assert not after.same(before)
    return CrashSetup(root, before_index, corpus, before, after, c.stmt, c.fs, seconds)


@dataclass
class TrialResult:
    point: str
    killed: bool
    outcome: str  # "before" | "after" | a failure description
    integrity: str
    recovered: bool  # a re-run of the ingest (no fault) reached the after state

    @property
    def ok(self) -> bool:
        return self.outcome in ("before", "after") and self.integrity == "ok" and self.recovered


def crash_trial(setup: CrashSetup, point: str, n: int, embedder: Any) -> TrialResult:
    """Copy the before index, run a child ingest of v1 killed at ``point`` and check the index:
    integrity, exactly the before or the after state, searchable, and a re-run completes."""
    from aspectrag.index import Index

    trial = setup.root / f"trial-{n}"
    if trial.exists():
        shutil.rmtree(trial)
    shutil.copytree(setup.before_index, trial)
    kind, _, value = point.partition(":")
    args = ["ingest", str(trial), str(setup.corpus), "--embedder", "bundled"]
    if kind == "time":
        rc, _, err = run_child(args, kill_after=float(value))
    else:
        rc, _, err = run_child([*args, "--kill-at", point])
    killed = rc == -signal.SIGKILL
    if not killed and rc != 0:
        return TrialResult(point, killed, f"child failed rc={rc}: {err.strip()[-300:]}", "", False)
    check = integrity(trial)
    state = snapshot(trial)
    outcome = ("before" if state.same(setup.before) else "after" if state.same(setup.after)
               else f"neither before nor after ({len(state.chunks)} chunks)")
    idx = Index(trial, embedder=embedder)
    known = {c[0] for c in state.chunks}
    for retriever in ("bm25", "dense"):
        hits = idx.search(QUERIES[0], k=3, retriever=retriever)
        if not hits or any(h.chunk.chunk_id not in known for h in hits):
            outcome = f"{retriever} search served chunks outside the recovered state"
    idx.ingest([setup.corpus])
    recovered = snapshot(trial).same(setup.after) and integrity(trial) == "ok"
    shutil.rmtree(trial)
    return TrialResult(point, killed, outcome, check, recovered)


def crash_points(setup: CrashSetup, trials: int, rng: np.random.Generator) -> list[str]:
    """Kill points: half at SQL statements (spread over 1..S, the first and the last
    included), a fifth at derived-index file renames, the rest at random times."""
    points: list[str] = []
    n_fs = max(1, trials // 5) if setup.fs_ops else 0
    n_time = max(1, trials // 4) if trials >= 4 else 0
    n_stmt = trials - n_fs - n_time
    stmts = np.unique(np.linspace(1, setup.statements, max(n_stmt, 1)).round().astype(int))
    extra = rng.integers(1, setup.statements + 1, size=n_stmt - len(stmts))
    points += [f"stmt:{int(s)}" for s in [*stmts, *extra]][:n_stmt]
    points += [f"fs:{int(rng.integers(1, setup.fs_ops + 1))}" for _ in range(n_fs)]
    points += [f"time:{rng.uniform(0, 1.5 * setup.seconds + 0.5):.3f}" for _ in range(n_time)]
    return points


# ---------------------------------------------------------------------------- I/O errors
@dataclass
class IOSetup:
    root: Path
    before_index: Path
    corpus: Path
    before: State
    after: State


def io_setup(root: Path) -> IOSetup:
    """Before index and after state with the hashing test embedder (fast children)."""
    from tests.fakes import HashEmbedder

    from aspectrag.index import Index

    corpus = root / "corpus"
    write_corpus(corpus, 0)
    before_index = root / "before"
    Index(before_index, embedder=HashEmbedder()).ingest([corpus])
    before = snapshot(before_index)
    write_corpus(corpus, 1)
    ref = root / "reference"
    shutil.copytree(before_index, ref)
    Index(ref, embedder=HashEmbedder()).ingest([corpus])
    return IOSetup(root, before_index, corpus, before, snapshot(ref))


@dataclass
class IOResult:
    fault: str
    exit_code: int
    outcome: str
    integrity: str
    error_lines: list[str]
    traceback: bool

    @property
    def ok(self) -> bool:
        if self.traceback or self.integrity != "ok":
            return False
        if self.exit_code == 0:  # the fault never fired: a complete ingest
            return self.outcome == "after"
        return (self.exit_code in (1, 2) and self.outcome == "before"
                and len(self.error_lines) == 1)


def io_trial(setup: IOSetup, fault: str, n: int) -> IOResult:
    """``aspectrag ingest`` of v1 (CLI, in a child, hashing embedder) under ``fault``
    (``fsize:B`` or ``deny:N``): one error line, exit 1/2, no traceback, the before state."""
    trial = setup.root / f"io-{n}"
    if trial.exists():
        shutil.rmtree(trial)
    shutil.copytree(setup.before_index, trial)
    rc, out, err = run_child(["cli", str(trial), str(setup.corpus), "--fault", fault],
                             timeout=120)
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    check = integrity(trial)
    state = snapshot(trial)
    outcome = ("before" if state.same(setup.before) else "after" if state.same(setup.after)
               else "neither")
    shutil.rmtree(trial)
    return IOResult(fault, rc, outcome, check, lines, "Traceback" in err)


# ---------------------------------------------------------------------------- concurrency
def expected_results(index: Path, embedder_factory: Callable[[], Any],
                     k: int = 3) -> dict[tuple[str, str], list[tuple[str, float]]]:
    """(retriever, query) -> [(chunk_id, score rounded)] on ``index``."""
    from aspectrag.index import Index

    idx = Index(index, embedder=embedder_factory())
    return {(r, q): result_key(idx.search(q, k=k, retriever=r))
            for r in ("bm25", "dense") for q in QUERIES}


def result_key(hits: list[Any]) -> list[tuple[str, float]]:
    return [(h.chunk.chunk_id, round(float(h.score), 4)) for h in hits]


@dataclass
class ConcurrencyResult:
    reads: int = 0
    errors: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    saw: set[str] = field(default_factory=set)  # "before" / "after" results observed
    writer_rc: int | None = None
    writer_err: str = ""
    writer_seconds: float | None = None  # READY -> exit of the writer, if inside the window

    def percentiles(self) -> tuple[float, float]:
        if not self.latencies:
            return float("nan"), float("nan")
        a = np.asarray(self.latencies) * 1000
        return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def read_load(index: Path, before: dict[Any, Any], after: dict[Any, Any] | None, *,
              readers: int, seconds: float, writer: list[str] | None = None,
              busy_timeout: float = 2.0, tail: float = 0.5) -> ConcurrencyResult:
    """``readers`` threads search ``index`` (even threads reopen the index for every query
    like separate CLI runs, odd ones keep one open like a server) while ``writer`` (child.py
    arguments) runs an ingest, until ``tail`` s after the writer exits or ``seconds`` s at
    most; every result must equal the before or the after one. SQLite's busy timeout is
    capped at ``busy_timeout`` s so a blocked reader fails fast instead of after 60 s."""
    import threading

    from tests.fakes import HashEmbedder

    from aspectrag.index import Index

    res = ConcurrencyResult()
    lock = threading.Lock()
    stop = 0.0
    keys = list(before)

    def reader(i: int) -> None:
        idx = Index(index, embedder=HashEmbedder())
        j = i
        while time.monotonic() < stop:
            key = keys[j % len(keys)]
            j += 1
            t0 = time.perf_counter()
            try:
                if i % 2 == 0:
                    idx = Index(index, embedder=HashEmbedder())
                got = result_key(idx.search(key[1], k=3, retriever=key[0]))
            except Exception as e:  # noqa: BLE001 - every reader error is recorded
                import traceback

                where = traceback.extract_tb(e.__traceback__)[-3:]
                with lock:
                    res.errors.append(f"{type(e).__name__}: {e} at " + " < ".join(
                        f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(where)))
                continue
            dt = time.perf_counter() - t0
            with lock:
                res.reads += 1
                res.latencies.append(dt)
                if got == before[key]:
                    res.saw.add("before")
                elif after is not None and got == after[key]:
                    res.saw.add("after")
                else:
                    res.mismatches.append(f"{key}: {got}")

    # Warm up in this thread: CPython 3.11's compiler is not thread-safe ("SystemError: AST
    # constructor recursion depth mismatch" when threads first import / build dataclasses at
    # once), so the first search of each kind runs before the readers start.
    warm = Index(index, embedder=HashEmbedder())
    for r in ("bm25", "dense"):
        warm.search(QUERIES[0], k=1, retriever=r)
    proc = None
    start = time.monotonic()
    stop = start + seconds
    if writer is not None:
        errfile = tempfile.TemporaryFile(mode="w+")
        proc = subprocess.Popen([sys.executable, str(CHILD), *writer], env=child_env(),
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=errfile, text=True)
        assert proc.stdout is not None
        proc.stdout.readline()  # READY: the writer is about to ingest
        start = time.monotonic()
        stop = start + seconds  # the readers' window starts with the ingest

        def watch() -> None:
            nonlocal stop
            assert proc is not None and proc.stdout is not None
            proc.stdout.read()
            proc.wait()
            end = time.monotonic()
            if end < stop:
                res.writer_seconds = end - start
                stop = min(stop, end + tail)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
    with hooks(Counter(), max_timeout=busy_timeout):
        threads = [threading.Thread(target=reader, args=(i,)) for i in range(readers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    if proc is not None:
        watcher.join(timeout=120)
        errfile.seek(0)
        res.writer_rc, res.writer_err = proc.returncode, errfile.read()
        errfile.close()
    return res

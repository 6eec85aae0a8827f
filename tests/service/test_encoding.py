"""The server's model work (``ModelThreads``): on a few long-lived threads, and one at a time
across server processes (``serve --workers N``, a flock); the engine's use of it (model-using
searches and extractive answers go there and wait for the lock; BM25 and ingests do not)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from aspectrag.index import Index
from aspectrag.service.encoding import ModelThreads
from aspectrag.service.engine import Engine, SearchSpec

from .conftest import write_docs

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX")

SRC = str(Path(__file__).resolve().parents[2] / "src")


class Slow:
    """An embedder stub whose encode sleeps and counts encodes running at once."""

    name, dim, max_tokens = "test:slow", 2, 8

    def __init__(self, delay: float = 0.05) -> None:
        self.delay, self.running, self.most = delay, 0, 0
        self.threads: set[int] = set()
        self._lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def encode(self, texts, *, kind="document", show_progress=False):  # type: ignore[no-untyped-def]
        import numpy as np

        with self._lock:
            self.threads.add(threading.get_ident())
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(self.delay)
        with self._lock:
            self.running -= 1
        return {"dense": np.ones((len(texts), 2), np.float32)}


def hold_in_child(path: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process holding the encode lock at ``path`` for ``seconds`` (returns once it
    holds it)."""
    code = textwrap.dedent(f"""
        import time
        from aspectrag.service.encoding import ModelThreads

        with ModelThreads(lock_path={str(path)!r}).held():
            print("held", flush=True)
            time.sleep({seconds})
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": SRC})
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_model_work_waits_while_another_process_holds_the_lock(tmp_path):
    lock = tmp_path / "encode.lock"
    models = ModelThreads(lock_path=lock)
    child = hold_in_child(lock, 0.8)
    t0 = time.monotonic()
    out, cpu = models.run(lambda: 42)
    waited = time.monotonic() - t0
    child.wait(10)
    assert out == 42 and 0 <= cpu < 0.5
    assert waited > 0.5, f"the work did not wait for the other process ({waited:.2f} s)"
    t0 = time.monotonic()
    models.run(lambda: None)
    assert time.monotonic() - t0 < 0.5  # free again: no wait
    models.close()


def test_a_killed_holder_releases_the_lock(tmp_path):
    lock = tmp_path / "encode.lock"
    child = hold_in_child(lock, 120)
    done = threading.Event()
    models = ModelThreads(lock_path=lock)
    t = threading.Thread(target=lambda: (models.run(lambda: None), done.set()), daemon=True)
    t.start()
    assert not done.wait(0.3)  # held by the child
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    assert done.wait(10), "the lock was not released when its holder died"


def test_work_runs_on_the_same_few_threads_whoever_calls_and_in_turn_with_a_lock(tmp_path):
    inner = Slow(0.02)
    models = ModelThreads(3, lock_path=tmp_path / "encode.lock")
    callers = [threading.Thread(target=models.run, args=(lambda: inner.encode(["x"]),))
               for _ in range(12)]  # 12 short-lived caller threads, as a worker pool's
    for t in callers:
        t.start()
    for t in callers:
        t.join(10)
    assert 1 <= len(inner.threads) <= 3 and inner.most == 1
    assert threading.get_ident() not in inner.threads
    assert all(t.ident not in inner.threads for t in callers)
    free = Slow(0.05)  # without a lock the 3 threads work at once
    unlocked = ModelThreads(3)
    callers = [threading.Thread(target=unlocked.run, args=(lambda: free.encode(["x"]),))
               for _ in range(6)]
    for t in callers:
        t.start()
    for t in callers:
        t.join(10)
    assert free.most > 1
    _, cpu = unlocked.run(lambda: sum(i * i for i in range(200_000)))
    assert cpu > 0  # the worker thread's CPU time, not the caller's
    models.close()
    unlocked.close()
    with pytest.raises(RuntimeError):
        models.run(lambda: None)


def test_engine_searches_wait_for_the_lock_but_ingests_do_not(tmp_path):
    from fakes import HashEmbedder

    idx = Index(tmp_path / "idx", embedder=HashEmbedder())
    idx.ingest([str(write_docs(tmp_path / "docs"))])
    lock = tmp_path / "encode.lock"
    engine = Engine(idx, encode_lock=lock, max_searches=2)  # 1: bm25 would wait for the turn
    hits = engine.search("Roman consuls", 2, SearchSpec("dense")).hits
    assert hits and hits[0].chunk.source.endswith("rome.md")

    child = hold_in_child(lock, 120)
    try:
        found = threading.Event()
        t = threading.Thread(target=lambda: (engine.search("Mars red", 2, SearchSpec("dense")),
                                             found.set()), daemon=True)
        t.start()
        assert not found.wait(0.5), "a dense search ran while another process held the lock"
        (tmp_path / "more").mkdir()
        (tmp_path / "more" / "moon.md").write_text("# Moon\n\nThe Moon orbits the Earth.\n")
        rep = engine.ingest([str(tmp_path / "more" / "moon.md")])  # not held by the lock
        assert rep["added"] == 1
        assert engine.search("Moon", 1, SearchSpec("bm25")).hits  # bm25 encodes nothing
        assert not found.is_set()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    assert found.wait(10)
    engine.close()


def test_engine_searches_and_answers_encode_on_its_model_thread(tmp_path):
    from fakes import HashEmbedder

    class Recording(HashEmbedder):
        def __init__(self) -> None:
            super().__init__()
            self.threads: set[int] = set()
            self.names: set[str] = set()

        def encode(self, texts, **kw):  # type: ignore[no-untyped-def,override]
            self.threads.add(threading.get_ident())
            self.names.add(threading.current_thread().name)
            return super().encode(texts, **kw)

    emb = Recording()
    idx = Index(tmp_path / "idx", embedder=emb)
    idx.ingest([str(write_docs(tmp_path / "docs"))])
    engine = Engine(idx, max_searches=1)
    emb.threads.clear()
    emb.names.clear()  # the ingest above encoded on this thread
    askers = [threading.Thread(target=engine.ask, args=("Who governed Rome?", 2,
                                                         SearchSpec("hybrid")))
              for _ in range(4)]
    for t in askers:
        t.start()
    for t in askers:
        t.join(30)
    assert len(emb.threads) == 1  # searches and extractive answers: one OpenMP team
    assert all(n.startswith("aspectrag-model") for n in emb.names), emb.names
    assert all(t.ident not in emb.threads for t in askers)
    engine.close()

"""Encodes one at a time across server processes (``serve --workers N``): the flock-based
``SerialEncoder`` and the engine's use of it (searches wait, ingests do not)."""

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
from aspectrag.service.encode_lock import SerialEncoder
from aspectrag.service.engine import Engine, SearchSpec

from .conftest import write_docs

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX")

SRC = str(Path(__file__).resolve().parents[2] / "src")


class Slow:
    """An embedder stub whose encode sleeps and counts encodes running at once."""

    name, dim, max_tokens = "test:slow", 2, 8

    def __init__(self, delay: float = 0.05) -> None:
        self.delay, self.running, self.most = delay, 0, 0
        self._lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def encode(self, texts, *, kind="document", show_progress=False):  # type: ignore[no-untyped-def]
        import numpy as np

        with self._lock:
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
        from aspectrag.service.encode_lock import SerialEncoder

        class Stub:
            name, dim, max_tokens = "stub", 1, 1

        with SerialEncoder(Stub(), {str(path)!r}).held():
            print("held", flush=True)
            time.sleep({seconds})
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": SRC})
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_an_encode_waits_while_another_process_holds_the_lock(tmp_path):
    lock = tmp_path / "encode.lock"
    enc = SerialEncoder(Slow(0.0), lock)
    assert (enc.name, enc.dim, enc.max_tokens, enc.count_tokens("a b")) == ("test:slow", 2, 8, 2)
    child = hold_in_child(lock, 0.8)
    t0 = time.monotonic()
    out = enc.encode(["a", "b"], kind="query")
    waited = time.monotonic() - t0
    child.wait(10)
    assert out["dense"].shape == (2, 2)
    assert waited > 0.5, f"the encode did not wait for the other process ({waited:.2f} s)"
    t0 = time.monotonic()
    enc.encode(["a"])
    assert time.monotonic() - t0 < 0.5  # free again: no wait
    enc.close()


def test_a_killed_holder_releases_the_lock(tmp_path):
    lock = tmp_path / "encode.lock"
    child = hold_in_child(lock, 120)
    done = threading.Event()
    enc = SerialEncoder(Slow(0.0), lock)
    t = threading.Thread(target=lambda: (enc.encode(["a"]), done.set()), daemon=True)
    t.start()
    assert not done.wait(0.3)  # held by the child
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    assert done.wait(10), "the lock was not released when its holder died"


def test_threads_of_one_process_encode_one_at_a_time(tmp_path):
    inner = Slow(0.02)
    enc = SerialEncoder(inner, tmp_path / "encode.lock")
    threads = [threading.Thread(target=enc.encode, args=(["x"],)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert inner.most == 1
    bare = Slow(0.05)  # the check itself: without the wrapper, encodes overlap
    threads = [threading.Thread(target=bare.encode, args=(["x"],)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert bare.most > 1


def test_engine_searches_wait_for_the_lock_but_ingests_do_not(tmp_path):
    from fakes import HashEmbedder

    idx = Index(tmp_path / "idx", embedder=HashEmbedder())
    idx.ingest([str(write_docs(tmp_path / "docs"))])
    lock = tmp_path / "encode.lock"
    engine = Engine(idx, encode_lock=lock, max_searches=2)  # 1: bm25 would wait for the turn
    assert isinstance(engine.index.embedder, SerialEncoder)
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

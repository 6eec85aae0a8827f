"""The service's per-request fast paths keep their guarantees: the worker pool (results,
errors, its thread cap, abandoned calls never run), the coalescing transport (order, one
write per JSON answer, a lone head still leaves), and the search turns (at most N searches at
once, a search that waits too long for its turn ends as 503), and short searches running on
the event loop (only once measured short, never one that waits on I/O)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from aspectrag.index import Index
from aspectrag.service import create_app
from aspectrag.service.engine import Engine, SearchQueueTimeout, SearchSpec
from aspectrag.service.http import CoalescingTransport
from aspectrag.service.pool import WorkerPool


# -- worker pool -----------------------------------------------------------------------------
def test_pool_runs_off_the_loop_and_passes_errors() -> None:
    pool = WorkerPool(max_threads=2)

    async def main() -> tuple[int, int]:
        here = threading.get_ident()
        there = await pool.run(threading.get_ident)
        with pytest.raises(KeyError, match="nope"):
            await pool.run(lambda: {}["nope"])
        return here, there

    here, there = asyncio.run(main())
    assert here != there
    pool.stop()


def test_pool_caps_threads_and_drops_abandoned_calls() -> None:
    pool = WorkerPool(max_threads=2)
    running = 0
    peak = 0
    ran: list[int] = []
    lock = threading.Lock()
    release = threading.Event()

    def job(i: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            ran.append(i)
        release.wait(5)
        with lock:
            running -= 1
        return i

    async def main() -> list[int]:
        first = [asyncio.ensure_future(pool.run(lambda i=i: job(i))) for i in range(2)]
        await asyncio.sleep(0.2)  # both threads busy
        late = asyncio.ensure_future(pool.run(lambda: job(99)))  # queued behind them
        await asyncio.sleep(0.05)
        late.cancel()  # a time limit passed: it must never run
        others = [asyncio.ensure_future(pool.run(lambda i=i: job(i))) for i in range(2, 5)]
        release.set()
        return list(await asyncio.gather(*first, *others))

    assert asyncio.run(main()) == [0, 1, 2, 3, 4]
    assert peak == 2
    assert 99 not in ran
    pool.stop()


# -- coalescing transport --------------------------------------------------------------------
class _Recorder:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


def test_coalescing_transport_joins_head_and_body_and_flushes_a_lone_head() -> None:
    async def main() -> _Recorder:
        rec = _Recorder()
        t = CoalescingTransport(rec, asyncio.get_running_loop())  # type: ignore[arg-type]
        t.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        assert rec.writes == []  # held
        t.write(b"{}")
        assert rec.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
        t.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # nothing follows in this loop turn
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert rec.writes[-1] == b"HTTP/1.1 100 Continue\r\n\r\n"
        t.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        t.close()  # flushed before closing
        assert rec.writes[-1] == b"HTTP/1.1 204 No Content\r\n\r\n" and rec.closed
        assert t.get_extra_info("peername") == "info:peername"
        return rec

    rec = asyncio.run(main())
    assert len(rec.writes) == 3


def test_served_json_answer_is_one_segment_and_streams_still_stream(hash_index, serve) -> None:  # type: ignore[no-untyped-def]
    srv = serve(create_app(hash_index))
    body = b'{"query": "roman army", "retriever": "bm25", "k": 2}'
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(b"POST /v1/search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        first = s.recv(65536)  # head and body arrive together
    head, _, rest = first.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    length = int(next(v for k, _, v in (h.partition(b": ") for h in head.split(b"\r\n")[1:])
                      if k.lower() == b"content-length"))
    assert len(rest) == length and b'"hits"' in rest
    events = []
    with httpx.stream("POST", f"{srv.url}/v1/ask", json={"question": "roman army", "k": 2,
                                                           "llm": "extractive", "stream": True},
                      timeout=30) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = [line[7:] for line in r.iter_lines() if line.startswith("event: ")]
    assert events[0] == "queries" and events[-1] == "done"
    assert httpx.head(f"{srv.url}/healthz", timeout=10).status_code in (200, 405)


# -- search turns ----------------------------------------------------------------------------
def test_engine_runs_at_most_max_searches_at_once(hash_index: Index) -> None:
    engine = Engine(hash_index, max_searches=1)
    inner = hash_index.search_result
    running = 0
    peak = 0
    lock = threading.Lock()

    def slow(*a, **k):  # type: ignore[no-untyped-def]
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        try:
            return inner(*a, **k)
        finally:
            with lock:
                running -= 1

    hash_index.search_result = slow  # type: ignore[method-assign]
    threads = [threading.Thread(target=engine.search, args=("roman army", 2, SearchSpec("bm25")))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak == 1
    res = engine.search("roman army", 2, SearchSpec("bm25"))
    assert res.hits and res.timings["queued"] >= 0


def test_a_search_waiting_past_the_time_limit_is_a_503(hash_index: Index) -> None:
    from fastapi.testclient import TestClient

    app = create_app(hash_index, request_timeout=0.3, search_concurrency=1)
    engine = app.state.service.engine
    assert engine.max_searches == 1
    engine._turns.acquire()  # another search holds the only turn
    try:
        with pytest.raises(SearchQueueTimeout):
            engine.search("roman army", 2, SearchSpec("bm25"))
        with TestClient(app, raise_server_exceptions=False) as c:
            r = c.post("/v1/search", json={"query": "roman army", "retriever": "bm25"})
        assert r.status_code == 503
        assert r.headers["content-type"].startswith("application/problem+json")
        assert "longer than" in r.json()["detail"]
    finally:
        engine._turns.release()


def test_default_search_concurrency_keeps_the_cores_unoversubscribed(
        hash_index: Index, monkeypatch: pytest.MonkeyPatch) -> None:
    """Searches at once x intra-op threads <= cores: 2 cores with 2 threads -> 1 search,
    2 cores with 1 thread (``--workers 2``) -> 2, never 0."""
    from aspectrag import config
    from aspectrag.service import engine as engine_mod

    monkeypatch.setattr(engine_mod, "available_cores", lambda: 2)
    for threads, want in ((2, 1), (1, 2), (4, 1)):
        monkeypatch.setattr(config, "_THREADS", threads)
        assert Engine(hash_index).max_searches == want
    assert Engine(hash_index, max_searches=3).max_searches == 3


# -- short searches on the calling thread ------------------------------------------------------
def test_search_now_runs_only_searches_measured_short(hash_index: Index, tmp_path: Path) -> None:
    # a generous threshold: a loaded machine can stretch a tiny search past 1 ms of CPU or
    # 10 ms of wall-clock time; the default thresholds are tested below with slow searches
    engine = Engine(hash_index, max_searches=1, inline_below=1.0)
    bm25 = SearchSpec("bm25")
    assert engine.search_now("roman army", 2, bm25) is None  # never measured yet
    engine.search("roman army", 2, bm25)  # the first: may load the index, not measured
    assert engine.search_now("roman army", 2, bm25) is None
    engine.search("roman army", 2, bm25)  # a worker thread's search: measured
    res = engine.search_now("roman army", 2, bm25)
    assert res is not None and res.hits and res.timings["queued"] < 0.05  # no wait for a turn
    engine._turns.acquire()  # every turn taken: a short search still runs (it takes none)
    try:
        assert engine.search_now("roman army", 2, bm25) is not None
    finally:
        engine._turns.release()
    assert Engine(hash_index, inline_below=0).search_now("roman army", 2, bm25) is None
    assert engine.search_now("roman army", 2, bm25, sources=["/nowhere"]) is None
    more = tmp_path / "more.txt"
    more.write_text("The legion marched on Rome with the army.\n")
    assert hash_index.ingest([str(more)]).added == 1
    assert engine.search_now("roman army", 2, bm25) is None  # first search after a commit
    engine.search("roman army", 2, bm25)  # in a worker thread: loads the new generation
    assert engine.search_now("roman army", 2, bm25) is not None  # its time was not counted

    inner = hash_index.search_result

    def waits(*a, **k):  # type: ignore[no-untyped-def]
        time.sleep(0.02)  # little CPU, 20 ms of waiting (a remote store, an LLM)
        return inner(*a, **k)

    hash_index.search_result = waits  # type: ignore[method-assign]
    engine = Engine(hash_index)
    engine.search("roman army", 2, bm25)
    engine.search("roman army", 2, bm25)
    assert engine.search_now("roman army", 2, bm25) is None  # 20 ms wall-clock: off the loop

    def burns(*a, **k):  # type: ignore[no-untyped-def]
        end = time.thread_time() + 0.003
        while time.thread_time() < end:
            pass
        return inner(*a, **k)

    hash_index.search_result = burns  # type: ignore[method-assign]
    engine = Engine(hash_index)
    engine.search("roman army", 2, bm25)
    engine.search("roman army", 2, bm25)
    assert engine.search_now("roman army", 2, bm25) is None  # 3 ms of CPU: off the loop


def test_served_short_searches_skip_the_worker_thread(hash_index: Index) -> None:
    from fastapi.testclient import TestClient

    app = create_app(hash_index, run_writer=False)
    app.state.service.engine.inline_below = 1.0  # as above: not at the mercy of machine load
    threads: list[str] = []
    inner = hash_index.search_result

    def where(*a, **k):  # type: ignore[no-untyped-def]
        threads.append(threading.current_thread().name)
        return inner(*a, **k)

    hash_index.search_result = where  # type: ignore[method-assign]
    with TestClient(app) as c:
        end = time.monotonic() + 30
        while c.get("/readyz").status_code != 200 and time.monotonic() < end:
            time.sleep(0.02)  # the warm-up's hybrid search is done
        for _ in range(4):
            r = c.post("/v1/search", json={"query": "roman army", "retriever": "bm25", "k": 2})
            assert r.status_code == 200 and r.json()["hits"], r.text
    bm25 = threads[-4:]  # before them: the warm-up's hybrid search (ready: it has ended)
    assert all(t.startswith("aspectrag-search") for t in bm25[:2])  # unmeasured, measured
    assert not any(t.startswith("aspectrag-search") for t in bm25[2:])  # then on the loop

"""Durable jobs and the one-writer rule: a server SIGKILLed during an upload loses no committed
document and reports the job failed after restart; a job queued in one process is run by the
writer of another (``--workers N``); claims are exclusive."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from aspectrag.index import Index
from aspectrag.service import create_app
from aspectrag.service.jobs import JobStore

from .conftest import HashEmbedder, free_port, wait_job

TESTS = Path(__file__).resolve().parents[1]
SRC = TESTS.parent / "src"

SERVER = """
import sys
sys.path.insert(0, {tests!r})
from fakes import HashEmbedder
import uvicorn
from aspectrag.index import Index
from aspectrag.service import create_app
app = create_app(Index(sys.argv[1], embedder=HashEmbedder(delay=float(sys.argv[3]))))
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


def _start(index: Path, port: int, delay: float) -> subprocess.Popen:  # type: ignore[type-arg]
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen([sys.executable, "-c", SERVER.format(tests=str(TESTS)), str(index),
                             str(port), str(delay)], env=env)
    end = time.monotonic() + 60
    while time.monotonic() < end:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server subprocess did not start")


def _wait(url: str, job: str, until: set[str], timeout: float = 60) -> dict:  # type: ignore[type-arg]
    end = time.monotonic() + timeout
    while True:
        j = httpx.get(f"{url}/v1/jobs/{job}").json()
        if j["status"] in until or time.monotonic() > end:
            return j  # type: ignore[no-any-return]
        time.sleep(0.05)


def test_sigkill_during_upload_loses_nothing_committed(tmp_path):
    index = tmp_path / "idx"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _start(index, port, delay=3.0)
    try:
        r = httpx.post(f"{url}/v1/documents", json={"text": "Ravens are clever birds.",
                                                   "source": "ravens"})
        assert _wait(url, r.json()["job"], {"succeeded", "failed"})["status"] == "succeeded"
        big = " ".join(f"word{i % 997} filler text." for i in range(20_000)).encode()
        r = httpx.post(f"{url}/v1/documents", files={"files": ("big.txt", big)}, timeout=30)
        job = r.json()["job"]
        assert _wait(url, job, {"running", "succeeded", "failed"})["status"] == "running"
        time.sleep(1.0)  # inside the first 3-second embedding batch
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    proc = _start(index, port, delay=0.0)
    try:
        j = _wait(url, job, {"succeeded", "failed"}, timeout=10)
        assert j["status"] == "failed" and "interrupted" in j["error"], j
        docs = httpx.get(f"{url}/v1/documents").json()
        assert [d["source"].rsplit("/", 1)[-1] for d in docs["items"]] == ["ravens.md"]
        hits = httpx.post(f"{url}/v1/search", json={"query": "clever ravens",
                                                    "retriever": "bm25"}).json()["hits"]
        assert hits and hits[0]["source"].endswith("ravens.md")
    finally:
        proc.terminate()
        proc.wait(10)
    with sqlite3.connect(index / "index.sqlite") as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_job_queued_in_one_process_runs_in_another(tmp_path):
    """Two apps over one index folder stand for two ``--workers`` processes: the one without a
    writer thread queues, the other runs the job, both report it."""
    a = create_app(Index(tmp_path / "idx", embedder=HashEmbedder()), run_writer=False)
    b = create_app(Index(tmp_path / "idx", embedder=HashEmbedder()))
    with TestClient(a) as ca, TestClient(b) as cb:
        r = ca.post("/v1/documents", json={"text": "Otters hold hands while sleeping.",
                                           "source": "otters"})
        job = wait_job(ca, r.json()["job"], timeout=30)
        assert job["status"] == "succeeded", job
        for c in (ca, cb):
            hits = c.post("/v1/search", json={"query": "otters sleeping",
                                              "retriever": "bm25"}).json()["hits"]
            assert hits[0]["source"].endswith("otters.md")


def test_claims_are_exclusive_and_dead_owners_reaped(tmp_path):
    one, two = JobStore(tmp_path), JobStore(tmp_path)
    ids = [one.submit("text", {"n": i}) for i in range(3)]
    got = [one.claim(), two.claim(), one.claim(), two.claim()]
    assert sorted(g[0] for g in got if g) == sorted(ids) and got[-1] is None
    # a job of an earlier boot of this same pid (a restarted server) is failed by the reaper
    assert one.reap() == 0
    three = JobStore(tmp_path)
    three.boot = "a later boot"
    assert three.reap() == 3
    assert all(three.get(i)["status"] == "failed" for i in ids)
    assert "interrupted" in three.get(ids[0])["error"]


def test_searches_do_not_wait_for_a_running_ingest(tmp_path):
    idx = Index(tmp_path / "idx", embedder=HashEmbedder())
    with TestClient(create_app(idx)) as c:
        r = c.post("/v1/documents", json={"text": "Badgers dig setts.", "source": "badgers"})
        assert wait_job(c, r.json()["job"])["status"] == "succeeded"
        idx.embedder.delay = 4.0  # every embedding batch of the next ingest takes 4 s (>= 8 s)
        big = " ".join(f"term{i % 499} more words here." for i in range(15_000)).encode()
        job = c.post("/v1/documents", files={"files": ("big.txt", big)}).json()["job"]
        end = time.monotonic() + 30
        while c.get(f"/v1/jobs/{job}").json()["status"] != "running" and time.monotonic() < end:
            time.sleep(0.02)
        slowest = 0.0
        for _ in range(10):
            t0 = time.monotonic()
            hits = c.post("/v1/search", json={"query": "badgers", "retriever": "bm25"}).json()["hits"]
            slowest = max(slowest, time.monotonic() - t0)
            assert hits[0]["source"].endswith("badgers.md")
        assert c.get(f"/v1/jobs/{job}").json()["status"] == "running"
        # waiting for the writer would take the rest of the ingest (seconds); a search shares
        # the GIL with the writer thread's splitting, so allow for a loaded machine
        assert slowest < 3.0
        idx.embedder.delay = 0.0
        assert wait_job(c, job)["status"] == "succeeded"


def test_prune_deletes_only_old_finished_jobs(tmp_path):
    jobs = JobStore(tmp_path)
    done, failed, queued = (jobs.submit("text", {}) for _ in range(3))
    jobs.finish(done, {"added": 1}, None)
    jobs.finish(failed, None, "boom")
    assert jobs.prune(3600) == 0  # finished just now: kept
    time.sleep(0.05)
    assert jobs.prune(0.01) == 2
    assert jobs.get(done) is None and jobs.get(failed) is None
    assert jobs.get(queued)["status"] == "queued"



def test_job_table_opens_while_another_process_creates_it(tmp_path):
    """``serve --workers N`` processes create the job table at the same moment. A WAL switch
    that meets another connection's write to the new file (here: a schema write held for
    0.3 s) is answered "database is locked" at once, without SQLite's busy handler; the job
    store must wait for it instead of failing (one worker of a ``--workers 2`` benchmark run
    died of it, session 16)."""
    import threading

    (tmp_path / "state").mkdir()
    other = sqlite3.connect(tmp_path / "state" / "jobs.sqlite", isolation_level=None,
                            check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("CREATE TABLE IF NOT EXISTS elsewhere (x)")
    threading.Timer(0.3, lambda: other.execute("COMMIT")).start()
    t0 = time.monotonic()
    jobs = JobStore(tmp_path / "state")
    assert time.monotonic() - t0 >= 0.25  # it waited for the other writer
    assert jobs.submit("text", {"text": "x"})
    other.close()

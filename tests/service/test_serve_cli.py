"""``aspectrag serve`` wiring: the app factory uvicorn workers rebuild in their own process."""

from __future__ import annotations

import functools
import os
import pickle
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from aspectrag.cli.serve import build_app, is_loopback

from .conftest import free_port


def test_factory_is_picklable_and_builds_the_app(tmp_path):
    params = {"index": str(tmp_path / "idx"), "api_keys": None, "cors_origins": (),
              "max_upload_bytes": 1000, "request_timeout": 5.0, "url_allow": ()}
    factory = pickle.loads(pickle.dumps(functools.partial(build_app, params)))
    with TestClient(factory()) as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        assert c.get("/v1/stats").json()["documents"] == 0
    assert params["index"] == str(tmp_path / "idx")  # not consumed: every worker builds its own
    from tqdm import tqdm

    # a thread lock: tqdm's default multiprocessing semaphore leaked in every stopped worker
    assert isinstance(tqdm.get_lock(), type(threading.RLock()))


def test_is_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    assert not is_loopback("example.org")


def _listening_sockets(port: int) -> int:
    """Listening TCP sockets on ``port`` (any address), from /proc/net/tcp."""
    n = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        n += state == "0A" and int(local.rsplit(":", 1)[1], 16) == port
    return n


def test_reuse_port_listener_binds_once_per_worker():
    from aspectrag.service.http import ReusePortListener, reuse_port_balances

    if not reuse_port_balances():
        pytest.skip("SO_REUSEPORT load balancing is Linux-only")
    port = free_port()
    a = ReusePortListener("127.0.0.1", port)
    b = pickle.loads(pickle.dumps(a))  # what a worker receives: no socket yet
    assert b._sock is None
    sa, sb = next(iter(a)), next(iter(b))
    try:
        assert sa is not sb and list(a) == [sa]  # the same socket on every later iteration
        assert sa.getsockname()[1] == sb.getsockname()[1] == port
    finally:
        sa.close()
        sb.close()


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc/net/tcp")
def test_serve_with_two_workers_listens_on_a_socket_per_worker(tmp_path, embedder):
    from aspectrag.index import Index

    from .conftest import write_docs

    Index(tmp_path / "idx", embedder=embedder).ingest([str(write_docs(tmp_path / "docs"))])
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    for name in ("ASPECTRAG_THREADS", "GOMP_SPINCOUNT", "OMP_WAIT_POLICY"):
        env.pop(name, None)
    proc = subprocess.Popen([sys.executable, "-c", "from aspectrag.cli.main import app; app()",
                             "serve", "--index", str(tmp_path / "idx"), "--port", str(port),
                             "--workers", "2"], env=env, stdout=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 60
        while time.monotonic() < end and _listening_sockets(port) < 2:
            time.sleep(0.2)
        assert _listening_sockets(port) == 2  # uvicorn's shared socket would be 1
        ok = 0
        while time.monotonic() < end and ok < 20:  # a new connection each time
            try:
                ok += httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
            except httpx.HTTPError:
                time.sleep(0.2)
        assert ok == 20
        workers = [pid for pid in os.listdir("/proc") if pid.isdigit() and _ppid(pid) == proc.pid
                   and b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        assert len(workers) == 2  # (not multiprocessing's resource tracker)
        lock = tmp_path / "idx" / "service" / "encode.lock"
        while time.monotonic() < end and not all(_has_open(pid, lock) for pid in workers):
            time.sleep(0.2)  # each worker's warm-up search encodes under the lock
        assert all(_has_open(pid, lock) for pid in workers), "workers do not encode in turn"
        for retriever in ("hybrid", "multiquery"):  # model work, in turn
            r = httpx.post(f"http://127.0.0.1:{port}/v1/search", timeout=60,
                           json={"query": "Who governed the Roman Republic?", "k": 1,
                                 "retriever": retriever})
            assert r.status_code == 200, (retriever, r.text)
            assert r.json()["hits"][0]["source"].endswith("rome.md"), retriever
        for pid in workers:  # in turn, idle OpenMP threads spin briefly, then sleep
            env_vars = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            assert b"GOMP_SPINCOUNT=10000" in env_vars and b"OMP_WAIT_POLICY=PASSIVE" not in env_vars
    finally:
        proc.terminate()
        proc.wait(30)


def _has_open(pid: str, path: Path) -> bool:
    try:
        return any(os.readlink(f"/proc/{pid}/fd/{fd}") == str(path)
                   for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return False


def test_workers_encode_in_turn_when_their_threads_outnumber_the_cores():
    from aspectrag.cli.serve import encodes_in_turn

    assert not encodes_in_turn(1, None, 2)
    assert encodes_in_turn(2, None, 2)  # every worker takes all cores (the default)
    assert encodes_in_turn(2, 2, 2)
    assert not encodes_in_turn(2, 1, 2)
    assert not encodes_in_turn(4, 4, 16)


def _ppid(pid: str) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None

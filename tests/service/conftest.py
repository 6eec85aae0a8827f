"""Fixtures for the service tests: tiny indexes, an in-thread uvicorn server on a free port."""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the service extra (fastapi, uvicorn) is not installed")
import uvicorn  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from aspectrag.index import Index  # noqa: E402
from aspectrag.service import create_app  # noqa: E402
from aspectrag.service.http import http_protocol  # noqa: E402
from fakes import HashEmbedder  # noqa: E402

DOCS = {
    "rome.md": "# Roman Republic\n\nThe Roman Republic was governed by two consuls elected every "
               "year by the citizens.\n\n## Army\n\nThe legions were the backbone of the Roman army "
               "and fought in Gaul.\n",
    "chem.txt": "Catalysts speed up chemical reactions without being consumed. Enzymes are "
                "biological catalysts that speed up reactions in living cells.\n",
    "space.md": "# Mars\n\nMars is the fourth planet from the Sun. Its red colour comes from iron "
                "oxide on its surface.\n",
}


def write_docs(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in DOCS.items():
        (folder / name).write_text(text)
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """A uvicorn server running ``app`` in a thread on 127.0.0.1 (``url``) with the HTTP protocol
    ``aspectrag serve`` uses; ``stop()`` ends it."""

    def __init__(self, app, host: str = "127.0.0.1") -> None:  # type: ignore[no-untyped-def]
        self.port = free_port()
        self.url = f"http://{host}:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=self.port,
                                                    log_level="warning", lifespan="on",
                                                    http=http_protocol()))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        end = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > end or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def serve():  # type: ignore[no-untyped-def]
    """``serve(app) -> Served``; every server started is stopped after the test."""
    started: list[Served] = []

    def start(app, host: str = "127.0.0.1") -> Served:  # type: ignore[no-untyped-def]
        s = Served(app, host)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


def wait_job(client: TestClient, job_id: str, timeout: float = 60.0,
             headers: dict[str, str] | None = None) -> dict:  # type: ignore[type-arg]
    """Poll ``GET /v1/jobs/{id}`` until it has finished; the job."""
    end = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/jobs/{job_id}", headers=headers or {}).json()
        if job["status"] in ("succeeded", "failed") or time.monotonic() > end:
            return job  # type: ignore[no-any-return]
        time.sleep(0.05)


@pytest.fixture
def hash_index(tmp_path: Path) -> Index:
    """A fresh index over the three test documents with the hashing embedder (fast)."""
    idx = Index(tmp_path / "idx", embedder=HashEmbedder())
    idx.ingest([str(write_docs(tmp_path / "docs"))])
    return idx


@pytest.fixture
def hash_client(hash_index: Index) -> Iterator[TestClient]:
    with TestClient(create_app(hash_index), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def minilm_index(tmp_path_factory, embedder) -> Index:  # type: ignore[no-untyped-def]
    """An index over the test documents with the bundled MiniLM (for real answers)."""
    root = tmp_path_factory.mktemp("minilm")
    idx = Index(root / "idx", embedder=embedder)
    idx.ingest([str(write_docs(root / "docs"))])
    return idx

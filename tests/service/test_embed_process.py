"""The service's low-priority embedding child (``service/embed_process.py``): same vectors as
in-process, niced, stopped with the app / when idle / when its parent is killed, and a child
that fails fails the ingest cleanly. Uses the bundled MiniLM (the child builds its own)."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from fastapi.testclient import TestClient

from aspectrag.embed.factory import build_embedder
from aspectrag.errors import IngestEngineError
from aspectrag.index import Index
from aspectrag.service import create_app
from aspectrag.service.embed_process import ProcessEmbedder

from .conftest import wait_job

SRC = Path(__file__).resolve().parents[2] / "src"
TEXTS = ["Mars is the fourth planet from the Sun.", "Catalysts speed up chemical reactions."]


def _nice(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_child_gives_the_same_vectors_at_low_priority_and_stops(embedder):
    pe = ProcessEmbedder(embedder, functools.partial(build_embedder, heads=False), nice=7,
                         idle_s=60)
    try:
        q = pe.encode(TEXTS, kind="query")
        assert pe.pid is None  # queries never start the child
        got = pe.encode(TEXTS, kind="document")
        pid = pe.pid
        assert pid is not None and pid != os.getpid()
        assert _nice(pid) == min(19, _nice(os.getpid()) + 7)
        want = embedder.encode(TEXTS, kind="document")
        assert set(got) == set(want)
        for space in want:
            assert got[space].dtype == np.float32 and got[space].shape == want[space].shape
            np.testing.assert_allclose(got[space], want[space], atol=1e-6)
        np.testing.assert_allclose(q["dense"], want["dense"], atol=1e-6)
        assert pe.count_tokens(TEXTS[0]) == embedder.count_tokens(TEXTS[0])
        assert pe.tokenizer is embedder.tokenizer  # the splitter counts tokens locally
    finally:
        pe.close()
    assert not _alive(pid)
    pe.idle_s = 0.3  # a new child on the next encode; it exits once idle
    pe.encode(TEXTS[:1])
    pid = pe.pid
    end = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < end:
        time.sleep(0.1)
    assert not _alive(pid) and pe.pid is None


def test_failing_or_different_child_embedder_is_a_clear_error(embedder):
    bad = ProcessEmbedder(embedder, functools.partial(build_embedder, "/nonexistent/model",
                                                      heads=False))
    with pytest.raises(IngestEngineError, match="embedding process"):
        bad.encode(TEXTS)
    bad.close()
    other = SimpleNamespace(name="some-other-model", dim=384, max_tokens=256)
    pe = ProcessEmbedder(other, functools.partial(build_embedder, heads=False))  # type: ignore[arg-type]
    with pytest.raises(IngestEngineError, match="some-other-model"):
        pe.encode(TEXTS)
    assert pe.pid is None
    with pytest.raises(ValueError, match="nice"):
        ProcessEmbedder(embedder, build_embedder, nice=25)


KILLED = """
import functools, sys, threading
from aspectrag.embed.factory import build_embedder
from aspectrag.embed.hf import HFEmbedder
from aspectrag.service.embed_process import ProcessEmbedder
pe = ProcessEmbedder(HFEmbedder(), functools.partial(build_embedder, heads=False))
pe.encode(["warm"])
print(pe.pid, flush=True)
pe.encode(["a long sentence about many things " * 20] * 20000)  # minutes of work
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux")
def test_child_dies_with_a_killed_parent_even_mid_encode():
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    parent = subprocess.Popen([sys.executable, "-c", KILLED], stdout=subprocess.PIPE, env=env,
                              text=True)
    try:
        child = int(parent.stdout.readline())  # type: ignore[union-attr]
        time.sleep(1.0)  # inside the long encode
        assert _alive(child)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
    end = time.monotonic() + 5
    while _alive(child) and time.monotonic() < end:
        time.sleep(0.05)
    assert not _alive(child)


def test_service_ingest_embeds_in_the_child_and_documents_are_searchable(tmp_path):
    idx = Index(tmp_path / "idx")  # the bundled model, rebuilt by the child
    app = create_app(idx)
    with TestClient(app) as c:
        r = c.post("/v1/documents", json={"text": "Axolotls regrow their limbs.",
                                          "source": "axolotl", "title": "Axolotl"})
        job = wait_job(c, r.json()["job"], timeout=120)
        assert job["status"] == "succeeded", job
        engine = app.state.service.engine
        pid = engine._child.pid
        assert pid is not None and pid != os.getpid()
        hits = c.post("/v1/search", json={"query": "which animal regrows limbs",
                                          "retriever": "hybrid", "k": 1}).json()["hits"]
        assert hits and "Axolotls" in hits[0]["text"]
        heads = c.post("/v1/search", json={"query": "which animal regrows limbs",
                                           "retriever": "multihead", "k": 1})
        assert heads.status_code == 200 and "Axolotls" in heads.json()["hits"][0]["text"]
    assert not _alive(pid)  # stopped with the app
    with pytest.raises(Exception, match="ingest_nice"):
        create_app(idx, ingest_nice=40)

"""The torch-free query path for torch-built indexes (issue 14): ``aspectrag ingest`` prepares
the fp32 ONNX twin, ``search`` / ``ask`` then run without importing torch or transformers and
return what the torch path returns. A tiny random BERT (built by the test) stands in for the
bundled model; ``embedder.path`` points at it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

ROOT = Path(__file__).resolve().parents[2]
BLOCK_TORCH = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'transformers'):
            raise ImportError('blocked ' + name)
sys.meta_path.insert(0, Block())
"""


@pytest.fixture()
def env(tmp_path: Path) -> dict[str, str]:
    from tests.fakes import tiny_bert_folder

    model = tiny_bert_folder(tmp_path / "tiny", seed=3)
    e = dict(os.environ)
    e.update(ASPECTRAG_EMBEDDER=str(model), ASPECTRAG_CACHE_DIR=str(tmp_path / "cache"),
             ASPECTRAG_QUERY_TWIN="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    e.pop("ASPECTRAG_EMBEDDER_RUNTIME", None)
    return e


def _cli(args: list[str], env: dict[str, str], prelude: str = "") -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    code = prelude + "\nimport sys\nfrom aspectrag.cli.main import app\nsys.argv = ['aspectrag'] + " \
        + repr(args) + "\napp()\n"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=300)


def _docs(tmp_path: Path) -> Path:
    """A folder of three one-sentence documents."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in [("cakes", "Cakes are baked desserts made of flour and sugar."),
                       ("rivers", "The Isère river flows through Grenoble in the Alps."),
                       ("stars", "Neutron stars are the collapsed cores of massive stars.")]:
        (docs / f"{name}.txt").write_text(text + "\n")
    return docs


def test_ingest_prepares_the_twin_and_search_runs_without_torch(tmp_path, env):
    docs = _docs(tmp_path)
    idx = str(tmp_path / "idx")
    r = _cli(["ingest", str(docs), "--index", idx], env)
    assert r.returncode == 0, r.stderr[-2000:]
    exports = [json.loads(p.read_text()) for p in (tmp_path / "cache" / "onnx").glob("*/export.json")]
    assert [e["precision"] for e in exports] == ["fp32"]

    query = ["search", "flour and sugar desserts", "--index", idx, "--json", "-k", "3"]
    fast = _cli(query, env, BLOCK_TORCH + "import atexit\natexit.register(lambda: print("
                "'TORCH' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr))\n")
    assert fast.returncode == 0, fast.stderr[-2000:]
    assert "NO-TORCH" in fast.stderr
    slow = _cli(query, {**env, "ASPECTRAG_QUERY_TWIN": "0"}, "")
    assert slow.returncode == 0, slow.stderr[-2000:]
    a, b = json.loads(fast.stdout), json.loads(slow.stdout)
    hits = lambda res: [(h["chunk_id"], round(h["score"], 4)) for h in res]  # noqa: E731
    assert hits(a) == hits(b) and len(hits(a)) == 3

    ask = _cli(["ask", "what are cakes?", "--index", idx, "--llm", "extractive", "--json"], env,
               BLOCK_TORCH)
    assert ask.returncode == 0, ask.stderr[-2000:]
    assert json.loads(ask.stdout)["citations"]


def test_twin_vectors_equal_torch_and_explicit_torch_is_respected(tmp_path, env, monkeypatch):
    for k in ("ASPECTRAG_EMBEDDER", "ASPECTRAG_CACHE_DIR", "ASPECTRAG_QUERY_TWIN"):
        monkeypatch.setenv(k, env[k])
    monkeypatch.delenv("ASPECTRAG_EMBEDDER_RUNTIME", raising=False)
    from aspectrag.embed.factory import build_embedder, prepare_query_twin, query_twin
    from aspectrag.multihead.embedder import MultiHeadEmbedder

    torch_emb = MultiHeadEmbedder()
    assert query_twin(None, recorded=torch_emb.name, heads=True) is None  # not exported yet
    assert prepare_query_twin(torch_emb.name, heads=True)
    twin = build_embedder(recorded=torch_emb.name, heads=True, for_queries=True)
    assert type(twin).__name__ == "OnnxMultiHeadEmbedder" and twin.name == torch_emb.name
    # the session opens in the background once a retriever that encodes queries is built
    # (overlapping BM25 loading); a BM25-only retriever does not open it
    from aspectrag.retrieve.factory import build_retriever
    from aspectrag.store.sqlite import SQLiteStore

    layers = (twin.layer,)
    assert twin.query_layers == layers
    store = SQLiteStore(tmp_path / "idx")
    build_retriever("bm25", store, twin)
    assert not getattr(twin, "_preloading", False)
    build_retriever("dense", store, twin)
    assert twin._preloading
    twin.preload(layers).join(timeout=60)
    assert layers in twin._sessions
    texts = ["Cakes are baked desserts.", "The Battle of the Isère River was fought in 121 BC."]
    a, b = torch_emb.encode(texts, kind="query"), twin.encode(texts, kind="query")
    assert set(a) == set(b)
    for space in a:
        np.testing.assert_allclose(b[space], a[space], atol=1e-5)
    # an explicit runtime, another model, or the setting off: no twin
    assert query_twin(None, recorded=torch_emb.name, heads=True, runtime="torch") is None
    assert query_twin(None, recorded="hf:other-model", heads=True) is None
    monkeypatch.setenv("ASPECTRAG_QUERY_TWIN", "0")
    assert query_twin(None, recorded=torch_emb.name, heads=True) is None


SERVE_SCRIPT = """
import json, sys, time
from fastapi.testclient import TestClient
from aspectrag.service.app import create_app

app = create_app(sys.argv[1])
out = {"embedder": type(app.state.service.engine.index.embedder).__name__}
with TestClient(app) as c:
    def hits(query, retriever):
        r = c.post("/v1/search", json={"query": query, "k": 3, "retriever": retriever})
        assert r.status_code == 200, r.text
        return [(h["chunk_id"], round(h["score"], 4)) for h in r.json()["hits"]]

    out["search"] = {r: hits("flour and sugar desserts", r) for r in ("hybrid", "multihead")}
    out["ask"] = c.post("/v1/ask", json={"question": "what are cakes?", "llm": "extractive",
                                         "retriever": "hybrid"}).json()["citations"]
    out["torch"] = "torch" in sys.modules
    # ingest splits with the transformers tokenizer (which may import torch): unblock
    sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "Block"]
    job = c.post("/v1/documents", json={"text": "Volcanoes erupt molten basalt lava.",
                                        "title": "Volcanoes", "source": "volcano notes"}).json()
    end = time.monotonic() + 120
    while (j := c.get(f"/v1/jobs/{job['job']}").json())["status"] in ("queued", "running"):
        assert time.monotonic() < end, j
        time.sleep(0.1)
    out["job"] = j["status"] if j["status"] == "succeeded" else json.dumps(j)
    r = c.post("/v1/search", json={"query": "molten basalt lava", "k": 1, "retriever": "dense"})
    out["new"] = r.json()["hits"][0]["title"]
print(json.dumps(out))
"""


def test_service_encodes_queries_with_the_twin_and_documents_with_torch(tmp_path, env):
    """``create_app(location)`` opens the index for queries: a torch-built index with its twin
    ready is searched and answered in a server process that has not imported torch, with the
    torch path's hits; an upload still embeds (in the service's child process) with torch,
    and the new document is found by dense search at once."""
    docs = _docs(tmp_path)
    idx = str(tmp_path / "idx")
    assert _cli(["ingest", str(docs), "--index", idx], env).returncode == 0

    def serve(prelude: str, e: dict[str, str], index: str) -> dict:  # type: ignore[type-arg]
        r = subprocess.run([sys.executable, "-c", prelude + SERVE_SCRIPT, index],
                           capture_output=True, text=True, cwd=ROOT, env=e, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        return json.loads(r.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]

    import shutil

    shutil.copytree(idx, tmp_path / "idx-torch")
    fast = serve(BLOCK_TORCH, env, idx)
    slow = serve("", {**env, "ASPECTRAG_QUERY_TWIN": "0"}, str(tmp_path / "idx-torch"))
    assert fast["embedder"] == "OnnxMultiHeadEmbedder" and not fast["torch"]
    assert slow["embedder"] == "MultiHeadEmbedder" and slow["torch"]
    assert fast["search"] == slow["search"] and len(fast["search"]["multihead"]) == 3
    assert fast["ask"] and fast["ask"] == slow["ask"]
    assert fast["job"] == slow["job"] == "succeeded"
    assert fast["new"] == slow["new"] == "Volcanoes"
    # the upload was embedded by torch (the index's runtime), in the child process
    from aspectrag.store.sqlite import SQLiteStore

    assert SQLiteStore(idx).get_meta("embedder") == SQLiteStore(tmp_path / "idx-torch").get_meta(
        "embedder")

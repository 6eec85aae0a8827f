"""Issue 14: the query path (``search`` / ``ask --llm extractive``) imports neither torch nor
transformers, prints no start-up noise, and the results table shows file names in full.

The commands run in a subprocess whose ``sitecustomize`` (on PYTHONPATH) blocks any import of
torch / transformers (an ``ImportError`` naming the module, so a regression fails loudly) and
registers the tests' torch-free :class:`tests.fakes.HashEmbedder` for the name the index
records (:func:`aspectrag.embed.factory.register_recorded`), standing in for the ONNX
embedder of an ONNX-built index.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.fakes import HashEmbedder

from aspectrag.index import Index

ROOT = Path(__file__).resolve().parents[2]
LONG_NAME = "a_rather_long_file_name_that_used_to_be_cut_by_the_table_at_eighty_columns.md"

SITECUSTOMIZE = f'''
import sys

class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "transformers"):
            raise ImportError(f"blocked by the test: {{name}}", name=name)
        return None

sys.meta_path.insert(0, _Block())
sys.path.insert(0, {str(ROOT)!r})
from tests.fakes import HashEmbedder
from aspectrag.embed.factory import register_recorded
register_recorded(HashEmbedder.name, HashEmbedder)
'''


@pytest.fixture(scope="module")
def env(tmp_path_factory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("startup")
    docs = root / "docs"
    docs.mkdir()
    (docs / LONG_NAME).write_text(
        "Solar panels convert sunlight into electricity. Batteries store the energy for the "
        "night.\n\nWind turbines turn the kinetic energy of air into electric power.")
    (docs / "rome.txt").write_text("The Roman Republic was governed by two consuls.")
    Index(root / "idx", embedder=HashEmbedder()).ingest([str(docs)])
    site = root / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    e = {k: v for k, v in os.environ.items() if not k.startswith("ASPECTRAG_")}
    e["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT / "src")])
    e["COLUMNS"] = "80"
    return root, e


def _run(env, *args: str) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    root, e = env
    cmd = [sys.executable, "-c", "from aspectrag.cli.main import app; app()", *args,
           "--index", str(root / "idx")]
    return subprocess.run(cmd, env=e, cwd=root, capture_output=True, text=True, timeout=120)


def test_blocker_really_blocks(env):
    root, e = env
    res = subprocess.run([sys.executable, "-c", "import torch"], env=e, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode != 0 and "blocked by the test" in res.stderr


@pytest.mark.parametrize("retriever", ["bm25", "hybrid"])
def test_search_json_without_torch(env, retriever):
    res = _run(env, "search", "solar batteries", "-r", retriever, "--json")
    assert res.returncode == 0, res.stderr
    hits = json.loads(res.stdout)
    assert hits and hits[0]["source"].endswith(LONG_NAME)
    assert res.stderr == ""  # no start-up noise


def test_ask_extractive_without_torch(env):
    res = _run(env, "ask", "What do batteries store?", "--llm", "extractive", "-r", "bm25",
               "--json")
    assert res.returncode == 0, res.stderr
    ans = json.loads(res.stdout)
    assert "batter" in ans["answer"].lower() and ans["citations"]
    assert res.stderr == ""


def test_table_shows_file_name_and_location_in_full(env):
    res = _run(env, "search", "solar batteries", "-r", "bm25", "-k", "1")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert any(LONG_NAME in line for line in lines), res.stdout
    assert any("chars 0-" in line for line in lines), res.stdout

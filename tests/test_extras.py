"""Optional extras: a missing optional package fails only the feature that needs it, with a
message naming the extra; the base install runs the embedded default end to end."""

from __future__ import annotations

import logging
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from aspectrag.errors import LoadError
from aspectrag.extras import EXTRAS, MissingExtraError, optional_import

ROOT = Path(__file__).resolve().parents[1]


def _missing(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Make ``import name`` raise ImportError, as when the package is not installed."""
    for name in names:
        for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            monkeypatch.delitem(sys.modules, mod)
        monkeypatch.setitem(sys.modules, name, None)


def test_extras_match_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    base = " ".join(project["dependencies"])
    for module, (extra, package) in EXTRAS.items():
        assert any(req.startswith(package) for req in extras[extra]), (module, extra)
        assert package not in base, f"{package} is optional, not a base dependency"
        assert extra in extras["all"][0]


def test_message_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    _missing(monkeypatch, "ranx")
    with pytest.raises(MissingExtraError, match=r"install aspectrag\[eval\]") as e:
        optional_import("ranx", "evaluation metrics")
    assert e.value.extra == "eval" and "evaluation metrics needs the optional package ranx" in str(
        e.value
    )
    from aspectrag.evaluate.metrics import score_run

    with pytest.raises(MissingExtraError, match=r"aspectrag\[eval\]"):
        score_run({"q": {"d": 1}}, {"q": {"d": 1.0}})


def test_pdf_without_pypdf_fails_that_file_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.fakes import HashEmbedder

    from aspectrag.index import Index

    _missing(monkeypatch, "pypdf")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("Consuls governed the Roman Republic for centuries.\n")
    (docs / "b.pdf").write_bytes(b"%PDF-1.4\n% a real file would follow\n")
    rep = Index(tmp_path / "idx", embedder=HashEmbedder()).ingest([str(docs)])
    assert rep.added == 1
    assert [(Path(s).name, r) for s, r in rep.failed] == [
        ("b.pdf", "reading PDF files needs the optional package pypdf: install aspectrag[pdf] "
         "(pip install 'aspectrag[pdf]')")
    ]


def test_html_without_trafilatura(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aspectrag.ingest.loaders import HtmlLoader

    _missing(monkeypatch, "trafilatura")
    page = tmp_path / "p.html"
    page.write_text("<html><body><p>Hello there, main content.</p></body></html>")
    with pytest.raises(LoadError, match=r"p\.html: reading HTML pages .* aspectrag\[html\]"):
        list(HtmlLoader().load(str(page)))


def test_llm_without_openai(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.generate.helpers import make_hits

    from aspectrag.generate.openai_chat import OpenAIGenerator
    from aspectrag.retrieve.query_gen.factory import build_query_generator

    _missing(monkeypatch, "openai")
    g = OpenAIGenerator("m", base_url="http://127.0.0.1:9/v1")  # nothing imported yet
    with pytest.raises(MissingExtraError, match=r"install aspectrag\[llm\]"):
        g.generate("q?", make_hits(["text"]))
    with pytest.raises(MissingExtraError, match=r"install aspectrag\[llm\]"):
        build_query_generator("openai:m")


def test_faiss_missing_means_exact_search(monkeypatch: pytest.MonkeyPatch,
                                          caplog: pytest.LogCaptureFixture) -> None:
    import aspectrag.store.dense_index as di

    _missing(monkeypatch, "faiss")
    monkeypatch.setattr(di, "_NO_FAISS_NOTED", False)
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((40, 8)).astype(np.float32)
    index = di.DenseIndex(vecs, np.arange(40), ann_threshold=10)
    q = vecs[:2]
    with caplog.at_level(logging.INFO, logger="aspectrag.store"):
        got = index.search(q, 5)
        index.search(q, 5)
    want = np.argsort(-(q @ vecs.T), axis=1)[:, :5]
    assert [list(ids) for ids, _ in got] == want.tolist()
    notes = [r for r in caplog.records if "aspectrag[ann]" in r.getMessage()]
    assert len(notes) == 1 and notes[0].levelno == logging.INFO


def test_plot_without_matplotlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aspectrag.cli.heads import _bar_plot

    _missing(monkeypatch, "matplotlib")
    with pytest.raises(MissingExtraError, match=r"install aspectrag\[plots\]"):
        _bar_plot([{"head": 0, "importance": 1.0}], tmp_path / "p.png", "t")


BASE_ONLY = """
import sys
for name in {blocked!r}:
    sys.modules[name] = None
import json
from aspectrag.cli.main import app  # every command module imports without the extras
from aspectrag.index import Index
idx = Index(sys.argv[1])
rep = idx.ingest([sys.argv[2]])
hits = idx.search("Who governed the Roman Republic?", 3)
ans = idx.ask("Who governed the Roman Republic?", 3)
print(json.dumps({{"added": rep.added, "failed": rep.failed, "top": hits[0].chunk.source,
                  "mode": ans.mode, "cited": [c.chunk.source for c in ans.citations]}}))
"""


def test_base_install_runs_the_embedded_default(tmp_path: Path) -> None:
    """txt/md ingest, hybrid search and an extractive answer with every optional package
    unimportable (a plain ``pip install aspectrag``), bundled MiniLM, in a fresh process."""
    import json

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "rome.md").write_text("# Rome\n\nThe Roman Republic was governed by two consuls "
                                  "elected every year.\n")
    (docs / "chem.txt").write_text("Catalysts speed up chemical reactions.\n")
    blocked = sorted(EXTRAS)
    proc = subprocess.run(
        [sys.executable, "-c", BASE_ONLY.format(blocked=blocked), str(tmp_path / "idx"), str(docs)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT / "src")},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["added"] == 2 and out["failed"] == [] and out["mode"] == "extractive"
    assert out["top"].endswith("rome.md") and out["cited"] and out["cited"][0].endswith("rome.md")

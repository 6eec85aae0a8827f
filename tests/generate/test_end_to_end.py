"""End-to-end answering on real documents: ingest -> hybrid search -> extractive answer (and a
tiny local model through ``--llm hf:PATH``). Subsets of ../shared/data keep them fast: the
target document plus its hardest distractor."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aspectrag.index import Index

pytestmark = pytest.mark.slow

TASK_Q = "What are the approaches to Task Decomposition?"
BERT_Q = "What are the two main tasks BERT is pre-trained on?"


@pytest.fixture(scope="module")
def agent_index(tmp_path_factory: pytest.TempPathFactory, data_dir: Path, embedder) -> Index:  # type: ignore[no-untyped-def]
    posts = data_dir / "lilianweng-posts"
    idx = Index(tmp_path_factory.mktemp("agent_index"), embedder=embedder)
    rep = idx.ingest(
        [posts / "2023-06-23-agent.html", posts / "2023-03-15-prompt-engineering.html"]
    )
    assert not rep.failed
    return idx


@pytest.fixture(scope="module")
def bert_index(tmp_path_factory: pytest.TempPathFactory, data_dir: Path, embedder) -> Index:  # type: ignore[no-untyped-def]
    papers = data_dir / "aragog" / "papers"
    idx = Index(tmp_path_factory.mktemp("bert_index"), embedder=embedder)
    rep = idx.ingest([papers / "bert.pdf", papers / "roberta.pdf"])
    assert not rep.failed
    return idx


def test_task_decomposition_answer(agent_index: Index) -> None:
    a = agent_index.ask(TASK_Q)
    assert a.mode == "extractive" and a.answer.startswith("Extractive answer (no LLM configured)")
    first = a.citations[0]
    assert first.chunk.source.endswith("2023-06-23-agent.html")
    assert (
        "Task Decomposition" in (first.chunk.heading or "")
        or "Task decomposition" in first.chunk.text
    )
    text = a.answer
    assert "Steps for XYZ" in text  # (1) simple LLM prompting
    assert "task-specific instructions" in text  # (2)
    assert "human inputs" in text  # (3)
    # every [n] in the answer is listed, and every listed citation is used
    assert {int(n) for n in re.findall(r"\[(\d+)\]", text)} == {c.n for c in a.citations}


def test_bert_pretraining_tasks_answer(bert_index: Index) -> None:
    a = bert_index.ask(BERT_Q)
    assert a.mode == "extractive"
    assert any(c.chunk.source.endswith("bert.pdf") for c in a.citations)
    low = a.answer.lower()
    assert re.search(r"masked (language model|lm)", low), a.answer
    assert "next sentence prediction" in low, a.answer
    assert all(c.chunk.page is not None for c in a.citations)  # PDF pages kept


def test_cli_ask_json(bert_index: Index) -> None:
    from aspectrag.cli.main import app

    res = CliRunner().invoke(app, ["ask", BERT_Q, "--index", str(bert_index.path), "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["mode"] == "extractive" and "next sentence prediction" in d["answer"].lower()
    c = d["citations"][0]
    assert set(c) >= {"n", "source", "chunk_id", "location", "text"} and "p. " in c["location"]


def test_local_tiny_model_runs_end_to_end(bert_index: Index, tiny_models: dict[str, Path]) -> None:
    """``--llm hf:PATH`` with concat, rag-token and rag-sequence decoding (quality not judged)."""
    from aspectrag.generate.factory import build_generator

    hits = bert_index.search(BERT_Q, 3)
    a = bert_index.ask(BERT_Q, 3, llm=f"hf:{tiny_models['llama']}")
    assert a.mode == "llm" and isinstance(a.answer, str)
    for decoding in ("rag-token", "rag-sequence"):
        g = build_generator(
            f"hf:{tiny_models['gpt2']}", decoding=decoding, max_new_tokens=4, num_beams=2
        )
        r = g.generate(BERT_Q, hits)
        assert r.mode == "llm" and len(r.extras["rag"]["documents"]) == 3
    # the Python API passes the decoding through to the generator factory
    from aspectrag.errors import ConfigError

    with pytest.raises(ConfigError, match="needs an LLM"):
        bert_index.ask(BERT_Q, 3, llm="extractive", decoding="rag-token")


def test_cli_rag_token_json_has_posteriors(bert_index: Index, tiny_models: dict[str, Path]) -> None:
    from aspectrag.cli.main import app

    args = [
        "ask",
        BERT_Q,
        "--index",
        str(bert_index.path),
        "-k",
        "3",
        "--json",
        "--llm",
        f"hf:{tiny_models['gpt2']}",
        "--decoding",
        "rag-token",
    ]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    docs = json.loads(res.stdout)["rag"]["documents"]
    assert [d["n"] for d in docs] == [1, 2, 3]
    assert sum(d["posterior"] for d in docs) == pytest.approx(1.0, abs=1e-6)


def test_cli_streams_from_openai_compatible_server(
    bert_index: Index, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.generate.openai_server import FakeOpenAI

    from aspectrag.cli.main import app

    with FakeOpenAI(
        lambda b: {"text": "Masked LM [1] and next sentence prediction [2] [9]."}
    ) as srv:
        monkeypatch.setenv("ASPECTRAG_LLM_BASE_URL", srv.base_url)
        monkeypatch.setenv("ASPECTRAG_LLM_MODEL", "tiny")
        res = CliRunner().invoke(app, ["ask", BERT_Q, "--index", str(bert_index.path), "-k", "3"])
    assert res.exit_code == 0, res.output
    assert srv.requests[0]["stream"] is True
    assert "Masked LM [1] and next sentence prediction [2] [9]." in res.stdout  # as streamed
    assert "removed invalid citations [9]" in res.output
    assert re.search(r"^\[1\] .*\.pdf \(p\. \d+", res.stdout, re.M)

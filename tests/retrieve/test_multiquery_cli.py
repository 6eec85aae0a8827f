"""``--retriever multiquery`` through the factory and the CLI (bundled MiniLM, tiny index)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aspectrag.cli.main import app
from aspectrag.retrieve.factory import available, build_retriever
from aspectrag.retrieve.multiquery import MultiQueryRetriever

runner = CliRunner()


def _flat(text: str) -> str:
    """Console output without rich's line wrapping."""
    return " ".join(text.split())
QUESTION = "How do agents plan and decompose tasks?"


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mq")
    docs = root / "docs"
    docs.mkdir()
    texts = {
        "cot.txt": "Chain of thought prompting asks the model to think step by step.",
        "tot.txt": "Tree of Thoughts explores several reasoning paths with breadth-first search.",
        "pddl.txt": "LLM+P hands long-horizon planning to a classical planner written in PDDL.",
        "louvre.txt": "The Louvre museum in Paris holds the Mona Lisa.",
    }
    for name, text in texts.items():
        (docs / name).write_text(text + "\n")
    res = runner.invoke(app, ["ingest", str(docs), "--index", str(root / "idx")])
    assert res.exit_code == 0, res.output
    return root


@pytest.mark.slow
def test_factory_builds_multiquery_over_any_base(index: Path) -> None:
    from aspectrag.index import Index

    assert "multiquery" in available()
    idx = Index(index / "idx")
    for base in ("bm25", "dense", "hybrid"):
        r = build_retriever("multiquery", idx.store, idx.embedder, base=base, queries="rules")
        assert isinstance(r, MultiQueryRetriever) and r.name == f"multiquery({base})"
        hits = r.retrieve(QUESTION, 3)
        assert 1 <= len(hits) <= 3 and hits[0].provenance["queries"][0]["query"] == QUESTION
    with pytest.raises(ValueError, match="--base"):
        build_retriever("multiquery", idx.store, idx.embedder, base="multiquery")


@pytest.mark.slow
def test_cli_replay_show_queries_and_json(index: Path) -> None:
    rec = index / "rec.jsonl"
    rec.write_text(
        json.dumps(
            {
                "question": QUESTION,
                "queries": [
                    "1. chain of thought step by step",
                    "2. tree of thoughts",
                    "3. PDDL planner",
                ],
            }
        )
        + "\n"
    )
    args = ["search", QUESTION, "--index", str(index / "idx"), "-r", "multiquery"]
    res = runner.invoke(
        app,
        [
            *args,
            "--base",
            "bm25",
            "--queries-from",
            str(rec),
            "--show-queries",
            "-k",
            "3",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    hits = json.loads(res.stdout)
    assert {h["source"].rsplit("/", 1)[-1] for h in hits} == {"cot.txt", "tot.txt", "pddl.txt"}
    for q in ("query [original, w=1]: " + QUESTION, "query [replay, w=1]: PDDL planner"):
        assert q in res.stderr
    res = runner.invoke(
        app,
        [
            "ask",
            QUESTION,
            "--index",
            str(index / "idx"),
            "-r",
            "multiquery",
            "--queries-from",
            str(rec),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["citations"]
    # multiquery flags without --retriever multiquery, a missing replay file, a bad generator
    res = runner.invoke(app, ["search", QUESTION, "--index", str(index / "idx"), "-r", "hybrid",
                                 "--base", "bm25"])
    assert res.exit_code == 2 and "only for --retriever multiquery" in _flat(res.output)
    res = runner.invoke(app, [*args, "--queries-from", str(index / "missing.jsonl")])
    assert res.exit_code == 2 and "no such file" in _flat(res.output)
    res = runner.invoke(app, [*args, "--query-generator", "bogus"])
    assert res.exit_code == 2 and "unknown query generator" in _flat(res.output)

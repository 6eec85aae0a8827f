"""Answer support check (issue 17 item 8, contract 9): an LLM answer citing no passage is
flagged ``"supported": false`` and warned about on the CLI."""

from __future__ import annotations

import json

import pytest
from tests.generate.openai_server import FakeOpenAI
from typer.testing import CliRunner

from aspectrag.cli.main import app
from aspectrag.generate.citations import check_citations, mark_support
from aspectrag.generate.run import answer_question
from aspectrag.index import Index
from aspectrag.types import Answer, Chunk, Hit


def _hits(n: int = 2) -> list[Hit]:
    return [Hit(Chunk(f"d{i}#0", f"d{i}", f"/d{i}.txt", "", 0, f"text {i}", 0, 6), 1.0, i + 1)
            for i in range(n)]


@pytest.mark.parametrize(("text", "supported"), [
    ("Enzymes speed up reactions [1].", True),
    ("Enzymes speed up reactions [2, 9].", True),  # one valid citation is enough
    ("Enzymes speed up reactions.", False),  # no citation at all
    ("Enzymes speed up reactions [7].", False),  # only a number that was not given
])
def test_mark_support(text, supported):
    checked = check_citations(text, _hits())
    ans = mark_support(Answer(checked.text, "llm", checked.citations))
    assert ans.extras["supported"] is supported
    assert ans.to_dict()["supported"] is supported


def test_answer_question_marks_support():
    class NoCite:
        name = "nocite"

        def generate(self, question, hits):  # type: ignore[no-untyped-def]
            return Answer("Forty-two.", "llm", [])

    assert answer_question(NoCite(), "q?", _hits()).extras["supported"] is False


@pytest.fixture(scope="module")
def small_index(tmp_path_factory, embedder) -> str:
    root = tmp_path_factory.mktemp("support")
    (root / "enzymes.txt").write_text("Enzymes are biological catalysts that speed up chemical "
                                      "reactions without being consumed.\n")
    Index(root / "idx", embedder=embedder).ingest([root / "enzymes.txt"])
    return str(root / "idx")


@pytest.mark.parametrize(("reply", "supported"), [
    ("Enzymes are catalysts [1].", True), ("They are magic.", False), ("Magic [5].", False)])
@pytest.mark.parametrize("as_json", [True, False])
def test_cli_flags_unsupported_llm_answers(small_index, monkeypatch, reply, supported, as_json):
    with FakeOpenAI(lambda b: {"text": reply}) as srv:
        monkeypatch.setenv("ASPECTRAG_LLM_BASE_URL", srv.base_url)
        monkeypatch.setenv("ASPECTRAG_LLM_MODEL", "tiny")
        args = ["ask", "What do enzymes do?", "--index", small_index, "-k", "1",
                "--llm", "openai:tiny"] + (["--json"] if as_json else [])
        res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    if as_json:
        assert json.loads(res.stdout)["supported"] is supported
    warned = "warning: the answer cites none of the retrieved passages" in res.stderr
    assert warned is not supported

"""CLI edges (issue 17 item 5): bad -k, unsearchable queries, a missing --index, symlink loops:
one error line, exit 2 (1 for a failed file), never a traceback, never an index created."""

from __future__ import annotations

import pytest
from tests.fakes import HashEmbedder
from typer.testing import CliRunner

from aspectrag.cli.main import app
from aspectrag.index import Index

runner = CliRunner()


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-validation")
    (root / "a.txt").write_text("Enzymes are biological catalysts that speed up reactions.\n")
    Index(root / "idx", embedder=HashEmbedder()).ingest([root / "a.txt"])
    return str(root / "idx")


def _one_error_line(res, code: int = 2) -> str:
    assert res.exit_code == code, res.output
    assert "Traceback" not in res.output and res.exception is None or isinstance(
        res.exception, SystemExit)
    lines = res.output.strip().splitlines()
    assert len(lines) == 1, res.output
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.parametrize("k", ["-1", "0", "-3"])
@pytest.mark.parametrize("command", ["search", "ask"])
def test_k_below_one_is_one_line(index, command, k):
    line = _one_error_line(runner.invoke(app, [command, "enzymes", "--index", index, "-k", k]))
    assert "k must be >= 1" in line and f"got {k}" in line


@pytest.mark.parametrize("query", ["", "😀😀", "the of and", "?!"])
@pytest.mark.parametrize("command", ["search", "ask"])
def test_unsearchable_query_is_one_line(index, command, query):
    line = _one_error_line(runner.invoke(app, [command, query, "--index", index]))
    assert ("query" if command == "search" else "question") in line


@pytest.mark.parametrize("args", [["search", "enzymes"], ["ask", "what are enzymes?"],
                                  ["stats"], ["remove", "a.txt"], ["heads"]])
def test_missing_index_is_one_line_and_not_created(tmp_path, args):
    typo = tmp_path / "idxx"
    line = _one_error_line(runner.invoke(app, [*args, "--index", str(typo)]))
    assert f"no index at {typo}; run `aspectrag ingest ... --index {typo}` first" in line
    assert not typo.exists()


def test_symlink_loop_given_to_ingest_is_one_line(tmp_path):
    loop = tmp_path / "loop.txt"
    loop.symlink_to(loop)
    res = runner.invoke(app, ["ingest", str(loop), "--index", str(tmp_path / "idx")])
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output and "RuntimeError" not in res.output
    # (rich wraps the ingest summary lines at 80 columns under CliRunner: compare unwrapped)
    assert f"{loop}: symlink loop" in " ".join(res.output.replace(": \n", ": ").split())

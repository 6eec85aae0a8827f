"""``aspectrag check`` / ``aspectrag repair`` and one-line store errors on the CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aspectrag.cli.main import app

runner = CliRunner()


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("admin")
    docs = root / "docs"
    docs.mkdir()
    (docs / "rome.txt").write_text("The Roman Republic was governed by two consuls.")
    (docs / "chem.txt").write_text("Catalysts speed up chemical reactions.")
    res = runner.invoke(app, ["ingest", str(docs), "--index", str(root / "idx")])
    assert res.exit_code == 0, res.output
    return root / "idx"


def test_check_ok_then_damaged_derived_index_then_repair(index):
    res = runner.invoke(app, ["check", "--index", str(index), "--json"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert rep["ok"] and any("embedder" in n for n in rep["notes"])
    (index / "derived" / "vec-dense.npz").write_bytes(b"not a zip file")
    res = runner.invoke(app, ["check", "--index", str(index), "--no-embedder"])
    assert res.exit_code == 1 and "'dense'" in res.output
    assert f"aspectrag repair --index {index}" in res.output
    res = runner.invoke(app, ["repair", "--index", str(index)])
    assert res.exit_code == 0, res.output
    assert "rebuilt the derived indexes" in res.output and "repaired" in res.output
    assert runner.invoke(app, ["check", "--index", str(index), "--no-embedder"]).exit_code == 0
    res = runner.invoke(app, ["search", "consuls", "--index", str(index), "-k", "1", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)[0]["source"].endswith("rome.txt")


def test_check_of_a_missing_index_is_one_line(tmp_path):
    res = runner.invoke(app, ["check", "--index", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "no index here" in res.output
    assert not (tmp_path / "nope").exists()


def test_a_damaged_database_gives_one_line_naming_the_next_step(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "index.sqlite").write_bytes(os.urandom(16384))
    for cmd in (["search", "x", "--index", str(bad), "-r", "bm25"],
                ["stats", "--index", str(bad)],
                ["ingest", str(tmp_path), "--index", str(bad)]):
        res = runner.invoke(app, cmd)
        assert res.exit_code == 2, (cmd, res.output)
        assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1
        assert f"aspectrag check --index {bad}" in res.output, res.output
    res = runner.invoke(app, ["check", "--index", str(bad)])
    assert res.exit_code == 1 and "cannot be repaired" in res.output
    res = runner.invoke(app, ["repair", "--index", str(bad)])
    assert res.exit_code == 1 and "cannot repair" in res.output


def test_remove_no_wait_while_another_writer_holds_the_lock(index):
    from aspectrag.errors import IndexBusyError  # noqa: F401  (the error the CLI maps)
    from aspectrag.store.sqlite import SQLiteStore

    holder = SQLiteStore(index)
    with holder.write_lock():
        res = runner.invoke(app, ["remove", "/nowhere", "--index", str(index), "--no-wait"])
        assert res.exit_code == 1 and "not in the index" in res.output  # nothing to remove
        src = next(s for s in holder.sources() if s.endswith("chem.txt"))
        res = runner.invoke(app, ["remove", src, "--index", str(index), "--no-wait"])
        assert res.exit_code == 2 and "busy" in res.output and f"pid {os.getpid()}" in res.output

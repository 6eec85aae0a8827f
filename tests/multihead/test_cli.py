"""``aspectrag heads`` and ``aspectrag eval mrag`` command lines (tiny random BERT index)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from aspectrag.cli.main import app


@pytest.fixture(scope="module")
def tiny_index(tmp_path_factory):  # type: ignore[no-untyped-def]
    from tests.fakes import tiny_bert_folder

    from aspectrag.ingest.pipeline import ingest
    from aspectrag.multihead.embedder import MultiHeadEmbedder
    from aspectrag.multihead.stats import HeadStatsTracker
    from aspectrag.store.sqlite import SQLiteStore

    root = tmp_path_factory.mktemp("heads_cli")
    model = tiny_bert_folder(root / "model", seed=2)
    docs = root / "docs"
    docs.mkdir()
    for i, text in enumerate(
        [
            "Cakes are baked.",
            "Rome fought Gaul.",
            "Ships carry freight.",
            "Oaks grow slowly.",
            "Chess has a queen.",
        ]
    ):
        (docs / f"d{i}.txt").write_text(text)

    store = SQLiteStore(root / "index")
    emb = MultiHeadEmbedder(str(model))
    ingest(store, emb, [str(docs)], progress=False, hooks=[HeadStatsTracker(store, emb)])
    return root / "index"


def test_heads_command_table_json_and_plot(tiny_index, tmp_path) -> None:  # type: ignore[no-untyped-def]
    runner = CliRunner()
    png = tmp_path / "heads.png"
    res = runner.invoke(app, ["heads", "--index", str(tiny_index), "--plot", str(png), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout.strip().splitlines()[-1])
    assert data["chunks"] == 5 and len(data["heads"]) == 4
    assert data["config"]["pooling"] == "cls"
    shares = [h["vote_share"] for h in data["heads"]]
    assert abs(sum(shares) - 1) < 1e-6 and all(h["importance"] > 0 for h in data["heads"])
    for h in data["heads"]:
        assert h["importance"] == pytest.approx(h["mean_norm"] * h["mean_pairwise_distance"])
    assert png.read_bytes()[:4] == b"\x89PNG"
    table = runner.invoke(app, ["heads", "--index", str(tiny_index), "--recompute"])
    assert table.exit_code == 0 and "s_i" in table.stdout
    recomputed = np.array([h["importance"] for h in data["heads"]])
    again = json.loads(
        runner.invoke(app, ["heads", "--index", str(tiny_index), "--json"])
        .stdout.strip()
        .splitlines()[-1]
    )
    np.testing.assert_allclose([h["importance"] for h in again["heads"]], recomputed, rtol=1e-6)


def test_heads_command_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    res = CliRunner().invoke(app, ["heads", "--index", str(tmp_path / "none")])
    assert res.exit_code == 2 and "no index" in " ".join(res.output.split())


def test_eval_mrag_bad_arguments(tmp_path) -> None:  # type: ignore[no-untyped-def]
    runner = CliRunner()
    res = runner.invoke(app, ["eval", "mrag", "imdb", "--data", str(tmp_path)])
    assert res.exit_code == 2 and "choose one of" in " ".join(res.output.split())
    res = runner.invoke(app, ["eval", "mrag", "wikipedia", "--data", str(tmp_path)])
    assert res.exit_code == 2 and "missing" in " ".join(res.output.split())

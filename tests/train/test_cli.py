"""``aspectrag train embedder`` / ``train merge`` end to end on a tiny model."""

from __future__ import annotations

import json

import numpy as np
from tests.train.helpers import toy_pairs
from typer.testing import CliRunner

from aspectrag.cli.main import app
from aspectrag.embed.hf import HFEmbedder


def test_train_and_merge_cli(tiny_bert, tmp_path) -> None:  # type: ignore[no-untyped-def]
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        "".join(json.dumps({"query": p.query, "positive": p.positive}) + "\n" for p in toy_pairs())
    )
    runner = CliRunner()
    ad = tmp_path / "adapter"
    res = runner.invoke(app, [
        "train", "embedder", str(ad), "--pairs", str(pairs), "--base-model", str(tiny_bert),
        "--r", "4", "--alpha", "8", "--epochs", "1", "--batch-size", "4", "--max-tokens", "32",
        "--hard-negatives", "1",
    ])  # fmt: skip
    assert res.exit_code == 0, res.output
    meta = json.loads((ad / "training.json").read_text())
    assert meta["settings"]["r"] == 4 and meta["hard_negatives_per_pair"] == 1
    assert meta["steps"] >= 2 and meta["data"].startswith("pairs:")
    assert (ad / "loss_curve.png").is_file()
    res = runner.invoke(app, ["train", "merge", str(ad), str(tmp_path / "merged")])
    assert res.exit_code == 0, res.output
    a = HFEmbedder(str(tiny_bert), adapter=str(ad)).encode(["a query"])["dense"]
    b = HFEmbedder(str(tmp_path / "merged")).encode(["a query"])["dense"]
    np.testing.assert_allclose(a, b, atol=1e-5)
    res = runner.invoke(app, ["train", "embedder", str(tmp_path / "x")])
    assert res.exit_code == 2 and "exactly one of --pairs" in " ".join(res.output.split())
    res = runner.invoke(app, ["train", "merge", str(tmp_path), str(tmp_path / "m2")])
    assert res.exit_code == 2 and "not a LoRA adapter folder" in " ".join(res.output.split())

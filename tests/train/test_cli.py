"""``aspectrag train embedder`` / ``train merge`` end to end on a tiny model."""

from __future__ import annotations

import json

import numpy as np
from tests.train.helpers import toy_pairs
from typer.testing import CliRunner

from aspectrag.cli.main import app
from aspectrag.embed.hf import HFEmbedder


def _train_tiny(tiny_bert, tmp_path, *extra: str):  # type: ignore[no-untyped-def]
    """Runs ``train embedder`` on the toy pairs with a tiny model; returns (result, adapter)."""
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        "".join(json.dumps({"query": p.query, "positive": p.positive}) + "\n" for p in toy_pairs())
    )
    ad = tmp_path / "adapter"
    res = CliRunner().invoke(app, [
        "train", "embedder", str(ad), "--pairs", str(pairs), "--base-model", str(tiny_bert),
        "--r", "4", "--alpha", "8", "--epochs", "1", "--batch-size", "4", "--max-tokens", "32",
        *extra,
    ])  # fmt: skip
    return res, ad


def test_train_and_merge_cli(tiny_bert, tmp_path) -> None:  # type: ignore[no-untyped-def]
    res, ad = _train_tiny(tiny_bert, tmp_path, "--hard-negatives", "1")
    runner = CliRunner()
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


def test_resample_negatives_mines_one_set_per_epoch(tiny_bert, tmp_path) -> None:  # type: ignore[no-untyped-def]
    res, ad = _train_tiny(tiny_bert, tmp_path, "--hard-negatives", "1", "--epochs", "3",
                          "--negative-depth", "5", "--resample-negatives")  # fmt: skip
    assert res.exit_code == 0, res.output
    meta = json.loads((ad / "training.json").read_text())
    assert meta["hard_negatives_per_pair"] == 3 and meta["hard_negatives_per_step"] == 1
    assert meta["settings"]["negatives_per_step"] == 1
    (tmp_path / "fixed").mkdir()
    res, ad = _train_tiny(tiny_bert, tmp_path / "fixed", "--hard-negatives", "1", "--epochs", "2",
                          "--negative-depth", "5", "--fixed-negatives")  # fmt: skip
    assert res.exit_code == 0, res.output
    meta = json.loads((ad / "training.json").read_text())
    assert meta["hard_negatives_per_pair"] == 1 and meta["settings"]["negatives_per_step"] == 0


def test_dev_fraction_holds_out_queries_and_records_dev_metrics(tiny_bert, tmp_path) -> None:  # type: ignore[no-untyped-def]
    n_queries = len({p.query for p in toy_pairs()})
    res, ad = _train_tiny(tiny_bert, tmp_path, "--dev-fraction", "0.25")
    runner = CliRunner()
    pairs = tmp_path / "pairs.jsonl"
    assert res.exit_code == 0, res.output
    meta = json.loads((ad / "training.json").read_text())
    dev = meta["dev"]
    assert dev["queries"] == round(0.25 * n_queries) >= 1
    assert meta["pairs"] == len(toy_pairs()) - dev["queries"]  # one pair per toy query
    assert "minus" in meta["data"] and dev["corpus"] > dev["queries"]
    for side in ("before", "after"):
        assert set(dev[side]) == {"ndcg@10", "recall@10"}
        assert all(0.0 <= v <= 1.0 for v in dev[side].values())
    assert "dev (" in " ".join(res.output.split())
    res = runner.invoke(app, ["train", "embedder", str(tmp_path / "y"), "--pairs", str(pairs),
                              "--dev-fraction", "1.5"])  # fmt: skip
    assert res.exit_code == 2 and "--dev-fraction" in " ".join(res.output.split())


def test_split_by_query_and_dev_set_metrics() -> None:
    from aspectrag.train.data import TrainPair
    from aspectrag.train.dev import DevSet, split_by_query

    pairs = [TrainPair(f"q{i % 5}", f"p{i}", [f"n{i}"]) for i in range(10)]
    train, dev = split_by_query(pairs, 0.4, seed=1)
    dq = {p.query for p in dev}
    assert len(dq) == 2 and not dq & {p.query for p in train} and len(train) + len(dev) == 10
    assert split_by_query(pairs, 0.4, seed=1) == (train, dev)  # seeded
    ds = DevSet.from_pairs(dev)
    assert len(ds.corpus) == 8  # 4 positives + 4 negatives
    # perfect embeddings: each query is its positives' direction -> nDCG@10 = recall@10 = 1
    q = np.eye(len(ds.corpus) + len(ds.queries), dtype=np.float32)[: len(ds.queries)]
    d = np.zeros((len(ds.corpus), q.shape[1]), np.float32)
    for qi, rel in ds.qrels.items():
        for j in rel:
            d[j, qi] = 1.0
    for j in range(len(ds.corpus)):
        if not d[j].any():
            d[j, len(ds.queries) + j] = 1.0
    m = ds.evaluate(q, d)
    assert m["ndcg@10"] == 1.0 and m["recall@10"] == 1.0

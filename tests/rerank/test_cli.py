"""``--rerank`` on search/ask, ``aspectrag rerank cache`` and ``--embedder-adapter`` via the CLI."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from aspectrag.cli.main import app

DOCS = {
    "eiffel.txt": "The Eiffel Tower is a wrought-iron lattice tower in Paris, France.",
    "banana.txt": "Bananas are a fruit rich in potassium and vitamin B6.",
    "leaf.txt": "Photosynthesis in leaves turns light into chemical energy.",
}


def _flat(s: str) -> str:
    return " ".join(s.split())


def test_search_rerank_cache_and_adapter_refusal(tmp_path) -> None:  # type: ignore[no-untyped-def]
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text)
    idx = str(tmp_path / "idx")
    runner = CliRunner()
    assert runner.invoke(app, ["ingest", str(docs), "--index", idx]).exit_code == 0
    q = ["search", "which fruit has potassium", "--index", idx, "-k", "2", "--json"]
    res = runner.invoke(app, [*q, "--rerank", "late-interaction", "--rerank-depth", "3"])
    assert res.exit_code == 0, res.output
    hits = json.loads(res.stdout)
    assert len(hits) == 2 and hits[0]["source"].endswith("banana.txt")
    res = runner.invoke(app, ["rerank", "cache", "--index", idx])
    assert res.exit_code == 0 and "3 chunks encoded" in _flat(res.output), res.output
    # ingest-time mode: only the new document's chunk is encoded
    (docs / "moon.txt").write_text("The Moon orbits the Earth every 27 days.")
    res = runner.invoke(app, ["ingest", str(docs), "--index", idx, "--token-cache"])
    assert res.exit_code == 0 and "1 chunks encoded" in _flat(res.output), res.output
    assert "cache" in _flat(res.output) and "4 chunks" in _flat(res.output)
    assert (tmp_path / "idx" / "token_vectors.sqlite").is_file()
    res = runner.invoke(app, [*q, "--rerank", "maxsim"])  # now served from the cache
    assert res.exit_code == 0 and json.loads(res.stdout)[0]["source"].endswith("banana.txt")
    res = runner.invoke(app, [*q, "--rerank", "cross-encoder"])
    assert res.exit_code == 2 and "--rerank-model PATH" in _flat(res.output)
    res = runner.invoke(app, [*q, "--rerank", "nope"])
    assert res.exit_code == 2 and "unknown reranker 'nope'" in _flat(res.output)
    res = runner.invoke(app, [*q, "--embedder-adapter", str(docs)])
    assert res.exit_code == 2 and "not a LoRA adapter folder" in _flat(res.output)
    # an index built without the adapter refuses to be searched with it
    from transformers import AutoModel

    from aspectrag.embed.hf import default_model_path
    from aspectrag.train.lora import LoraSettings, make_lora_model

    make_lora_model(
        AutoModel.from_pretrained(default_model_path()), LoraSettings()
    ).save_pretrained(str(tmp_path / "adapter"))
    res = runner.invoke(app, [*q, "--embedder-adapter", str(tmp_path / "adapter")])
    assert res.exit_code == 2 and "built with embedder 'hf:" in _flat(res.output)
    assert "+lora:adapter@" in _flat(res.output)
    # an index built with the adapter keeps per-head vectors: multi-head search works on it
    idx2 = str(tmp_path / "idx-lora")
    ad = ["--embedder-adapter", str(tmp_path / "adapter")]
    assert runner.invoke(app, ["ingest", str(docs), "--index", idx2, *ad]).exit_code == 0
    q2 = ["search", "which fruit has potassium", "--index", idx2, "-k", "2", "--json", *ad]
    res = runner.invoke(app, [*q2, "--retriever", "multihead"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)[0]["source"].endswith("banana.txt")

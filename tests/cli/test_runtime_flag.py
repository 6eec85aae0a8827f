"""``--runtime`` on ingest / search / ask / eval: mapped onto ``embedder.runtime`` at the edge;
an index keeps the runtime it was built with (another one named is refused)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aspectrag.cli.main import app

runner = CliRunner()
VAR = "ASPECTRAG_EMBEDDER_RUNTIME"


@pytest.fixture
def clean_runtime(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The flag writes the setting's variable: start unset and restore it after the test."""
    monkeypatch.setenv(VAR, "")  # empty = unset for the settings
    return monkeypatch


@pytest.mark.parametrize("cmd", [["search", "q"], ["ask", "q"], ["ingest", "x"],
                                 ["eval", "beir", "x"], ["eval", "mrag", "wikipedia"]])
def test_unknown_runtime_is_one_error_line(cmd: list[str], clean_runtime, tmp_path) -> None:  # type: ignore[no-untyped-def]
    res = runner.invoke(app, [*cmd, "--index", str(tmp_path / "i"), "--runtime", "tensorrt"]
                        if cmd[0] != "eval" else [*cmd, "--runtime", "tensorrt"])
    assert res.exit_code == 2, res.output
    assert "--runtime tensorrt: unknown runtime; use one of torch, onnx-int8, onnx-fp32, auto" \
        in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_flag_outranks_the_environment_and_reaches_the_setting(clean_runtime) -> None:  # type: ignore[no-untyped-def]
    from aspectrag.cli.common import edge_setup
    from aspectrag.errors import ConfigError
    from aspectrag.settings import get_settings, use_flag

    clean_runtime.setenv(VAR, "torch")
    edge_setup("onnx-fp32")
    assert get_settings().embedder.runtime == "onnx-fp32"
    edge_setup(None)  # no flag: nothing changes
    assert get_settings().embedder.runtime == "onnx-fp32"
    with pytest.raises(ConfigError, match="not the environment variable"):
        use_flag("ASPECTRAG_NO_SUCH_SETTING", "x")


def test_eval_beir_cache_folder_is_per_runtime(clean_runtime, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from aspectrag.evaluate.beir import default_eval_index

    clean_runtime.setenv("ASPECTRAG_CACHE_DIR", str(tmp_path))
    torch_idx = default_eval_index(tmp_path / "scifact")
    assert torch_idx.parent == tmp_path / "beir" and torch_idx.name.startswith("scifact-")
    assert default_eval_index(tmp_path / "scifact", "torch") == torch_idx
    assert default_eval_index(tmp_path / "scifact", "onnx-int8") == torch_idx.with_name(
        torch_idx.name + "-onnx-int8")


def test_adapter_index_follows_its_recorded_runtime(clean_runtime, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from aspectrag.cli.common import adapter_embedder_factory

    ad = tmp_path / "ad"
    ad.mkdir()
    (ad / "adapter_config.json").write_text("{}")
    (ad / "adapter_model.safetensors").write_bytes(b"w")

    class Store:
        def __init__(self, recorded: str | None) -> None:
            self.recorded = recorded

        def get_meta(self, key: str) -> str | None:
            return self.recorded if key == "embedder" else None

    from aspectrag.embed import factory
    from aspectrag.errors import ConfigError

    # a torch adapter index opens with torch whatever the default for new indexes is
    clean_runtime.setattr(factory, "DEFAULT_RUNTIME", "onnx-int8")
    e = adapter_embedder_factory(Store("hf:m+lora:ad@0123456789ab"), ad)()
    assert type(e).__name__ == "MultiHeadEmbedder"
    assert adapter_embedder_factory(Store(None), ad)().runtime == "onnx-int8"
    clean_runtime.setenv(VAR, "onnx-int8")  # the setting names another runtime: refused
    with pytest.raises(ConfigError, match="differs from the runtime 'torch'"):
        adapter_embedder_factory(Store("hf:m+lora:ad@0123456789ab"), ad)()
    clean_runtime.setenv(VAR, "")
    e = adapter_embedder_factory(Store("hf:m+lora:ad@0123456789ab@onnx-fp32"), ad)()
    assert type(e).__name__ == "OnnxMultiHeadEmbedder" and e.runtime == "onnx-fp32"
    clean_runtime.setenv(VAR, "onnx-fp32")  # a new index: the setting
    assert adapter_embedder_factory(Store(None), ad)().runtime == "onnx-fp32"


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> str:  # type: ignore[no-untyped-def]
    from tests.fakes import tiny_bert_folder

    return str(tiny_bert_folder(tmp_path_factory.mktemp("tiny_bert_runtime"), seed=3))


def test_ingest_with_runtime_then_search_and_ask_follow_it(  # type: ignore[no-untyped-def]
    clean_runtime, tiny_bert: str, tmp_path: Path
) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from aspectrag.index import Index

    clean_runtime.setenv("ASPECTRAG_EMBEDDER", tiny_bert)
    clean_runtime.setenv("ASPECTRAG_CACHE_DIR", str(tmp_path / "cache"))
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "rome.txt").write_text("The Roman Republic was governed by two consuls.\n")
    (docs / "chem.txt").write_text("Enzymes are biological catalysts.\n")
    index = str(tmp_path / "idx")
    res = runner.invoke(app, ["ingest", str(docs), "--index", index, "--runtime", "onnx-fp32"])
    assert res.exit_code == 0, res.output
    assert Index(index).store.get_meta("embedder").endswith("@onnx-fp32")
    assert (tmp_path / "cache" / "onnx").is_dir()  # the export the flag asked for

    clean_runtime.setenv(VAR, "")  # no flag, no setting: the recorded runtime
    res = runner.invoke(app, ["search", "consuls", "--index", index, "-r", "dense", "--json"])
    assert res.exit_code == 0, res.output
    assert len(json.loads(res.stdout)) == 2
    res = runner.invoke(app, ["ask", "What are enzymes?", "--index", index, "--runtime",
                              "onnx-fp32", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["citations"]

    res = runner.invoke(app, ["search", "consuls", "--index", index, "--runtime", "torch"])
    assert res.exit_code == 2
    assert "differs from the runtime 'onnx-fp32' this index was built with" in res.output
    clean_runtime.setenv(VAR, "")
    res = runner.invoke(app, ["ingest", str(docs), "--index", index, "--runtime", "onnx-int8"])
    assert res.exit_code == 2 and "re-ingest into a new index" in res.output

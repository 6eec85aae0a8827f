import pytest
from tests.generate.helpers import BagOfWordsEmbedder

from aspectrag.errors import ConfigError
from aspectrag.generate.extractive import ExtractiveGenerator
from aspectrag.generate.factory import build_generator
from aspectrag.generate.openai_chat import OpenAIGenerator


def test_default_is_extractive_without_llm_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ASPECTRAG_LLM_BASE_URL", raising=False)
    monkeypatch.delenv("ASPECTRAG_LLM_MODEL", raising=False)
    assert isinstance(build_generator(None, BagOfWordsEmbedder()), ExtractiveGenerator)


def test_default_is_openai_with_llm_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASPECTRAG_LLM_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("ASPECTRAG_LLM_MODEL", "m1")
    g = build_generator(None, BagOfWordsEmbedder())
    assert isinstance(g, OpenAIGenerator) and g.model == "m1" and g.name == "openai:m1"
    g2 = build_generator("openai:m2", None, timeout=3)
    assert isinstance(g2, OpenAIGenerator) and g2.model == "m2" and g2.timeout == 3
    assert g2.base_url == "http://127.0.0.1:9/v1"


def test_bad_specs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ASPECTRAG_LLM_MODEL", raising=False)
    with pytest.raises(ConfigError, match="expected extractive"):
        build_generator("gpt4", BagOfWordsEmbedder())
    with pytest.raises(ConfigError, match="ASPECTRAG_LLM_MODEL"):
        build_generator("openai", None)
    with pytest.raises(ConfigError, match="embedder"):
        build_generator("extractive", None)
    with pytest.raises(ConfigError, match="--decoding"):
        build_generator("extractive", BagOfWordsEmbedder(), decoding="rag-token")
    with pytest.raises(ConfigError, match="--decoding"):
        build_generator("extractive", BagOfWordsEmbedder(), decoding="beam")
    with pytest.raises(ConfigError, match="hf:PATH"):
        build_generator("hf:", None)

"""``build_reranker`` / ``with_reranker``: names, errors, cache pick-up."""

from __future__ import annotations

import pytest
from tests.fakes import HashEmbedder
from tests.rerank.helpers import ListRetriever, hits_of

from aspectrag.errors import ConfigError
from aspectrag.rerank import RERANKERS, RerankingRetriever, build_reranker, with_reranker
from aspectrag.rerank.bi_encoder import BiEncoderReranker
from aspectrag.rerank.cache import CACHE_FILE, TokenVectorCache
from aspectrag.rerank.cross_encoder import CrossEncoderReranker
from aspectrag.rerank.late_interaction import LateInteractionReranker


def test_names_and_aliases(embedder, tiny_cross_encoder) -> None:  # type: ignore[no-untyped-def]
    assert RERANKERS == ("bi-encoder", "cross-encoder", "late-interaction")
    for name in ("late-interaction", "maxsim", "colbert"):
        assert isinstance(build_reranker(name, embedder=embedder), LateInteractionReranker)
    assert isinstance(build_reranker("bi-encoder", embedder=embedder), BiEncoderReranker)
    ce = build_reranker("ce", model_path=tiny_cross_encoder)
    assert isinstance(ce, CrossEncoderReranker)
    with pytest.raises(ConfigError, match="--rerank-model"):
        build_reranker("cross-encoder")
    with pytest.raises(ValueError, match="choose one of bi-encoder, cross-encoder"):
        build_reranker("monot5")


def test_with_reranker(embedder, tmp_path) -> None:  # type: ignore[no-untyped-def]
    first = ListRetriever(hits_of(["a", "b"]))
    assert with_reranker(first, None) is first
    r = with_reranker(first, "late-interaction", depth=7, embedder=embedder, index_path=tmp_path)
    assert isinstance(r, RerankingRetriever) and r.depth == 7
    assert r.reranker.cache is None and not (tmp_path / CACHE_FILE).exists()  # no cache created
    TokenVectorCache(
        tmp_path / CACHE_FILE, embedder.name, embedder.dim, "skip_punctuation=0"
    ).close()
    r = with_reranker(first, "maxsim", embedder=embedder, index_path=tmp_path)
    assert r.reranker.cache is not None  # an existing cache is used
    with pytest.raises(ConfigError, match="needs a Hugging Face embedder"):
        with_reranker(first, "late-interaction", embedder=HashEmbedder())

"""Builds a reranker from its name: the one place that maps CLI/config names to classes."""

from __future__ import annotations

from pathlib import Path

from aspectrag.embed.hf import HFEmbedder
from aspectrag.errors import ConfigError
from aspectrag.rerank.base import Reranker

RERANKERS = ("bi-encoder", "cross-encoder", "late-interaction")
_ALIASES = {"maxsim": "late-interaction", "colbert": "late-interaction", "ce": "cross-encoder"}


def build_reranker(
    name: str,
    *,
    embedder: HFEmbedder | None = None,
    model_path: str | Path | None = None,
    cache_path: str | Path | None = None,
    batch_size: int = 16,
) -> Reranker:
    """Instantiate reranker ``name``.

    Args:
        name: ``late-interaction`` (aliases ``maxsim``, ``colbert``), ``cross-encoder`` (alias
            ``ce``) or ``bi-encoder``.
        embedder: the index's embedder, for late interaction and bi-encoder (default: a new
            ``HFEmbedder``, the bundled MiniLM).
        model_path: the cross-encoder's model folder (required for ``cross-encoder``).
        cache_path: token-vector cache file for late interaction (created if missing; None: no
            cache, token vectors computed on the fly).
        batch_size: cross-encoder pairs per forward pass.

    Raises:
        ValueError: unknown name (the message lists the choices).
        ConfigError: ``cross-encoder`` without ``model_path``.
        aspectrag.errors.IndexMismatchError: the cache belongs to another embedder.
    """
    key = _ALIASES.get(name, name)
    if key == "cross-encoder":
        if model_path is None:
            raise ConfigError(
                "the cross-encoder reranker needs a model folder: --rerank-model PATH "
                "(a Hugging Face sequence-classification model)"
            )
        from aspectrag.rerank.cross_encoder import CrossEncoderReranker

        return CrossEncoderReranker(model_path, batch_size=batch_size)
    if key == "late-interaction":
        from aspectrag.rerank.cache import TokenVectorCache
        from aspectrag.rerank.late_interaction import LateInteractionReranker

        emb = embedder or HFEmbedder()
        r = LateInteractionReranker(emb)
        if cache_path is not None:
            r.cache = TokenVectorCache(cache_path, emb.name, emb.dim, r.cache_config)
        return r
    if key == "bi-encoder":
        from aspectrag.rerank.bi_encoder import BiEncoderReranker

        return BiEncoderReranker(embedder or HFEmbedder())
    raise ValueError(f"unknown reranker {name!r}; choose one of {', '.join(RERANKERS)}")

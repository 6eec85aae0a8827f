"""Builds a reranker from its name: the one place that maps CLI/config names to classes."""

from __future__ import annotations

from pathlib import Path

from aspectrag.embed.base import Embedder, TransformerEmbedder
from aspectrag.errors import ConfigError
from aspectrag.rerank.base import Reranker, RerankingRetriever
from aspectrag.rerank.cache import CACHE_FILE
from aspectrag.retrieve.base import Retriever

RERANKERS = ("bi-encoder", "cross-encoder", "late-interaction")
_ALIASES = {"maxsim": "late-interaction", "colbert": "late-interaction", "ce": "cross-encoder"}


def build_reranker(
    name: str,
    *,
    embedder: TransformerEmbedder | None = None,
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

        emb = embedder or _default_embedder()
        r = LateInteractionReranker(emb)
        if cache_path is not None:
            r.cache = TokenVectorCache(cache_path, emb.name, emb.dim, r.cache_config)
        return r
    if key == "bi-encoder":
        from aspectrag.rerank.bi_encoder import BiEncoderReranker

        return BiEncoderReranker(embedder or _default_embedder())
    raise ValueError(f"unknown reranker {name!r}; choose one of {', '.join(RERANKERS)}")


def with_reranker(
    first_stage: Retriever,
    name: str | None,
    *,
    depth: int = 100,
    embedder: Embedder | None = None,
    model_path: str | Path | None = None,
    index_path: str | Path | None = None,
) -> Retriever:
    """``first_stage`` wrapped in a ``RerankingRetriever`` (unchanged when ``name`` is None):
    what ``--rerank NAME --rerank-depth N [--rerank-model PATH]`` does on search/ask/eval.

    Late interaction uses the index's token-vector cache ``<index_path>/token_vectors.sqlite``
    when it exists (built by ``aspectrag rerank cache``; chunks missing from it are computed and
    added), else computes candidates' token vectors on the fly.

    Raises:
        ConfigError / ValueError: see ``build_reranker``; an embedder without a tokenizer/model.
    """
    if name is None:
        return first_stage
    emb = embedder
    if _ALIASES.get(name, name) == "cross-encoder":
        emb = None  # the cross-encoder has its own model
    elif emb is not None and not isinstance(emb, TransformerEmbedder):
        raise ConfigError(
            f"reranker {name!r} needs a Hugging Face embedder (tokenizer + model); "
            f"the index uses {emb.name!r}"
        )
    cache = None
    if index_path is not None and (Path(index_path) / CACHE_FILE).is_file():
        cache = Path(index_path) / CACHE_FILE
    reranker = build_reranker(
        name,
        embedder=emb,  # type: ignore[arg-type]
        model_path=model_path,
        cache_path=cache if _ALIASES.get(name, name) == "late-interaction" else None,
    )
    return RerankingRetriever(first_stage, reranker, depth)


def _default_embedder() -> TransformerEmbedder:
    """The bundled MiniLM (``HFEmbedder()``), when no embedder is given."""
    from aspectrag.embed.hf import HFEmbedder

    return HFEmbedder()

"""Builds the embedder from config: the one place that maps names to embedder classes."""

from __future__ import annotations

from aspectrag.embed.base import Embedder


def build_embedder(model_path: str | None = None, *, recorded: str | None = None) -> Embedder:
    """The embedder for ``model_path`` (default: bundled all-MiniLM-L6-v2).

    ``recorded`` is the embedder name stored in an existing index; it is used to pick the same
    kind of embedder (e.g. multi-head) when reopening the index.
    """
    from aspectrag.embed.hf import HFEmbedder

    return HFEmbedder(model_path)

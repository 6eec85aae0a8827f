"""Builds the embedder from config: the one place that maps names to embedder classes."""

from __future__ import annotations

from collections.abc import Callable

from aspectrag.embed.base import Embedder

#: Embedders by the name an index records (``store.get_meta("embedder")``), for embedders
#: outside this package (a plugin, a test's torch-free stand-in): ``build_embedder(recorded=
#: NAME)`` returns ``RECORDED[NAME]()``. Register with :func:`register_recorded`.
RECORDED: dict[str, Callable[[], Embedder]] = {}


def register_recorded(name: str, builder: Callable[[], Embedder]) -> None:
    """Make indexes that record embedder ``name`` open with ``builder()`` (no arguments)."""
    RECORDED[name] = builder


def heads_enabled() -> bool:
    """Per-head vectors at ingest (Multi-Head RAG): the ``embedder.heads`` setting (on unless
    ``ASPECTRAG_HEADS=0``)."""
    from aspectrag.settings import get_settings

    return get_settings().embedder.heads


def build_embedder(
    model_path: str | None = None,
    *,
    recorded: str | None = None,
    heads: bool | None = None,
    adapter: str | None = None,
) -> Embedder:
    """The embedder for ``model_path`` (default: bundled all-MiniLM-L6-v2).

    ``recorded`` is the embedder name stored in an existing index; it is used to pick the same
    kind of embedder (e.g. multi-head) when reopening the index. ``heads`` (default
    :func:`heads_enabled`) selects the :class:`~aspectrag.multihead.embedder.MultiHeadEmbedder`,
    which adds one vector space per attention head to the standard one (same ``name``).
    ``adapter`` is a LoRA adapter folder (``aspectrag train embedder``) merged into the model;
    the per-head vectors then come from the fine-tuned model too.

    Raises:
        aspectrag.errors.ConfigError: ``adapter`` is not an adapter folder (raised on first use).
    """
    if recorded in RECORDED and model_path is None and adapter is None:
        return RECORDED[recorded]()
    if heads if heads is not None else heads_enabled():
        from aspectrag.multihead.embedder import MultiHeadEmbedder

        return MultiHeadEmbedder(model_path, adapter=adapter)
    from aspectrag.embed.hf import HFEmbedder

    return HFEmbedder(model_path, adapter=adapter)

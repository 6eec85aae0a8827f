"""Builds a retriever from its name: the one place that maps CLI/config names to classes.

Other retrievers register themselves here with :func:`register`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aspectrag.embed.base import Embedder
from aspectrag.retrieve.base import Retriever
from aspectrag.store.base import Store

RetrieverFactory = Callable[..., Retriever]
_REGISTRY: dict[str, RetrieverFactory] = {}


def register(name: str, factory: RetrieverFactory) -> None:
    """Make ``build_retriever(name, ...)`` call ``factory(store, embedder, **options)``."""
    _REGISTRY[name] = factory


def available() -> list[str]:
    """Registered retriever names."""
    _load_builtins()
    return sorted(_REGISTRY)


def build_retriever(name: str, store: Store, embedder: Embedder, **options: Any) -> Retriever:
    """Instantiate the retriever ``name`` over ``store``.

    Raises:
        ValueError: unknown name (the message lists the available ones).
    """
    _load_builtins()
    if name not in _REGISTRY:
        raise ValueError(f"unknown retriever {name!r}; choose one of {', '.join(available())}")
    return _REGISTRY[name](store, embedder, **options)


def _load_builtins() -> None:
    if _REGISTRY:
        return
    from aspectrag.retrieve.bm25 import BM25Retriever
    from aspectrag.retrieve.dense import DenseRetriever
    from aspectrag.retrieve.hybrid import HybridRetriever

    register("bm25", lambda store, embedder, **o: BM25Retriever(store))
    register("dense", lambda store, embedder, **o: DenseRetriever(store, embedder))
    register("hybrid", lambda store, embedder, **o: HybridRetriever(
        store, embedder, **{k: v for k, v in o.items() if k in ("fusion", "weight", "depth")}))
    for module in _PLUGINS:
        try:
            __import__(module)
        except ImportError as e:  # a feature whose optional dependency is missing
            import logging

            logging.getLogger("aspectrag.retrieve").debug("retriever plugin %s: %s", module, e)


# Modules that call ``register`` on import (multi-query, multi-head, ...).
_PLUGINS: list[str] = ["aspectrag.multihead.retriever", "aspectrag.retrieve.multiquery"]

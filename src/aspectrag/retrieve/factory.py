"""The retriever table: every retriever name, what builds it, its options and its extra.

Built-ins and plugins are all listed up front in :data:`RETRIEVERS` (nothing registers itself
on import). An entry names its builder by import path, so listing names (``available()``)
imports nothing; building one imports its module, and an ``ImportError`` there becomes a
:class:`~aspectrag.errors.ConfigError` that names the ``pip install 'aspectrag[EXTRA]'`` to
run. Every builder declares its options (``OPTIONS`` on the class or builder function); an
option it does not declare is an error naming the valid ones. Third-party retrievers are
added with :func:`register`.

Layering: this module is a composition root: it sits above every retriever it lists (the
multi-head package included), see ``aspectrag/layers.py``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aspectrag.embed.base import Embedder
from aspectrag.errors import ConfigError
from aspectrag.retrieve.base import Retriever
from aspectrag.store.base import Store

DEFAULT_RETRIEVER = "auto"
"""The retriever used when none is named (CLI, Python API, HTTP API): routes each question to
single- or multi-aspect retrieval (``aspectrag/retrieve/auto.py``)."""

RetrieverBuilder = Callable[..., Retriever]
"""``builder(store, embedder, **options) -> Retriever``, with an ``OPTIONS`` tuple attribute."""


@dataclass(frozen=True, slots=True)
class RetrieverEntry:
    """One row of the retriever table.

    Attributes:
        name: the name users give (``-r NAME``, ``Index.search(retriever=NAME)``).
        target: ``"module:attribute"`` of the builder (a class or function called as
            ``builder(store, embedder, **preset, **options)``; its ``OPTIONS`` attribute
            lists the options a user may pass).
        summary: one line for help texts.
        preset: this entry's defaults (e.g. the paper's multi-head recipe); a declared option
            given by the user overrides them, an undeclared one (``mode``) is fixed.
        extra: the ``pip install 'aspectrag[EXTRA]'`` that provides its optional dependencies
            (None: only core dependencies).
        wraps: name of the option that names a wrapped retriever (multi-query's ``base``);
            the factory builds that retriever first (with the options this entry does not
            declare) and passes it to the builder under the same option name.
        default_base: the wrapped retriever when ``wraps`` is not given.
        encodes_queries: whether the retriever itself embeds queries (False: BM25; a wrapping
            entry encodes through its base). When True, building it starts the embedder's
            background session open if it has one (``start_preload``: the ONNX query twin).
    """

    name: str
    target: str
    summary: str = ""
    preset: Mapping[str, Any] = field(default_factory=dict)
    extra: str | None = None
    wraps: str | None = None
    default_base: str = "hybrid"
    encodes_queries: bool = True


_MH = "aspectrag.multihead.retriever:MultiHeadRetriever"
_NO_HEAD_VOTES = {"centre": False, "dense_weight": 0.0}

RETRIEVERS: dict[str, RetrieverEntry] = {
    e.name: e
    for e in [
        RetrieverEntry("bm25", "aspectrag.retrieve.bm25:BM25Retriever", "Okapi BM25",
                       encodes_queries=False),
        RetrieverEntry("dense", "aspectrag.retrieve.dense:DenseRetriever", "bi-encoder"),
        RetrieverEntry("hybrid", "aspectrag.retrieve.hybrid:HybridRetriever",
                       "BM25 + dense, convex combination or RRF"),
        RetrieverEntry("multiquery", "aspectrag.retrieve.multiquery:build_multiquery",
                       "several queries per question, fused by weighted RRF", wraps="base"),
        RetrieverEntry("auto", "aspectrag.retrieve.auto:build_auto",
                       "routes each question: single-aspect keeps hybrid's top, multi-aspect "
                       "fuses its aspect queries", wraps="base"),
        # Safe alone (issue 15): the standard embedding and BM25 each vote with the weight of
        # all 12 heads together. Development data: SciFact train nDCG@10 dense 0.683, heads +
        # dense (weight 2, "multihead-heads") 0.617, dense weight 24 0.660, this 0.702; MRAG
        # Wikipedia v1 mean weighted standard 0.487, multihead-heads 0.550, this 0.631.
        RetrieverEntry("multihead", _MH, "Multi-Head RAG voting: centred heads + dense + BM25",
                       preset={"dense_weight": 12.0, "bm25_weight": 12.0}),
        RetrieverEntry("multihead-heads", _MH,
                       "Multi-Head RAG voting: centred heads + dense (weight 2), no BM25"),
        RetrieverEntry("multihead-paper", _MH, "Multi-Head RAG as in the paper",
                       preset={"votes": "importance", **_NO_HEAD_VOTES}),
        RetrieverEntry("multihead-unweighted", _MH, "MRAG ablation: 2^-r votes",
                       preset={"votes": "unweighted", **_NO_HEAD_VOTES}),
        RetrieverEntry("multihead-distance", _MH, "MRAG ablation: 1/distance votes",
                       preset={"votes": "distance", **_NO_HEAD_VOTES}),
        # BM25 gets as many votes as all dense voters together (12 heads + standard 2);
        # measured on MRAG Wikipedia: weight 4 / 8 / 16 -> mean weighted 0.613 / 0.630 / 0.643
        # (BM25 alone 0.669)
        RetrieverEntry("multihead-bm25", _MH, "Multi-Head RAG with BM25 as a voter",
                       preset={"bm25_weight": 14.0}),
        RetrieverEntry("split", _MH, "Split RAG baseline (segments of the dense vector)",
                       preset={"mode": "split", "votes": "unweighted", "dense_weight": 0.0}),
    ]
}
"""Every retriever, built-in or plugin, by name."""


def register(entry: RetrieverEntry) -> None:
    """Add (or replace) a retriever in the table, e.g. a third-party plugin."""
    RETRIEVERS[entry.name] = entry


def available() -> list[str]:
    """Names of every retriever in the table (imports nothing)."""
    return sorted(RETRIEVERS)


def _entry(name: str) -> RetrieverEntry:
    if name not in RETRIEVERS:
        raise ValueError(f"unknown retriever {name!r}; choose one of {', '.join(available())}")
    return RETRIEVERS[name]


def load_builder(name: str) -> RetrieverBuilder:
    """Import the builder of retriever ``name``.

    Raises:
        ValueError: unknown name (the message lists the available ones).
        ConfigError: its module cannot be imported (a missing optional dependency: the message
            names the extra to install).
    """
    entry = _entry(name)
    module, _, attr = entry.target.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]
    except ImportError as e:
        missing = e.name or str(e)
        hint = (f"pip install 'aspectrag[{entry.extra}]'" if entry.extra
                else "reinstall aspectrag")
        raise ConfigError(
            f"retriever {name!r} cannot be loaded: {missing} is not installed ({hint})"
        ) from e


def options_of(name: str) -> tuple[str, ...]:
    """The options retriever ``name`` accepts (its builder's ``OPTIONS``); for a wrapping
    retriever, not counting the wrapped retriever's."""
    return tuple(getattr(load_builder(name), "OPTIONS", ()))


def build_retriever(name: str, store: Store, embedder: Embedder, **options: Any) -> Retriever:
    """Instantiate the retriever ``name`` over ``store``.

    ``options`` are the builder's declared options; for ``multiquery`` also those of its
    ``base`` retriever (passed on to it).

    Raises:
        ValueError: unknown name (the message lists the available ones).
        ConfigError: an option the retriever does not declare (the message lists the valid
            ones), or a missing optional dependency (the message names the extra).
    """
    entry = _entry(name)
    builder = load_builder(name)
    own = options_of(name)
    if entry.wraps is None:
        unknown = sorted(set(options) - set(own))
        if unknown:
            raise ConfigError(_unknown(name, unknown, own))
        if entry.encodes_queries and callable(start := getattr(embedder, "start_preload", None)):
            start()
        return builder(store, embedder, **{**entry.preset, **options})
    base = options.pop(entry.wraps, None) or entry.default_base
    if not isinstance(base, str):
        raise ConfigError(f"retriever {name!r}: option {entry.wraps!r} must name a retriever")
    if _entry(base).wraps is not None:
        raise ValueError(f"--{entry.wraps} must name another retriever (bm25, dense, hybrid, ...)")
    mine = {k: v for k, v in options.items() if k in own}
    rest = {k: v for k, v in options.items() if k not in own}
    base_opts = options_of(base)
    unknown = sorted(set(rest) - set(base_opts))
    if unknown:
        raise ConfigError(_unknown(f"{name} (base {base})", unknown, (*own, *base_opts)))
    wrapped = build_retriever(base, store, embedder, **rest)
    return builder(store, embedder, **{**entry.preset, **mine, entry.wraps: wrapped})


def _unknown(what: str, unknown: list[str], valid: tuple[str, ...]) -> str:
    names = ", ".join(repr(u) for u in unknown)
    return (f"retriever {what} has no option {names}; its options: "
            f"{', '.join(valid) if valid else '(none)'}")

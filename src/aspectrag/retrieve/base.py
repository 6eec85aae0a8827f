"""The ``Retriever`` protocol: query text -> ranked ``Hit`` list (or a ``SearchResult``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from aspectrag.types import Hit, SearchResult


@runtime_checkable
class Retriever(Protocol):
    """Ranks chunks for a query.

    ``retrieve_batch`` exists so that wrappers (multi-query) can search many queries at once:
    implementations encode all queries in one batch. ``search`` returns the hits with the
    search's own diagnostics (queries used, timings, retriever facts) in a
    :class:`~aspectrag.types.SearchResult`; retrievers keep no per-call state, so one
    retriever may serve concurrent searches.

    Attributes:
        name: short identity, e.g. ``"hybrid"``, ``"multiquery(hybrid)"``.
    """

    name: str

    def retrieve(
        self, query: str, k: int = 10, sources: Sequence[str] | None = None
    ) -> list[Hit]:
        """Top-``k`` hits for ``query`` (best first, ranks 1..k); ``sources`` filters by source."""
        ...

    def retrieve_batch(
        self, queries: Sequence[str], k: int = 10, sources: Sequence[str] | None = None
    ) -> list[list[Hit]]:
        """``retrieve`` for several queries; one list per query."""
        ...

    def search(
        self, query: str, k: int = 10, sources: Sequence[str] | None = None
    ) -> SearchResult:
        """``retrieve`` plus diagnostics: ``SearchResult.hits`` equals ``retrieve(...)``."""
        ...


def timed_search(
    retrieve: Callable[[str, int, Sequence[str] | None], list[Hit]],
    query: str,
    k: int,
    sources: Sequence[str] | None,
    stage: str = "retrieve",
) -> SearchResult:
    """``SearchResult`` of a single-query retriever: the hits of ``retrieve(query, k,
    sources)``, no queries, and its wall-clock seconds under ``timings[stage]``."""
    t0 = time.perf_counter()
    hits = retrieve(query, k, sources)
    return SearchResult(hits, [], {stage: time.perf_counter() - t0}, {})

"""The ``Retriever`` protocol: query text -> ranked ``Hit`` list."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from aspectrag.types import Hit


@runtime_checkable
class Retriever(Protocol):
    """Ranks chunks for a query.

    ``retrieve_batch`` exists so that wrappers (multi-query) can search many queries at once:
    implementations encode all queries in one batch.
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

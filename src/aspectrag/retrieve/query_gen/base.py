"""The ``QueryGenerator`` protocol: a question -> the queries a multi-query retriever searches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class SubQuery:
    """One query to search, derived from the user's question.

    Attributes:
        text: the query text.
        weight: its weight in the weighted reciprocal rank fusion (>= 0; 0 disables it).
        origin: what produced it: ``"original"``, ``"fallback"``, ``"llm"``, ``"replay"``,
            ``"paragraph"``, ``"sentence"``, ``"clause"``, ``"keywords"``, ``"prf"``...
    """

    text: str
    weight: float = 1.0
    origin: str = "variant"


@runtime_checkable
class QueryGenerator(Protocol):
    """Rewrites or decomposes a question into queries (Multi-Query retrieval, ALGORITHMS.md 1).

    ``generate`` never raises on bad model output, HTTP errors or timeouts: it logs a warning
    and returns ``[SubQuery(question, origin="fallback")]``. It does not include the question
    itself otherwise; ``MultiQueryRetriever`` adds it when ``keep_original`` is on.

    Attributes:
        name: short identity shown in logs and provenance (e.g. ``"llm:gpt-4o-mini"``).
    """

    name: str

    def generate(self, question: str) -> list[SubQuery]:
        """Queries for ``question``, in the generator's order (never empty)."""
        ...


def fallback(question: str) -> list[SubQuery]:
    """The fallback result of a generator that produced nothing usable."""
    return [SubQuery(question, 1.0, "fallback")]

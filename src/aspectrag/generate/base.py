"""The ``Generator`` protocol: question + retrieved hits -> cited ``Answer``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from aspectrag.types import Answer, Hit


@runtime_checkable
class Generator(Protocol):
    """Answers a question from retrieved passages, citing them as [1], [2], ... in hit order."""

    name: str

    def generate(self, question: str, hits: Sequence[Hit]) -> Answer:
        """Answer ``question`` from ``hits``. Citations refer to ``hits`` 1-based."""
        ...

"""The ``Generator`` protocol: question + retrieved hits -> cited ``Answer``."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Protocol, runtime_checkable

from aspectrag.errors import AspectragError
from aspectrag.types import Answer, Hit


@runtime_checkable
class Generator(Protocol):
    """Answers a question from retrieved passages, citing them as [1], [2], ... in hit order."""

    name: str

    def generate(self, question: str, hits: Sequence[Hit]) -> Answer:
        """Answer ``question`` from ``hits``. Citations refer to ``hits`` 1-based."""
        ...


class GenerationError(AspectragError):
    """Generation failed (LLM endpoint unreachable, timed out, rejected the request, or a local
    model could not be loaded); the message says which and what to do."""


class AnswerStream(Iterator[str]):
    """Text pieces of an answer as they are produced; after the last piece ``answer`` holds the
    final ``Answer`` (citations checked). Reading ``answer`` early consumes the rest.

    Args:
        pieces: iterator of text pieces (tokens or lines), in order.
        finish: called once with the full text when ``pieces`` is exhausted; returns the Answer.
    """

    def __init__(self, pieces: Iterator[str], finish: Callable[[str], Answer]) -> None:
        self._pieces = pieces
        self._finish = finish
        self._parts: list[str] = []
        self._answer: Answer | None = None

    def __next__(self) -> str:
        if self._answer is not None:
            raise StopIteration
        try:
            piece = next(self._pieces)
        except StopIteration:
            self._answer = self._finish("".join(self._parts))
            raise
        self._parts.append(piece)
        return piece

    @property
    def answer(self) -> Answer:
        """The final answer; consumes any pieces not yet read."""
        for _ in self:
            pass
        assert self._answer is not None
        return self._answer


@runtime_checkable
class StreamingGenerator(Generator, Protocol):
    """A ``Generator`` that can also stream its answer piece by piece."""

    def stream(self, question: str, hits: Sequence[Hit]) -> AnswerStream:
        """Like ``generate``, but yields text pieces as they arrive; see ``AnswerStream``."""
        ...

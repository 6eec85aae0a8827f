"""Run a generator, streaming its text when it can (used by ``aspectrag ask``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from aspectrag.generate.base import Generator, StreamingGenerator
from aspectrag.generate.citations import mark_support
from aspectrag.types import Answer, Hit


def answer_question(
    generator: Generator,
    question: str,
    hits: Sequence[Hit],
    *,
    on_piece: Callable[[str], None] | None = None,
) -> Answer:
    """Answer ``question`` from ``hits``. With ``on_piece`` and a generator that streams, each
    text piece is passed to ``on_piece`` as it arrives; the returned ``Answer`` is the final
    one (citations checked: the streamed text may still hold [n] markers that were removed,
    listed in ``extras["invalid_citations"]``). ``extras["supported"]`` is set by
    :func:`~aspectrag.generate.citations.mark_support`."""
    if on_piece is not None and isinstance(generator, StreamingGenerator):
        stream = generator.stream(question, hits)
        for piece in stream:
            on_piece(piece)
        return mark_support(stream.answer)
    return mark_support(generator.generate(question, hits))

"""Turn a callback-driven decoder into an iterator (it runs in a worker thread)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


def run_streaming(run: Callable[[Callable[[T], None]], None]) -> Iterator[T]:
    """Call ``run(emit)`` in a thread and yield every item it emits, in order; an exception
    raised by ``run`` is re-raised in the consumer after the items emitted before it."""
    q: queue.Queue[Any] = queue.Queue()
    done = object()

    def worker() -> None:
        try:
            run(q.put)
            q.put(done)
        except BaseException as e:  # handed to the consumer
            q.put(_Failure(e))

    threading.Thread(target=worker, daemon=True).start()
    while True:
        item = q.get()
        if item is done:
            return
        if isinstance(item, _Failure):
            raise item.error
        yield item


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def token_text_pieces(tokenizer: Any, tokens: Iterator[int]) -> Iterator[str]:
    """The text each new token id adds to the decoded answer (holding back incomplete UTF-8)."""
    ids: list[int] = []
    shown = ""
    for tok in tokens:
        ids.append(tok)
        text = tokenizer.decode(ids, skip_special_tokens=True)
        if len(text) > len(shown) and text.startswith(shown) and not text.endswith("\ufffd"):
            yield text[len(shown) :]
            shown = text
    text = tokenizer.decode(ids, skip_special_tokens=True)
    if len(text) > len(shown) and text.startswith(shown):
        yield text[len(shown) :]

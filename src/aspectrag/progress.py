"""Progress bars: one library (rich) for every bar, drawn on stderr.

Callers decide whether to show one (the CLI passes ``sys.stderr.isatty()``), so default output
and logs carry no bars.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


class ProgressBar:
    """A bar over ``total`` items of ``unit`` with count, rate (items/s), elapsed and remaining
    time; ``update(n)`` advances it, ``set_postfix(**values)`` shows values after it (e.g. the
    running loss), ``close()`` (or leaving the ``with`` block) stops it."""

    def __init__(self, total: int, desc: str, unit: str) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.unit = unit
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            TextColumn("{task.fields[postfix]}"), console=Console(stderr=True),
        )
        self._task = self._progress.add_task(desc, total=total, rate="", postfix="")
        self._t0 = time.perf_counter()
        self._done = 0
        self._progress.start()

    def update(self, n: int = 1) -> None:
        """Advance by ``n`` items."""
        self._done += n
        rate = self._done / max(time.perf_counter() - self._t0, 1e-9)
        self._progress.update(self._task, advance=n, rate=f"{rate:,.1f} {self.unit}/s")

    def set_postfix(self, **values: Any) -> None:
        """Show ``key=value`` pairs after the bar."""
        self._progress.update(self._task, postfix=" ".join(f"{k}={v}" for k, v in values.items()))

    def close(self) -> None:
        """Stop drawing (the last state stays on screen)."""
        self._progress.stop()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress_bar(total: int, desc: str, unit: str) -> ProgressBar:
    """A started ``ProgressBar`` over ``total`` items."""
    return ProgressBar(total, desc, unit)


def track(items: Iterable[T], desc: str, unit: str, total: int | None = None) -> Iterator[T]:
    """Yield ``items`` while a bar counts them (``total`` default ``len(items)``)."""
    n = total if total is not None else len(items)  # type: ignore[arg-type]
    with ProgressBar(n, desc, unit) as bar:
        for item in items:
            yield item
            bar.update(1)

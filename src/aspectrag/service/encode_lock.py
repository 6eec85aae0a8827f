"""One forward pass at a time across the processes of ``serve --workers N``.

Why: every worker gives torch all the cores, so two workers encoding at once run 2 x cores
OpenMP threads on the cores. With libgomp's default spin-waiting a thread whose partner was
descheduled spins at every barrier, and throughput collapsed (``service_load.py
--workers 2`` on 2 cores, session 16: hybrid 0.33x the in-process maximum, 189 ms of server
CPU per request against 18); making idle threads sleep instead (``OMP_WAIT_POLICY=PASSIVE``)
fixed throughput but every parallel region then pays a wake-up (hybrid p50 +3.6 ms over
in-process at 1 client). With the forward passes taken in turn, one team of threads runs at a
time, so the workers can keep the default spinning; BM25, the HTTP work and everything else
still run in parallel. ``aspectrag serve --workers N`` turns it on when the workers' torch threads
outnumber the cores (``cli/serve.encodes_in_turn``, with the measurements).

The lock is ``flock`` on one file (``<state folder>/encode.lock``), taken blocking: a waiting
thread sleeps in the kernel without the GIL and wakes as soon as the holder releases it, and
the OS releases it when the holder dies. (``filelock`` polls with sleeps between tries, 50 ms
by default: too slow for a 5 ms encode; it is the fallback where ``fcntl`` is missing.)
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from aspectrag.embed.base import Embedder, TextKind

try:
    import fcntl
except ImportError:  # not POSIX
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = "encode.lock"


class SerialEncoder:
    """An :class:`~aspectrag.embed.base.Embedder` whose ``encode`` calls run one at a time
    across every process (and thread) that wraps an embedder with the same ``path``; every
    other attribute is ``inner``'s.

    Args:
        inner: the embedder wrapped.
        path: the lock file (created if missing; its folder must exist).

    The lock covers ``encode`` only: token counts, the tokenizer and code that calls
    ``inner.model`` directly (late-interaction reranking) are not serialised.

    Raises (from :meth:`encode`): whatever ``inner.encode`` raises; OSError if the lock file
    cannot be opened.
    """

    def __init__(self, inner: Embedder, path: str | Path) -> None:
        self.inner, self.path = inner, Path(path)
        self.name, self.dim, self.max_tokens = inner.name, inner.dim, inner.max_tokens
        self._lock = threading.Lock()  # flock is per open file: threads share one
        self._fd: int | None = None

    def __getattr__(self, name: str) -> Any:  # tokenizer, head configuration...
        if name == "inner":  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def count_tokens(self, text: str) -> int:
        """Model tokens in ``text`` (``inner``'s count; not serialised)."""
        return self.inner.count_tokens(text)

    def encode(self, texts: Sequence[str], *, kind: TextKind = "document",
               show_progress: bool = False) -> Mapping[str, np.ndarray]:
        """``inner.encode(texts)`` (``{space: float32 (len(texts), d)}``) under the lock."""
        with self.held():
            return self.inner.encode(texts, kind=kind, show_progress=show_progress)

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold the lock (waiting for it as long as it takes)."""
        with self._lock:
            if fcntl is None:
                from filelock import FileLock

                with FileLock(str(self.path), poll_interval=0.001):
                    yield
                return
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Close the lock file (a later encode opens it again)."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

"""Where a server process runs the work that calls its models (query encodes, extractive
answers, rerankers): on a few long-lived threads of its own, and, for ``serve --workers N``,
one at a time across the workers.

**Long-lived threads.** torch runs a forward pass's parallel regions on an OpenMP team that
belongs to the calling thread, and libgomp lets idle team threads spin-wait only while all its
threads fit on the cores; once more exist (two threads that have each called torch, with 2
torch threads on 2 cores) every barrier sleeps and pays a futex wake-up. A server whose answers
encoded on whichever of its 40 worker threads ran them paid that
(``benchmarks/encode_threads.py``, figures there). So the engine runs that work on
``threads`` threads started once (:class:`ModelThreads`). The whole search moves, not only
the forward pass: the multi-head embedder taps a layer's input per thread.

**In turn across workers** (``lock_path``). Every ``--workers`` process gives torch all the
cores, so two workers encoding at once run 2 x cores OpenMP threads: with libgomp's default
spin-waiting a thread whose partner was descheduled spins at every barrier (``service_load.py
--workers 2`` on 2 cores, session 16: hybrid 0.33x the in-process maximum, 189 ms of server CPU
per request against 18); sleeping instead (``OMP_WAIT_POLICY=PASSIVE``) costs a wake-up per
region (hybrid p50 +3.6 ms). With model work taken in turn one team runs at a time; BM25, the
HTTP work and everything else still run in parallel. ``aspectrag serve --workers N`` turns it
on when the workers' torch threads outnumber the cores (``cli/serve.encodes_in_turn``, with
the measurements). The lock is ``flock`` on one file, taken blocking: a waiting thread sleeps
in the kernel without the GIL, wakes as soon as the holder releases it, and the OS releases it
when the holder dies. (``filelock`` polls with sleeps between tries, 50 ms by default: too
slow for a 5 ms encode; it is the fallback where ``fcntl`` is missing.)

**With the ONNX query twin** (the default for a torch-built index, ``service/app.py``) queries
encode with ONNX Runtime, whose pool belongs to the session, not to the calling thread, so the
first point no longer applies to them (extractive answers and rerankers on torch still
benefit). Taking turns across workers then costs throughput: session 18, ``--workers 2`` on 2
cores, hybrid at 32 clients 0.61x the in-process maximum in turn against 1.06x with one ORT
thread per worker and no lock (``ASPECTRAG_THREADS=1``), which in turn pays latency at one
client (hybrid +3.0 ms, an extractive answer +138 ms: one core per encode). Both figures are
in the README; the default stays with latency.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

try:
    import fcntl
except ImportError:  # not POSIX
    fcntl = None  # type: ignore[assignment]

T = TypeVar("T")

LOCK_FILE = "encode.lock"


class ModelThreads:
    """Runs callables that use the models on ``threads`` long-lived threads, with ``lock_path``
    one at a time across every process (and thread) using the same lock file.

    Args:
        threads: threads (the engine passes its ``max_searches``: together their OpenMP teams
            use at most the cores).
        lock_path: the lock file (created if missing; its folder must exist); None: no
            cross-process lock.
    """

    def __init__(self, threads: int = 1, lock_path: str | Path | None = None) -> None:
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        self.lock_path = Path(lock_path) if lock_path is not None else None
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="aspectrag-model")
        self._lock = threading.Lock()  # flock is per open file: the threads share one
        self._fd: int | None = None

    def run(self, fn: Callable[[], T]) -> tuple[T, float]:
        """``(fn(), seconds of CPU it took)`` (``time.thread_time`` of the thread that ran it),
        run on one of the threads, under the lock when there is one; the caller waits.

        Raises: whatever ``fn`` raises; RuntimeError after :meth:`close`; OSError if the lock
        file cannot be opened.
        """
        return self._pool.submit(self._call, fn).result()

    def _call(self, fn: Callable[[], T]) -> tuple[T, float]:
        if self.lock_path is None:
            c0 = time.thread_time()
            return fn(), time.thread_time() - c0
        with self.held():
            c0 = time.thread_time()
            return fn(), time.thread_time() - c0

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold the cross-process lock (waiting as long as it takes).

        Raises:
            ValueError: no ``lock_path``.
        """
        if self.lock_path is None:
            raise ValueError("these model threads have no lock file")
        with self._lock:
            if fcntl is None:
                from filelock import FileLock

                with FileLock(str(self.lock_path), poll_interval=0.001):
                    yield
                return
            if self._fd is None:
                self._fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Drop work not yet started, let the threads end after what runs now, and close the
        lock file (a later :meth:`run` raises RuntimeError)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

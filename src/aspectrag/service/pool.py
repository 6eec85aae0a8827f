"""The worker threads that run the service's blocking calls (searches, answers, DNS checks) off
the event loop.

Why not ``anyio.to_thread.run_sync``: every search pays the hop to a thread and back, and
anyio's hop (capacity limiter, cancel scope, library sniffing, a ``queue.Queue`` with its
condition variable) measured about 0.1 ms of CPU per request more than this one in
``benchmarks/service_load.py``'s profile of ``POST /v1/search``: a ``SimpleQueue`` of jobs, a
future on the loop, one ``call_soon_threadsafe`` back. Threads are daemons (a call still
running at shutdown, e.g. a search abandoned after its time limit, does not hold the process),
started on demand up to ``max_threads`` and kept.
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[[], Any]]


class WorkerPool:
    """Run blocking callables in daemon threads and await their results from the loop.

    Args:
        max_threads: most threads at once (calls beyond wait in the queue, FIFO); 40 as
            anyio's default thread limiter.
        name: thread name prefix.
    """

    def __init__(self, max_threads: int = 40, name: str = "aspectrag-worker") -> None:
        if max_threads < 1:
            raise ValueError("max_threads must be at least 1")
        self.max_threads, self.name = max_threads, name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0

    async def run(self, fn: Callable[[], T]) -> T:
        """``fn()`` in a worker thread (with a copy of the caller's context variables).
        Cancelling the await (a time limit) abandons the call: one not yet started never
        runs, one running finishes in the background and its result is dropped."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        ctx = contextvars.copy_context()
        self._submit((loop, fut, lambda: ctx.run(fn)))
        return await fut

    def _submit(self, job: _Job) -> None:
        with self._lock:  # as concurrent.futures: an idle thread takes it, else a new one
            start = False
            if self._idle > 0:
                self._idle -= 1
            elif self._threads < self.max_threads:
                self._threads += 1
                start = True
            # else all max_threads are busy: the job waits in the queue
        self._jobs.put(job)
        if start:
            threading.Thread(target=self._work, name=f"{self.name}-{self._threads}",
                             daemon=True).start()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            loop, fut, fn = job
            if not fut.cancelled():
                try:
                    result, error = fn(), None
                except BaseException as e:  # handed to the awaiting task
                    result, error = None, e
                try:
                    loop.call_soon_threadsafe(_deliver, fut, result, error)
                except RuntimeError:  # the loop is closed: nobody waits any more
                    pass
            with self._lock:
                self._idle += 1

    def stop(self) -> None:
        """Let every thread end once the calls queued before this one are done."""
        with self._lock:
            n = self._threads
            self._threads = self._idle = 0
        for _ in range(n):
            self._jobs.put(None)


def _deliver(fut: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if fut.cancelled():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)

"""The exclusive cross-process writer lock of a local index folder (``filelock``).

``<folder>/write.lock`` is held (``flock``; released by the OS when the holder dies, so a
SIGKILLed ingest never leaves a stale lock) for a whole ingest or removal; ``write.lock.json``
beside it says who holds it (pid, start time) for the message a second writer shows.
Re-entrant within one process (a depth count under a thread lock: other threads of the same
process wait like other processes).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from aspectrag.errors import IndexBusyError, StoreError

log = logging.getLogger("aspectrag.store")

LOCK_FILE = "write.lock"
INFO_FILE = "write.lock.json"


class WriterLock:
    """Exclusive writer lock of ``folder`` (which must exist when entered).

    Args:
        folder: the index folder.
        location: the index name used in messages.
    """

    def __init__(self, folder: Path, location: str) -> None:
        self.folder = folder
        self.location = location
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._file: FileLock | None = None

    def holder(self) -> str:
        """``"pid N at TIME"`` of the current holder, or ``"another process"`` if unknown."""
        try:
            info = json.loads((self.folder / INFO_FILE).read_text())
            return f"pid {int(info['pid'])} at {info['started']}"
        except (OSError, ValueError, KeyError, TypeError):
            return "another process"

    @contextmanager
    def hold(self, *, wait: bool = True,
             on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
        """Hold the lock for the ``with`` block (see the module doc).

        ``on_wait(message)`` (default: a WARNING log line) is called once if the lock is busy
        and ``wait`` is True.

        Raises:
            IndexBusyError: busy and ``wait`` is False.
        """
        if not self._thread_lock.acquire(blocking=False):
            if not wait:
                raise self._busy()
            self._tell(on_wait)
            self._thread_lock.acquire()
        try:
            if self._depth == 0:
                self._acquire_file(wait, on_wait)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self._release_file()
        finally:
            self._thread_lock.release()

    def _busy(self) -> IndexBusyError:
        return IndexBusyError(
            self.location,
            f"index {self.location} is busy: the ingest started by {self.holder()} is writing it; "
            "try again when it has finished (or leave out --no-wait to wait for it)")

    def _tell(self, on_wait: Callable[[str], None] | None) -> None:
        msg = f"index {self.location}: waiting for the ingest started by {self.holder()}"
        (on_wait or log.warning)(msg)

    def _acquire_file(self, wait: bool, on_wait: Callable[[str], None] | None) -> None:
        lock = FileLock(str(self.folder / LOCK_FILE), thread_local=False)
        try:
            try:
                lock.acquire(timeout=0)
            except Timeout:
                if not wait:
                    raise self._busy() from None
                self._tell(on_wait)
                lock.acquire()
        except OSError as e:  # read-only or inaccessible folder
            raise StoreError(self.location, (
                f"index {self.location}: cannot take the writer lock ({e.strerror or e}); "
                "the index folder is read-only or not accessible: search it, or write to a "
                "copy")) from None
        self._file = lock
        try:
            (self.folder / INFO_FILE).write_text(json.dumps(
                {"pid": os.getpid(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}))
        except OSError:  # the message falls back to "another process"
            pass

    def _release_file(self) -> None:
        if self._file is not None:
            try:
                (self.folder / INFO_FILE).unlink(missing_ok=True)
            except OSError:
                pass
            self._file.release()
            self._file = None

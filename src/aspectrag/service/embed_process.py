"""Document embedding in a child process at a lower CPU priority, so that a long-running
server's searches are not slowed by its ingests.

Why: on a machine with few cores an ingest's forward passes take every core, at the same
priority as the server's searches, and in the same process they also contend for the GIL; a
BM25 search that costs 0.5 ms then waits behind them (``benchmarks/service_load.py``, session
13: bm25 p99 at 32 clients 4.1x idle while 500 documents were ingested). The child process
runs at ``nice`` +10 by default, so the kernel's scheduler gives the server's threads the
cores whenever they want them (CFS weight 1024 for nice 0 against 110 for nice 10) and the
ingest takes what is left.

:class:`ProcessEmbedder` wraps the server's own embedder: query encodes, token counts and the
tokenizer stay local (the splitter needs them), document encodes go to the child, which builds
the same embedder with the index's ``embedder_factory`` and is checked to have the same
``name``. The child starts on the first document encode (a fresh interpreter: about 2-4 s to
import torch and load the model), stays for the next ingests and exits after ``idle_s``
seconds without work, when :meth:`ProcessEmbedder.close` is called, or when the process that
started it dies (Linux ``PR_SET_PDEATHSIG``, else at its next read), so an interrupted ingest
never commits anything behind a dead server's back.

Messages are pickled over two pipes (``multiprocessing.connection.Connection``): the parent
sends ``("init", factory)`` and ``("encode", texts)``; the child answers ``("ready", name)``,
``("ok", {space: float32 (n, d) array})`` or ``("error", message)``.
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from aspectrag.embed.base import Embedder, TextKind
from aspectrag.errors import IngestEngineError

log = logging.getLogger("aspectrag.embed")

#: default nice increment of the embedding child (0-19; higher is lower priority)
DEFAULT_NICE = 10
#: default seconds the child waits for work before it exits
DEFAULT_IDLE_S = 600.0


class ProcessEmbedder:
    """An :class:`~aspectrag.embed.base.Embedder` whose document encodes run in a child
    process at CPU priority ``nice`` (see the module docstring); everything else is
    ``local``'s.

    Args:
        local: the embedder of this process (names, token counts, tokenizer, query encodes).
        factory: a picklable zero-argument callable the child calls to build the same
            embedder (``Index.embedder_factory``).
        nice: nice increment of the child (0-19; ``os.nice``).
        idle_s: seconds without an encode after which the child exits (the next encode
            starts a new one).
        threads: torch / ONNX Runtime intra-op threads of the child (None: the ``threads``
            setting, :func:`aspectrag.config.setup_threads`).

    The child is tied to the thread that starts it (the first document encode): Linux's
    ``PR_SET_PDEATHSIG`` fires when that *thread* ends, so encode from a long-lived thread (the
    service's writer thread does). A child killed that way fails the encode running then; the
    next encode starts a new one.

    Raises (from :meth:`encode`):
        IngestEngineError: the child could not start, built an embedder with another name,
            raised while encoding (its message is kept) or died; the ingest fails and the
            index is left as it was.
    """

    def __init__(self, local: Embedder, factory: Callable[[], Embedder], *,
                 nice: int = DEFAULT_NICE, idle_s: float = DEFAULT_IDLE_S,
                 threads: int | None = None) -> None:
        if not 0 <= nice <= 19:
            raise ValueError(f"nice must be in 0..19, got {nice}")
        self.local, self.factory = local, factory
        self.nice, self.idle_s, self.threads = nice, idle_s, threads
        self.name, self.dim, self.max_tokens = local.name, local.dim, local.max_tokens
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._send: Connection | None = None
        self._recv: Connection | None = None
        self._last_used = 0.0  # time.monotonic() of the last encode

    def __getattr__(self, name: str) -> Any:  # tokenizer, head configuration...
        if name == "local":  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.local, name)

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs, else None."""
        p = self._proc
        return p.pid if p is not None and p.poll() is None else None

    def count_tokens(self, text: str) -> int:
        """Model tokens in ``text``, counted by the local embedder."""
        return self.local.count_tokens(text)

    def encode(self, texts: Sequence[str], *, kind: TextKind = "document",
               show_progress: bool = False) -> Mapping[str, np.ndarray]:
        """``{space: float32 (len(texts), d)}``: queries here, documents in the child."""
        if kind != "document" or not texts:
            return self.local.encode(texts, kind=kind, show_progress=show_progress)
        with self._lock:
            try:
                self._start()
                reply = self._ask(("encode", list(texts)))
            except BaseException:
                self._stop()
                raise
            finally:
                self._last_used = time.monotonic()
        if reply[0] != "ok":
            raise IngestEngineError(f"the embedding process failed: {reply[1]}")
        return reply[1]  # type: ignore[no-any-return]

    def close(self) -> None:
        """Stop the child (a later encode starts a new one)."""
        with self._lock:
            self._stop()

    # -- the child ------------------------------------------------------------------------
    def _start(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        self._stop()
        try:
            payload = pickle.dumps(self.factory)
        except Exception as e:
            raise IngestEngineError(f"the embedder factory cannot be sent to the embedding "
                                    f"process ({type(e).__name__}: {e})") from e
        down_r, down_w = os.pipe()  # parent -> child
        up_r, up_w = os.pipe()  # child -> parent
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "aspectrag.service.embed_process", str(down_r), str(up_w),
                 str(os.getpid()), str(self.nice), str(self.threads or 0)],
                pass_fds=(down_r, up_w), stdin=subprocess.DEVNULL, stdout=2, close_fds=True)
        except OSError as e:
            for fd in (down_r, down_w, up_r, up_w):
                os.close(fd)
            raise IngestEngineError(f"could not start the embedding process: {e}") from e
        os.close(down_r)
        os.close(up_w)
        self._send = Connection(down_w, readable=False)
        self._recv = Connection(up_r, writable=False)
        log.info("embedding process %d started (nice +%d)", self._proc.pid, self.nice)
        self._last_used = time.monotonic()
        threading.Thread(target=self._watch_idle, args=(self._proc,), daemon=True,
                         name="aspectrag-embed-idle").start()
        reply = self._ask(("init", payload))
        if reply[0] != "ready":
            raise IngestEngineError(f"the embedding process could not build the embedder: "
                                    f"{reply[1]}")
        if reply[1] != self.name:
            raise IngestEngineError(f"the embedding process built embedder {reply[1]!r}, not "
                                    f"{self.name!r}; set service.ingest_process = false "
                                    "(ASPECTRAG_SERVICE_INGEST_PROCESS=0) to embed in the "
                                    "server process")

    def _ask(self, msg: tuple[Any, ...]) -> tuple[Any, ...]:
        assert self._send is not None and self._recv is not None
        try:
            self._send.send(msg)
            return self._recv.recv()  # type: ignore[no-any-return]
        except (EOFError, OSError) as e:
            try:
                code = self._proc.wait(5) if self._proc is not None else None
            except subprocess.TimeoutExpired:  # the pipe broke but the child lives on
                code = None
            raise IngestEngineError(f"the embedding process exited (code {code}) during an "
                                    "ingest; nothing of it was committed") from e

    def _watch_idle(self, proc: subprocess.Popen[bytes]) -> None:
        """Stop ``proc`` once no encode has used it for ``idle_s`` seconds (one thread per
        child; it ends with the child)."""
        while proc.poll() is None:
            time.sleep(min(self.idle_s, 5.0))
            if proc is not self._proc:
                return
            if time.monotonic() - self._last_used >= self.idle_s and \
                    self._lock.acquire(blocking=False):  # an encode running keeps the child
                try:
                    if proc is self._proc:
                        self._stop()
                finally:
                    self._lock.release()

    def _stop(self) -> None:
        for c in (self._send, self._recv):
            if c is not None:
                c.close()
        self._send = self._recv = None
        p, self._proc = self._proc, None
        if p is not None and p.poll() is None:
            try:
                p.wait(5)  # it exits on EOF
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _die_with_parent(parent: int) -> None:
    """Have the kernel kill this process when its parent dies (Linux), and exit now if it
    already has."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:
        os._exit(0)


def _child(argv: Sequence[str]) -> None:
    down, up, parent, nice, threads = (int(a) for a in argv)
    _die_with_parent(parent)
    os.nice(nice)
    recv, send = Connection(down, writable=False), Connection(up, readable=False)
    from aspectrag.config import setup_threads

    setup_threads(threads or None)
    try:
        from aspectrag.cli.common import quiet_libraries

        quiet_libraries()
    except ImportError:  # the CLI's extras missing: library noise stays
        pass
    embedder: Embedder | None = None
    while True:
        try:
            kind, arg = recv.recv()
        except EOFError:
            return
        try:
            if kind == "init":
                embedder = pickle.loads(arg)()
                send.send(("ready", embedder.name))
            elif kind == "encode" and embedder is not None:
                out = embedder.encode(arg, kind="document")
                send.send(("ok", {k: np.ascontiguousarray(v, dtype=np.float32)
                                  for k, v in out.items()}))
            else:
                send.send(("error", f"unexpected message {kind!r}"))
        except Exception as e:  # reported to the parent, which fails the ingest
            send.send(("error", f"{type(e).__name__}: {e}"))


if __name__ == "__main__":
    _child(sys.argv[1:])

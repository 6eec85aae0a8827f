"""uvicorn's httptools protocol with one change: a response's status line and headers go out
in the same ``send()`` as the start of its body.

uvicorn writes the head of a response to the socket as soon as the app sends
``http.response.start`` and the body in a second write, so every JSON answer costs two
system calls and two TCP segments. Profiling ``POST /v1/search`` (yappi and cProfile on the
server, ``benchmarks/service_load.py``'s lean client) put those writes at about a fifth of the
server's per-request CPU outside the search itself. Here the head is held until the next
write on the connection or the end of the current event-loop turn, whichever comes first: a
JSON answer (head and body sent back to back) leaves in one write; a streamed answer, a
``HEAD`` answer or a ``100 Continue`` still leaves within the same loop turn, in order.

With ``--workers N`` on Linux every worker listens on a socket of its own
(:class:`ReusePortListener`), so connections are spread over the workers.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Iterable, Iterator
from typing import Any

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools missing: serve() falls back to uvicorn's "auto"
    HttpToolsProtocol = None  # type: ignore[assignment, misc]


class CoalescingTransport:
    """A transport proxy that holds a lone response head (``HTTP/...\\r\\n\\r\\n``) until the
    next write or the end of the loop turn; every other call goes to ``transport``."""

    __slots__ = ("_transport", "_loop", "_held")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held + bytes(data))
        elif isinstance(data, bytes) and data.startswith(b"HTTP/") and data.endswith(b"\r\n\r\n"):
            self._held = data
            self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        """Write the held head now (no-op when none is held)."""
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held)

    def writelines(self, data: Iterable[bytes | bytearray | memoryview]) -> None:
        self.flush()
        self._transport.writelines(data)

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


if HttpToolsProtocol is not None:

    class CoalescingHttpToolsProtocol(HttpToolsProtocol):  # type: ignore[misc, valid-type]
        """uvicorn's ``HttpToolsProtocol`` over a :class:`CoalescingTransport`."""

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
else:
    CoalescingHttpToolsProtocol = None  # type: ignore[assignment, misc]


def http_protocol() -> Any:
    """What to give ``uvicorn.Config(http=...)``: the coalescing protocol, or ``"auto"``
    where httptools is not installed."""
    return CoalescingHttpToolsProtocol if CoalescingHttpToolsProtocol is not None else "auto"


def reuse_port_balances() -> bool:
    """Whether this OS load-balances connections over ``SO_REUSEPORT`` listeners (Linux)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def bind_reuse_port(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` with ``SO_REUSEADDR`` and ``SO_REUSEPORT`` (not yet
    listening; uvicorn's ``create_server`` listens on it).

    Raises:
        OSError: the address is taken (by a socket without ``SO_REUSEPORT``, or another user's).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class ReusePortListener:
    """The ``sockets`` argument of uvicorn's ``Multiprocess`` that gives every worker process a
    listening socket of its own in one ``SO_REUSEPORT`` group, bound in the worker the first
    time the worker's server iterates it (the same socket on later iterations).

    Why: with uvicorn's one shared socket, one worker's event loop accepts most of the
    connections that arrive together and keeps them (keep-alive), so the other worker idles:
    ``benchmarks/service_load.py`` with 2 workers and 32 clients measured 738 req/s in one run
    and 1,976 in another of the same code. With a socket per worker the kernel spreads new
    connections over the workers by a hash of their address and port. The same fix as
    uvicorn's open pull request #2472 (``--socket-load-balance``) and the per-worker listeners
    of gunicorn's ``reuse_port`` fix (#2938), here without changing uvicorn. The known
    trade-off of per-worker listeners: connections still waiting in the queue of a worker that
    dies are reset, where a shared socket would hand them to another worker.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._sock: socket.socket | None = None

    def __getstate__(self) -> dict[str, Any]:  # sent to each worker without a socket
        return {"host": self.host, "port": self.port}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["host"], state["port"])  # type: ignore[misc]

    def __iter__(self) -> Iterator[socket.socket]:
        if self._sock is None:
            self._sock = bind_reuse_port(self.host, self.port)
        yield self._sock

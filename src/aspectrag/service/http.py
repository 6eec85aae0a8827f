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
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
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

"""A lean HTTP/1.1 load generator for ``service_load.py``, and CPU-time meters.

Why not httpx: on a 2-core machine the load generator shares the cores with the server, so
its own cost per request caps the throughput measured. ``httpx.AsyncClient`` spends about a
millisecond of CPU per request (URL and header models, the h11 state machine, the pool);
this client sends request bytes built once per query over one keep-alive connection per
client and reads each answer by its ``Content-Length``: tens of microseconds per request.
The CPU each side spends is measured (``process_cpu``, ``ProcCpu``) and reported per
request, so a reader can tell a server bound by its own work from one starved by the client.

It speaks only what the benchmark needs: ``POST`` with a JSON body to one host, answers with
a ``Content-Length`` (uvicorn sends one for every non-streamed JSON answer; a chunked or
closed answer raises ``ProtocolError``).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Sequence
from typing import Any


class ProtocolError(Exception):
    """An answer this client cannot read (no Content-Length, malformed status line)."""


def post_bytes(host: str, port: int, path: str, body: dict[str, Any]) -> bytes:
    """The bytes of ``POST path`` with ``body`` as JSON, keep-alive."""
    data = json.dumps(body).encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n").encode()
    return head + data


class Connection:
    """One keep-alive HTTP/1.1 connection (``await open()`` first)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        """Send ``raw`` (from :func:`post_bytes`); the status code and body of the answer.

        Raises:
            ProtocolError: an answer without Content-Length or a bad status line.
            OSError, asyncio.IncompleteReadError: the connection failed.
        """
        if self.writer is None or self.reader is None:
            await self.open()
        assert self.writer is not None and self.reader is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        try:
            status = int(head[9:12])
        except ValueError:
            raise ProtocolError(f"bad status line: {head[:40]!r}") from None
        length = -1
        close = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        if length < 0:
            raise ProtocolError("answer without Content-Length")
        body = await self.reader.readexactly(length)
        if close:
            await self.close()
        return status, body

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
        self.reader = self.writer = None


async def run_clients(host: str, port: int, requests: Sequence[bytes], clients: int,
                      seconds: float, on_error: Any = None) -> tuple[list[float], int]:
    """``clients`` connections sending ``requests`` (cycled) back to back for ``seconds``;
    the latency of each answered 200 (seconds) and the number of failures.
    ``on_error(why)`` is called for each failure."""
    lat: list[float] = []
    errors = 0
    end = time.monotonic() + seconds

    async def client(i: int) -> None:
        nonlocal errors
        conn = Connection(host, port)
        n = i
        try:
            while time.monotonic() < end:
                raw = requests[n % len(requests)]
                n += clients
                t0 = time.perf_counter()
                try:
                    status, body = await conn.request(raw)
                    ok, why = status == 200, f"HTTP {status}: {body[:200]!r}"
                except (OSError, asyncio.IncompleteReadError, ProtocolError) as e:
                    ok, why = False, f"{type(e).__name__}: {e}"
                    await conn.close()
                if ok:
                    lat.append(time.perf_counter() - t0)
                else:
                    errors += 1
                    if on_error is not None:
                        on_error(why)
        finally:
            await conn.close()

    await asyncio.gather(*(client(i) for i in range(clients)))
    return lat, errors


def process_cpu() -> float:
    """CPU seconds (user + system) this process has used so far, all threads."""
    t = os.times()
    return t.user + t.system


class ProcCpu:
    """CPU seconds (user + system) used so far by process ``pid`` and its live child processes
    (``--workers N`` serves from children), read from ``/proc`` (Linux); None elsewhere."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    @staticmethod
    def _stat(pid: int | str) -> list[str] | None:
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()
        except OSError:
            return None

    def __call__(self) -> float | None:
        own = self._stat(self.pid)
        if own is None:
            return None
        ticks = int(own[11]) + int(own[12])
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                st = self._stat(entry)
                if st is not None and st[1] == str(self.pid):
                    ticks += int(st[11]) + int(st[12])
        return ticks / self.tick

"""One page fetch: conditional GET, manual redirects (each hop through the SSRF guard and the
robots/scope check), a total time limit and a size limit."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field

import httpx

from aspectrag.errors import BlockedURLError
from aspectrag.ingest.net import RedirectError, open_guarded


@dataclass(slots=True)
class FetchResult:
    """What a fetch returned.

    ``chain`` lists every URL requested (the first is the one asked for, the last the final URL);
    ``error`` is a one-line reason when no usable response came back and ``kind`` then names the
    failure (``blocked``: ``refused_url`` is the refused hop, ``redirect-loop``, ``redirects``, ``timeout``, ``connection``,
    ``too-large``, ``http``); ``seconds`` is wall time of the request.
    """

    url: str
    chain: list[str] = field(default_factory=list)
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str | None = None
    kind: str | None = None
    refused_url: str | None = None
    seconds: float = 0.0

    @property
    def final_url(self) -> str:
        return self.chain[-1] if self.chain else self.url


class Fetcher:
    """Fetches pages with one shared ``httpx.Client`` (thread-safe; used by the worker threads).

    Args:
        user_agent: the ``User-Agent`` header (``aspectrag/<version> (+url)``).
        timeout: seconds for the whole request, body included.
        max_redirects: redirects followed per page.
        max_bytes: largest body read, in bytes.
        allow_hosts: hosts / CIDRs the SSRF guard lets through.
    """

    def __init__(self, *, user_agent: str, timeout: float, max_redirects: int, max_bytes: int,
                 allow_hosts: Sequence[str] = ()) -> None:
        self.timeout, self.max_redirects, self.max_bytes = timeout, max_redirects, max_bytes
        self.allow_hosts = tuple(allow_hosts)
        self.client = httpx.Client(timeout=timeout, follow_redirects=False,
                                   headers={"User-Agent": user_agent})

    def close(self) -> None:
        self.client.close()

    def get(self, url: str, *, etag: str | None = None, last_modified: str | None = None,
            check_hop: Callable[[str], None] | None = None) -> FetchResult:
        """GET ``url`` (conditional when ``etag`` / ``last_modified`` are given: a 304 comes back
        as ``status == 304`` with an empty body). Never raises for network or HTTP problems:
        they are returned in ``error`` / ``kind``."""
        headers: dict[str, str] = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        res = FetchResult(url)
        t0 = time.monotonic()
        deadline = t0 + self.timeout
        try:
            resp, res.chain = open_guarded(self.client, url, allow=self.allow_hosts,
                                           max_redirects=self.max_redirects, headers=headers,
                                           check_hop=check_hop)
            with closing(resp):
                res.status = resp.status_code
                res.headers = {k.lower(): v for k, v in resp.headers.items()}
                if resp.status_code < 300:
                    body = bytearray()
                    for part in resp.iter_bytes():
                        body += part
                        if len(body) > self.max_bytes:
                            res.error, res.kind = (f"larger than {self.max_bytes:,} bytes",
                                                   "too-large")
                            break
                        if time.monotonic() > deadline:
                            raise httpx.ReadTimeout("body too slow")
                    res.body = bytes(body)
                elif resp.status_code >= 400:
                    res.error = f"HTTP {resp.status_code} {resp.reason_phrase}".rstrip()
                    res.kind = "http"
        except BlockedURLError as exc:
            res.error, res.kind, res.refused_url = exc.reason, "blocked", exc.source
        except RedirectError as exc:
            res.chain = exc.chain
            res.error, res.kind = str(exc), "redirect-loop" if exc.loop else "redirects"
        except httpx.TimeoutException:
            res.error, res.kind = f"timed out after {self.timeout:g} s", "timeout"
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            res.error, res.kind = f"request failed ({type(exc).__name__}: {exc})", "connection"
        res.seconds = time.monotonic() - t0
        return res

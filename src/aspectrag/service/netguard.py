"""SSRF guard for URL ingest: refuse URLs that resolve to non-public addresses, on every hop.

``check_url`` is the one call the service makes; it uses the shared guard
``aspectrag.ingest.net.check_public_url`` when that exists and a minimal equivalent
(``ipaddress`` + ``socket.getaddrinfo``) otherwise.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from urllib.parse import urljoin, urlsplit

import httpx

from aspectrag.errors import AspectragError


class BlockedURLError(AspectragError):
    """A URL is not http(s) or resolves to a loopback/private/link-local/reserved address."""


def check_url(url: str, allow: Sequence[str] = ()) -> None:
    """Raise an ``AspectragError`` (``BlockedURLError``) unless ``url`` is a public http(s) URL.

    ``allow``: host names or CIDRs exempt from the check.
    """
    try:
        from aspectrag.ingest.net import check_public_url  # type: ignore[import-not-found]
    except ImportError:
        _check_public_url(url, allow)
    else:
        check_public_url(url, allow)


def _check_public_url(url: str, allow: Sequence[str] = ()) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BlockedURLError(f"{url}: only http(s) URLs with a host can be ingested")
    host = parts.hostname
    if host in allow:
        return
    nets = []
    for a in allow:
        try:
            nets.append(ipaddress.ip_network(a, strict=False))
        except ValueError:
            continue
    try:
        infos = socket.getaddrinfo(host, parts.port or (443 if parts.scheme == "https" else 80),
                                   proto=socket.IPPROTO_TCP)
    except OSError as e:
        raise BlockedURLError(f"{url}: cannot resolve {host} ({e})") from None
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        if any(ip in n for n in nets):
            continue
        if not ip.is_global or ip.is_multicast or str(ip) == "169.254.169.254":
            raise BlockedURLError(
                f"{url}: {host} resolves to the non-public address {ip}; only public addresses "
                "can be ingested (ask the operator to allow-list the host)")


def resolve_redirects(url: str, *, allow: Sequence[str] = (), max_redirects: int = 5,
                      timeout: float = 10.0) -> str:
    """Follow ``url``'s redirects, checking every hop with :func:`check_url`; the final URL.

    Only response headers are read (the body is the loader's job).

    Raises:
        BlockedURLError: a hop is not public; AspectragError: too many redirects or the
        server cannot be reached.
    """
    current = url
    with httpx.Client(follow_redirects=False, timeout=timeout) as client:
        for _ in range(max_redirects + 1):
            check_url(current, allow)
            try:
                with client.stream("GET", current) as resp:
                    if resp.is_redirect and "location" in resp.headers:
                        current = urljoin(current, resp.headers["location"])
                        continue
                    return current
            except httpx.HTTPError as e:
                raise AspectragError(f"{current}: cannot fetch ({type(e).__name__}: {e})") from None
    raise AspectragError(f"{url}: more than {max_redirects} redirects")

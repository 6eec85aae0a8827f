"""SSRF guard: refuse URLs whose host is not a public internet address.

Every fetch made on a user's behalf (URL ingest, the crawler, the service's ingest endpoint)
calls :func:`check_public_url` before the request *and on every redirect hop*, so a public page
cannot redirect the server into its own network (OWASP SSRF Prevention Cheat Sheet).

Known limit: the check resolves the name itself and the HTTP client resolves it again when
connecting, so a DNS server that answers differently within milliseconds (DNS rebinding) is not
caught; pin the resolved address in the transport if that matters for a deployment.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

import httpx

from aspectrag.errors import BlockedURLError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Cloud instance-metadata endpoints (AWS/GCP/Azure/OpenStack IPv4, AWS IPv6).
METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)


def address_problem(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public address (``"a loopback address"``...), or None if it is.

    IPv4-mapped IPv6 addresses (``::ffff:10.0.0.1``) are judged by their IPv4 address.
    """
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    for attr, what in (("is_loopback", "a loopback"), ("is_unspecified", "an unspecified"),
                       ("is_link_local", "a link-local"), ("is_multicast", "a multicast"),
                       ("is_private", "a private"), ("is_reserved", "a reserved")):
        if getattr(ip, attr):
            return f"{what} address"
    if not ip.is_global:  # shared address space 100.64/10, documentation ranges, ...
        return "not a public address"
    return None


def _parse_allow(allow: Sequence[str]) -> tuple[set[str], list[IPNetwork]]:
    hosts: set[str] = set()
    nets: list[IPNetwork] = []
    for entry in allow:
        entry = entry.strip().lower().strip("[]")
        if not entry:
            continue
        try:
            nets.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            hosts.add(entry.rstrip("."))
    return hosts, nets


def resolve(host: str, port: int) -> list[IPAddress]:
    """All addresses ``host`` resolves to (``socket.getaddrinfo``), literal IPs included.

    Raises:
        OSError: the name does not resolve.
    """
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


def check_public_url(url: str, allow: Sequence[str] = ()) -> None:
    """Raise unless ``url`` is http(s) and every address its host resolves to is public.

    Args:
        url: the URL about to be requested (each redirect hop is checked separately).
        allow: allow-listed hosts and networks: a host name or IP compared with the URL's host
            (``"127.0.0.1"``, ``"localhost"``, ``"intranet.example"``), or a CIDR network
            (``"10.0.0.0/8"``, ``"::1/128"``) that resolved addresses may fall in.

    Raises:
        BlockedURLError: another scheme, no host, a name that does not resolve, or an address
            that is loopback, private, link-local, multicast, reserved, unspecified or a cloud
            metadata endpoint (169.254.169.254, fd00:ec2::254) and not allow-listed. The reason
            says how to allow it.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise BlockedURLError(url, f"refused: only http(s) URLs are fetched, not {scheme or 'no'}"
                                   " scheme")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise BlockedURLError(url, "refused: the URL has no host")
    hosts, nets = _parse_allow(allow)
    if host.lower() in hosts:
        return
    try:
        port = parts.port or (443 if scheme == "https" else 80)
        addresses = resolve(host, port)
    except (OSError, ValueError, UnicodeError) as exc:
        raise BlockedURLError(url, f"refused: host {host} does not resolve ({exc})") from None
    for ip in addresses:
        if any(ip in net for net in nets):
            continue
        problem = address_problem(ip)
        if problem:
            named = host if host == str(ip) else f"{host} ({ip})"
            raise BlockedURLError(url, f"refused: {named} is {problem}; allow-list it "
                                       f"(--allow-host {host}) to fetch it")


REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


class RedirectError(Exception):
    """Too many redirects, or a redirect loop (``loop`` True); ``chain`` lists the URLs."""

    def __init__(self, message: str, chain: list[str], loop: bool = False) -> None:
        super().__init__(message)
        self.chain = chain
        self.loop = loop


def open_guarded(
    client: httpx.Client,
    url: str,
    *,
    allow: Sequence[str] = (),
    max_redirects: int = 5,
    headers: dict[str, str] | None = None,
    check_hop: Callable[[str], None] | None = None,
) -> tuple[httpx.Response, list[str]]:
    """GET ``url`` following redirects by hand, checking every hop with
    :func:`check_public_url` (and ``check_hop``, e.g. robots.txt / scope) *before* requesting it.

    ``client`` must not follow redirects itself. The returned response is open for streaming
    (``iter_bytes``) and must be closed by the caller.

    Returns:
        ``(response, chain)``: ``chain`` is every URL requested, ``chain[-1] == str(resp.url)``.

    Raises:
        BlockedURLError: a hop refused by the SSRF guard (or by ``check_hop``).
        RedirectError: more than ``max_redirects`` redirects, or a loop.
        httpx.HTTPError: transport errors.
    """
    chain: list[str] = []
    current = url
    while True:
        check_public_url(current, allow)
        if check_hop is not None and chain:
            check_hop(current)
        chain.append(current)
        resp = client.send(client.build_request("GET", current, headers=headers), stream=True)
        location = resp.headers.get("location", "")
        if resp.status_code not in REDIRECT_STATUSES or not location:
            return resp, chain
        resp.close()
        target = str(resp.url.join(location)).split("#", 1)[0]
        if target in chain:
            raise RedirectError(f"too many redirects (redirect loop: {' -> '.join(chain)} -> "
                                f"{target})", chain + [target], loop=True)
        if len(chain) > max_redirects:
            raise RedirectError(f"too many redirects (more than {max_redirects})", chain)
        current = target

"""URL normalisation, scope and crawler-trap checks.

Normalisation (courlan, Barbaresi 2021): lower-case scheme and host, default ports dropped,
path dot-segments resolved, tracking parameters removed (``utm_*``, ``fbclid``, ``gclid``,
``ref``...), query parameters sorted; on top of that fragments, session-id parameters
(``jsessionid``, ``phpsessid``, ``sid``...; also ``;jsessionid=`` path parameters) and a final
``index.html`` / ``index.htm`` are dropped. :func:`url_key` further ignores a trailing slash, so
``/a/``, ``/a`` and ``/a/index.html`` are one page.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from courlan import normalize_url

_SESSION_PARAMS = re.compile(
    r"^(jsessionid|phpsessid|sessionid|session_id|session|sid|aspsessionid\w*|cfid|cftoken)$",
    re.IGNORECASE)
_PATH_SESSION = re.compile(r";(jsessionid|phpsessid|sessionid|sid)=[^/?#]*", re.IGNORECASE)
_INDEX_PAGE = re.compile(r"/index\.html?$", re.IGNORECASE)


def is_http(url: str) -> bool:
    """True for absolute http(s) URLs."""
    return urlsplit(url).scheme.lower() in ("http", "https")


def normalize(url: str) -> str:
    """The canonical spelling of ``url`` used as a document source (see the module docstring).

    Raises:
        ValueError: not an absolute http(s) URL.
    """
    if not is_http(url) or not urlsplit(url).hostname:
        raise ValueError(f"not an absolute http(s) URL: {url}")
    url = _PATH_SESSION.sub("", url.split("#", 1)[0])
    out = urlsplit(normalize_url(url, strict=False, trailing_slash=True))
    query = urlencode([(k, v) for k, v in parse_qsl(out.query, keep_blank_values=True)
                       if not _SESSION_PARAMS.match(k)])
    path = _INDEX_PAGE.sub("/", out.path) or "/"
    return urlunsplit((out.scheme, out.netloc, path, query, ""))


def url_key(url: str) -> str:
    """The identity of a page for the visited set: :func:`normalize` without a trailing slash."""
    parts = urlsplit(normalize(url))
    path = parts.path.rstrip("/") or "/"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def host_of(url: str) -> str:
    """``host[:port]`` of ``url``, lower case."""
    return urlsplit(url).netloc.lower()


def trap_reason(url: str, *, max_length: int, max_query_params: int) -> str | None:
    """Why ``url`` looks like a crawler trap (too long, too many query parameters), or None."""
    if len(url) > max_length:
        return f"URL longer than {max_length} characters (crawler trap guard)"
    n = len(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    if n > max_query_params:
        return f"{n} query parameters, more than {max_query_params} (crawler trap guard)"
    return None


class Scope:
    """Which URLs the crawl may follow: ``"host"`` (same host and port as a seed), ``"prefix"``
    (below a seed's folder: the seed URL up to its last ``/``) or a regular expression searched in
    the normalised URL.

    Raises:
        ValueError: an invalid regular expression.
    """

    def __init__(self, scope: str, seeds: list[str]) -> None:
        self.kind = scope if scope in ("host", "prefix") else "regex"
        self.hosts = {host_of(s) for s in seeds}
        self.prefixes = [normalize(s).rsplit("/", 1)[0] + "/" for s in seeds]
        self.pattern = re.compile(scope) if self.kind == "regex" else None

    def __contains__(self, url: str) -> bool:
        if self.kind == "host":
            return host_of(url) in self.hosts
        if self.kind == "prefix":
            return any(url.startswith(p) for p in self.prefixes)
        assert self.pattern is not None
        return self.pattern.search(url) is not None

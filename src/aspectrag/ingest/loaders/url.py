"""http(s) URL loader: fetches with httpx (timeout, redirect limit, size limit, content-type check,
the SSRF guard on every redirect hop) and parses the body with the HTML, PDF or text parser."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import closing
from pathlib import PurePosixPath
from urllib.parse import urlsplit

import httpx

from aspectrag.errors import LoadError
from aspectrag.ingest.loaders.html import parse_html
from aspectrag.ingest.loaders.pdf import parse_pdf
from aspectrag.ingest.loaders.text import parse_text
from aspectrag.ingest.net import RedirectError, open_guarded
from aspectrag.types import Document

#: Accepted media types and the parser each one goes to.
CONTENT_TYPES: dict[str, str] = {
    "text/html": "html",
    "application/xhtml+xml": "html",
    "text/plain": "text",
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "application/pdf": "pdf",
}
_SUFFIX_KIND = {
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
    ".txt": "text",
    ".md": "markdown",
    ".markdown": "markdown",
}
_GENERIC = {"", "application/octet-stream", "binary/octet-stream"}

USER_AGENT = "aspectrag/0.1 (+https://github.com/aspectrag)"


def is_url(source: str) -> bool:
    """True for ``http://`` and ``https://`` sources."""
    return source[:8].lower().startswith(("http://", "https://"))


class UrlLoader:
    """Fetches an http(s) URL and parses it as HTML, PDF, Markdown or plain text.

    The parser is chosen by the response's ``Content-Type`` (see ``CONTENT_TYPES``); a generic
    type (none, ``application/octet-stream``) falls back to the URL's suffix. ``doc_id`` and
    ``source`` are the URL as given; ``metadata`` records the final URL after redirects and the
    content type; ``fingerprint`` is the SHA-256 of the body.

    Args:
        timeout: seconds allowed for the whole request (connect, each read, and the full body).
        max_redirects: redirects followed before giving up.
        max_bytes: largest accepted body, in bytes (checked against ``Content-Length`` and while
            streaming).
        allow_hosts: hosts / CIDR networks the SSRF guard lets through although they are not
            public (e.g. ``["127.0.0.1"]`` for a local server); see
            :func:`aspectrag.ingest.net.check_public_url`.

    Raises (from ``load``):
        BlockedURLError: the URL or a redirect hop is not a public http(s) address (a LoadError).
        LoadError: connection failure, timeout, HTTP status >= 400, too many redirects or a
            redirect loop, body too large, unsupported content type, or a body its parser rejects.
    """

    def __init__(
        self,
        timeout: float = 20.0,
        max_redirects: int = 5,
        max_bytes: int = 50 * 1024 * 1024,
        user_agent: str = USER_AGENT,
        allow_hosts: Sequence[str] = (),
    ) -> None:
        self.allow_hosts = tuple(allow_hosts)
        self.timeout = timeout
        self.max_redirects = max_redirects
        self.max_bytes = max_bytes
        self.user_agent = user_agent

    def can_load(self, source: str) -> bool:
        return is_url(source)

    def load(self, source: str) -> Iterator[Document]:
        raw, mime, charset, final_url = self.fetch(source)
        kind = CONTENT_TYPES.get(mime)
        if kind is None and mime in _GENERIC:
            kind = _SUFFIX_KIND.get(PurePosixPath(urlsplit(final_url).path).suffix.lower())
        if kind is None:
            expected = ", ".join(sorted(CONTENT_TYPES))
            raise LoadError(
                source, f"unsupported content type {mime or 'none'!r} (expected {expected})"
            )
        if not raw.strip():
            raise LoadError(source, "empty response body")
        fallback_title = _url_title(final_url)
        if kind == "html":
            doc = parse_html(
                raw, source=source, doc_id=source, fallback_title=fallback_title, charset=charset
            )
        elif kind == "pdf":
            doc = parse_pdf(raw, source=source, doc_id=source, fallback_title=fallback_title)
        else:
            doc = parse_text(
                raw,
                source=source,
                doc_id=source,
                title=fallback_title,
                markdown=kind == "markdown",
                charset=charset,
            )
        doc.metadata.update({"url": final_url, "content_type": mime})
        yield doc

    def fetch(self, url: str) -> tuple[bytes, str, str | None, str]:
        """GET ``url``.

        Returns:
            ``(body_bytes, media_type, charset_or_None, final_url)``.

        Raises:
            LoadError: see the class docstring.
        """
        deadline = time.monotonic() + self.timeout
        try:
            with httpx.Client(
                timeout=self.timeout,
                follow_redirects=False,
                headers={"User-Agent": self.user_agent},
            ) as client:
                resp, _ = open_guarded(client, url, allow=self.allow_hosts,
                                       max_redirects=self.max_redirects)
                with closing(resp):
                    if resp.status_code >= 400:
                        raise LoadError(
                            url, f"HTTP {resp.status_code} {resp.reason_phrase}".rstrip()
                        )
                    ctype = resp.headers.get("content-type", "")
                    mime = ctype.split(";")[0].strip().lower()
                    if mime not in CONTENT_TYPES and mime not in _GENERIC:
                        expected = ", ".join(sorted(CONTENT_TYPES))
                        raise LoadError(
                            url, f"unsupported content type {mime!r} (expected {expected})"
                        )
                    length = resp.headers.get("content-length", "")
                    if length.isdigit() and int(length) > self.max_bytes:
                        raise LoadError(url, self._too_large(int(length)))
                    body = bytearray()
                    for part in resp.iter_bytes():
                        body += part
                        if len(body) > self.max_bytes:
                            raise LoadError(url, self._too_large(None))
                        if time.monotonic() > deadline:
                            raise LoadError(url, f"timed out after {self.timeout:g} s")
                    return bytes(body), mime, resp.charset_encoding, str(resp.url)
        except LoadError:
            raise
        except RedirectError as exc:
            raise LoadError(url, str(exc)) from None
        except httpx.TimeoutException:
            raise LoadError(url, f"timed out after {self.timeout:g} s") from None
        except httpx.ConnectError as exc:
            raise LoadError(url, f"connection failed ({exc})") from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise LoadError(url, f"request failed ({type(exc).__name__}: {exc})") from None

    def _too_large(self, size: int | None) -> str:
        limit = f"limit {self.max_bytes:,} bytes"
        return f"too large ({size:,} bytes; {limit})" if size else f"too large (over the {limit})"


def _url_title(url: str) -> str:
    parts = urlsplit(url)
    name = PurePosixPath(parts.path).name
    return name or parts.netloc

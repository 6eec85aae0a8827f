"""What the crawler reads from a fetched page: robots directives, canonical link, outgoing links
and the main content (the same trafilatura extractor as file ingest,
:func:`aspectrag.ingest.loaders.html.parse_html`), plus the quality measures."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urljoin

from lxml import html as lxml_html

from aspectrag.errors import LoadError
from aspectrag.ingest.loaders.html import parse_html
from aspectrag.ingest.loaders.pdf import parse_pdf
from aspectrag.ingest.loaders.text import parse_text
from aspectrag.ingest.loaders.url import CONTENT_TYPES
from aspectrag.types import Document

_SPACE = re.compile(r"\s+")


@dataclass(slots=True)
class Page:
    """A parsed page.

    Attributes:
        doc: the extracted document (None when extraction failed: ``error`` says why).
        links: absolute http(s) link targets (fragment dropped, ``rel=nofollow`` left out), in
            page order.
        canonical: the ``<link rel=canonical>`` target, absolute, or None.
        noindex, nofollow: from ``<meta name=robots|<user-agent>>`` and ``X-Robots-Tag``.
        page_chars: characters of visible text in the whole page (``<body>`` minus scripts,
            styles, templates) to compare with ``len(doc.text)`` (boilerplate ratio).
    """

    doc: Document | None = None
    error: str | None = None
    links: list[str] = field(default_factory=list)
    canonical: str | None = None
    noindex: bool = False
    nofollow: bool = False
    page_chars: int = 0


def _directives(value: str) -> set[str]:
    return {d.strip().lower() for d in re.split(r"[,\s]+", value) if d.strip()}


_KNOWN = frozenset({"all", "noindex", "nofollow", "none", "noarchive", "nosnippet",
                    "notranslate", "noimageindex", "unavailable_after", "max-snippet",
                    "max-image-preview", "max-video-preview", "indexifembedded"})


def robots_header(value: str, agent: str) -> set[str]:
    """Directives of an ``X-Robots-Tag`` header that apply to us: those without a user-agent
    prefix and those after ``<agent>:`` (a prefix applies until the next one, as Google reads
    ``googlebot: noindex, nofollow``)."""
    out: set[str] = set()
    applies = True
    for part in value.split(","):
        name, sep, rest = part.partition(":")
        if sep and name.strip().lower() not in _KNOWN:
            applies = name.strip().lower() in (agent.lower(), "*")
            part = rest
        if applies:
            out |= _directives(part)
    return out


def parse_page(body: bytes, *, url: str, source: str, media_type: str, charset: str | None,
               x_robots: str = "", agent: str = "aspectrag") -> Page:
    """Parse a fetched body of ``media_type`` (HTML, PDF, plain text or Markdown).

    ``url`` is the final URL (links resolve against it, or against ``<base href>``); ``source``
    becomes the document's ``source`` and ``doc_id``.
    """
    page = Page()
    kind = CONTENT_TYPES.get(media_type)
    directives = robots_header(x_robots, agent) if x_robots else set()
    if kind == "html":
        try:
            tree = lxml_html.fromstring(body)
        except (ValueError, lxml_html.etree.ParserError) as exc:
            page.error = f"not parseable as HTML ({exc})"
            return page
        for meta in tree.iter("meta"):
            if (meta.get("name") or "").lower() in ("robots", agent.lower()):
                directives |= _directives(meta.get("content") or "")
        base = url
        for el in tree.iter("base"):
            if el.get("href"):
                base = urljoin(url, el.get("href"))
                break
        for el in tree.iter("link"):
            if "canonical" in (el.get("rel") or "").lower().split() and el.get("href"):
                page.canonical = urljoin(base, el.get("href").strip())
                break
        for a in tree.iter("a"):
            href = (a.get("href") or "").strip()
            if not href or "nofollow" in (a.get("rel") or "").lower().split():
                continue
            target = urljoin(base, href).split("#", 1)[0]
            if target.lower().startswith(("http://", "https://")):
                page.links.append(target)
        for bad in tree.xpath("//script|//style|//noscript|//template|//head"):
            bad.drop_tree()
        page.page_chars = len(_SPACE.sub(" ", tree.text_content()).strip())
    page.noindex = bool(directives & {"noindex", "none"})
    page.nofollow = bool(directives & {"nofollow", "none"})
    if page.nofollow:
        page.links = []
    try:
        if kind == "html":
            page.doc = parse_html(body, source=source, doc_id=source, fallback_title=source,
                                  charset=charset)
        elif kind == "pdf":
            page.doc = parse_pdf(body, source=source, doc_id=source, fallback_title=source)
        elif kind in ("text", "markdown"):
            page.doc = parse_text(body, source=source, doc_id=source, title=source,
                                  markdown=kind == "markdown", charset=charset)
            page.page_chars = len(page.doc.text)
        else:
            page.error = f"unsupported content type {media_type or 'none'!r}"
    except LoadError as exc:
        page.error = exc.reason
    if page.doc is not None and kind != "html":
        page.page_chars = max(page.page_chars, len(page.doc.text))
    return page

"""HTML loader: main content only, via trafilatura (Barbaresi 2021, "Trafilatura: A Web Scraping
Library and Command-Line Tool for Text Discovery and Extraction", ACL demo).

trafilatura removes scripts, navigation, headers/footers, comments and other boilerplate; we ask
for its XML output and turn it into plain text (one block per paragraph / list / table / code
block, separated by blank lines) while recording each heading (``<head>``) as a ``Section``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aspectrag.errors import LoadError
from aspectrag.ingest.loaders.common import check_not_binary, fingerprint, read_file
from aspectrag.types import Document, Section

if TYPE_CHECKING:
    from lxml import etree


def _html_modules(source: str) -> tuple[Any, Any]:
    """``trafilatura`` and ``lxml.etree`` (extra ``html``); missing: this source fails, saying
    what to install."""
    from aspectrag.extras import MissingExtraError, optional_import

    try:
        trafilatura = optional_import("trafilatura", "reading HTML pages")
        optional_import("trafilatura.utils", "reading HTML pages")
        return trafilatura, optional_import("lxml.etree", "reading HTML pages")
    except MissingExtraError as e:
        raise LoadError(source, str(e)) from None

HTML_SUFFIXES = frozenset({".html", ".htm", ".xhtml"})

_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")
_BLOCKS = frozenset({"p", "head", "list", "code", "quote", "table", "div", "section"})
_HTML_BLOCKS = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "table", "pre", "blockquote"}
)


def _unwrap_broken_figures(tree: etree._Element) -> None:
    """Turn ``<figure>`` elements that swallowed body text into ``<div>``s (in place).

    An unclosed ``<figure>`` (common in real pages, e.g. several lilianweng.github.io posts) makes
    the HTML parser nest the rest of the article inside it, and trafilatura then drops all of it
    as figure content. A figure holding paragraphs, headings, lists or tables outside its
    ``<figcaption>`` is such a case.
    """
    for fig in list(tree.iter("figure")):
        for el in fig.iterdescendants():
            if el.tag in _HTML_BLOCKS and not any(
                a.tag == "figcaption" for a in el.iterancestors()
            ):
                fig.tag = "div"
                break


def _inline(el: etree._Element) -> str:
    """Text of an inline element tree: whitespace collapsed, ``<lb/>`` kept as a newline,
    nested lists left out (they are rendered by ``_render_list``)."""
    parts: list[str] = []

    def walk(node: etree._Element) -> None:
        if node.text:
            parts.append(node.text)
        for child in node:
            if child.tag == "lb":
                parts.append("\n")
            elif child.tag != "list":
                walk(child)
            if child.tail:
                parts.append(child.tail)

    walk(el)
    lines = (
        _SPACES.sub(" ", line).strip() for line in "".join(parts).replace("\n ", "\n").split("\n")
    )
    return "\n".join(line for line in lines if line)


def _render_list(el: etree._Element, depth: int = 0) -> list[str]:
    """Lines ``"- item"`` (nested items indented by two spaces per level)."""
    lines: list[str] = []
    for item in el.iterfind("item"):
        text = _inline(item)
        if text:
            lines.append("  " * depth + "- " + text.replace("\n", " "))
        for sub in item.iterfind("list"):
            lines.extend(_render_list(sub, depth + 1))
    return lines


def _render_table(el: etree._Element) -> str:
    rows = []
    for row in el.iter("row"):
        cells = [_inline(cell).replace("\n", " ") for cell in row.iterfind("cell")]
        if any(cells):
            rows.append(" | ".join(cells))
    return "\n".join(rows)


def _blocks(el: etree._Element) -> Iterator[tuple[str, str]]:
    """``(kind, text)`` for each block under ``el``; kind is ``"head"`` or ``"text"``."""
    for child in el:
        tag = child.tag
        if tag == "head":
            text = _inline(child).replace("\n", " ")
            if text:
                yield "head", text
        elif tag == "list":
            lines = _render_list(child)
            if lines:
                yield "text", "\n".join(lines)
        elif tag == "table":
            text = _render_table(child)
            if text:
                yield "text", text
        elif tag == "code":
            text = "".join(child.itertext()).strip("\n")
            if text.strip():
                yield "text", text
        elif tag in ("quote", "div", "section") and any(c.tag in _BLOCKS for c in child):
            yield from _blocks(child)
        else:
            text = _inline(child)
            if text:
                yield "text", text


def parse_html(
    raw: bytes, *, source: str, doc_id: str, fallback_title: str, charset: str | None = None
) -> Document:
    """Extract the main content of an HTML page.

    Args:
        raw: page bytes.
        source, doc_id: copied into the document.
        fallback_title: used when the page has no title.
        charset: encoding declared by the server (HTTP ``Content-Type``); without it, or when
            the bytes do not decode with it, trafilatura detects the encoding from the bytes and
            the ``<meta charset>``.

    Returns:
        A ``Document`` whose ``text`` holds the headings and blocks separated by ``"\\n\\n"`` and
        whose ``sections`` span from each heading to the next one.

    Raises:
        LoadError: binary bytes, or no main content found.
    """
    check_not_binary(source, raw)
    trafilatura, etree = _html_modules(source)
    markup: bytes | str = raw
    if charset:
        try:
            markup = raw.decode(charset)
        except (LookupError, UnicodeDecodeError):
            markup = raw
    try:
        tree = trafilatura.utils.load_html(markup)
        if tree is None:
            raise LoadError(source, "not parseable as HTML")
        _unwrap_broken_figures(tree)
        xml = trafilatura.extract(
            tree,
            output_format="xml",
            with_metadata=True,
            include_comments=False,
            include_tables=True,
            include_formatting=False,
            include_links=False,
            include_images=False,
        )
    except LoadError:
        raise
    except Exception as exc:  # trafilatura/lxml raise various types on broken input
        raise LoadError(source, f"HTML could not be parsed ({type(exc).__name__}: {exc})") from None
    if not xml:
        raise LoadError(source, "no main content found in the HTML page")
    root = etree.fromstring(xml.encode("utf-8"))
    main = root.find("main")
    if main is None:
        main = root

    parts: list[str] = []
    headings: list[tuple[int, str]] = []
    pos = 0
    for kind, text in _blocks(main):
        if parts:
            pos += 2  # the "\n\n" separator
        if kind == "head":
            headings.append((pos, text))
        parts.append(text)
        pos += len(text)
    text = "\n\n".join(parts)
    if not text.strip():
        raise LoadError(source, "no main content found in the HTML page")

    sections = [
        Section(start=s, end=headings[k + 1][0] if k + 1 < len(headings) else len(text), heading=h)
        for k, (s, h) in enumerate(headings)
    ]
    meta = {key: root.get(key) for key in ("author", "date", "url", "sitename") if root.get(key)}
    meta["format"] = "html"
    return Document(
        doc_id=doc_id,
        source=source,
        title=(root.get("title") or "").strip() or fallback_title,
        text=text,
        sections=sections,
        fingerprint=fingerprint(raw),
        metadata=meta,
    )


class HtmlLoader:
    """Loads ``.html`` / ``.htm`` files: main content, title and headings (see ``parse_html``).

    Raises (from ``load``):
        LoadError: missing, empty or binary file, or a page without main content.
    """

    def can_load(self, source: str) -> bool:
        return Path(source).suffix.lower() in HTML_SUFFIXES

    def load(self, source: str) -> Iterator[Document]:
        path, raw = read_file(source)
        yield parse_html(raw, source=str(path), doc_id=str(path), fallback_title=path.stem)

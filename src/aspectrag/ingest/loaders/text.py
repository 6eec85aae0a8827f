"""Plain-text (.txt) and Markdown (.md) loader.

The document text is the file's text (newlines normalised to ``\\n``); for Markdown, ATX
(``# Heading``) and setext (``Heading`` underlined with ``===``/``---``) headings are recorded as
``Section`` spans, following the CommonMark rules for those two forms (code fences and YAML front
matter are skipped).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from aspectrag.errors import LoadError
from aspectrag.ingest.loaders.common import decode_text, fingerprint, read_file
from aspectrag.types import Document, Section

TEXT_SUFFIXES = frozenset({".txt", ".text"})
MARKDOWN_SUFFIXES = frozenset({".md", ".markdown", ".mdown", ".mkd"})

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT_H1 = re.compile(r"^ {0,3}=+[ \t]*$")
_SETEXT_H2 = re.compile(r"^ {0,3}-+[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_NOT_SETEXT_TEXT = re.compile(r"^ {0,3}(?:[-*+>]|\d+[.)]|#|\||`{3}|~{3})")
_FRONT_TITLE = re.compile(r"^title:[ \t]*(.+?)[ \t]*$", re.MULTILINE)


def normalise_newlines(text: str) -> str:
    """``\\r\\n`` and ``\\r`` -> ``\\n``."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def markdown_headings(text: str) -> tuple[list[tuple[int, int, str]], str | None]:
    """Headings of a Markdown text.

    Returns:
        ``(headings, front_matter_title)``: ``headings`` is a list of ``(offset, level, heading)``
        where ``offset`` is the character offset of the heading's first line in ``text`` and
        ``level`` is 1-6; ``front_matter_title`` is the ``title:`` of a leading YAML front matter.
    """
    lines = text.split("\n")
    offsets: list[int] = []
    pos = 0
    for line in lines:
        offsets.append(pos)
        pos += len(line) + 1

    first = 0
    front_title: str | None = None
    if lines and lines[0].strip() == "---":
        for j in range(1, len(lines)):
            if lines[j].strip() in ("---", "..."):
                block = "\n".join(lines[1:j])
                m = _FRONT_TITLE.search(block)
                if m:
                    front_title = m.group(1).strip("'\"") or None
                first = j + 1
                break

    headings: list[tuple[int, int, str]] = []
    fence: str | None = None
    prev_blank = True
    for i in range(first, len(lines)):
        line = lines[i]
        fm = _FENCE.match(line)
        if fence is not None:
            if fm and fm.group(1)[0] == fence[0] and len(fm.group(1)) >= len(fence):
                fence = None
            prev_blank = False
            continue
        if fm:
            fence = fm.group(1)
            prev_blank = False
            continue
        m = _ATX.match(line)
        if m:
            heading = (m.group(2) or "").strip()
            if heading:
                headings.append((offsets[i], len(m.group(1)), heading))
            prev_blank = False
            continue
        stripped = line.strip()
        if (
            stripped
            and prev_blank
            and i + 1 < len(lines)
            and not _NOT_SETEXT_TEXT.match(line)
            and not line.startswith(("    ", "\t"))
        ):
            nxt = lines[i + 1]
            if _SETEXT_H1.match(nxt):
                headings.append((offsets[i], 1, stripped))
            elif _SETEXT_H2.match(nxt):
                headings.append((offsets[i], 2, stripped))
        prev_blank = not stripped
    return headings, front_title


def heading_sections(headings: list[tuple[int, int, str]], text_len: int) -> list[Section]:
    """One ``Section`` per heading, from the heading's offset to the next heading (or the end)."""
    sections: list[Section] = []
    for k, (start, _level, heading) in enumerate(headings):
        end = headings[k + 1][0] if k + 1 < len(headings) else text_len
        if end > start:
            sections.append(Section(start=start, end=end, heading=heading))
    return sections


def parse_text(
    raw: bytes,
    *,
    source: str,
    doc_id: str,
    title: str,
    markdown: bool,
    charset: str | None = None,
) -> Document:
    """Build a ``Document`` from text bytes.

    Args:
        raw: the file or HTTP body bytes.
        source, doc_id: copied into the document.
        title: fallback title (file stem or URL); for Markdown the front-matter ``title:`` or the
            first level-1 heading wins.
        markdown: record Markdown headings as sections.
        charset: declared encoding (HTTP), else UTF-8 / byte-order mark.

    Raises:
        LoadError: binary, undecodable or whitespace-only content.
    """
    text = normalise_newlines(decode_text(source, raw, charset))
    if not text.strip():
        raise LoadError(source, "no text (whitespace only)")
    sections: list[Section] = []
    if markdown:
        headings, front_title = markdown_headings(text)
        sections = heading_sections(headings, len(text))
        h1 = next((h for _, level, h in headings if level == 1), None)
        title = front_title or h1 or title
    return Document(
        doc_id=doc_id,
        source=source,
        title=title,
        text=text,
        sections=sections,
        fingerprint=fingerprint(raw),
        metadata={"format": "markdown" if markdown else "text"},
    )


class TextLoader:
    """Loads ``.txt`` and ``.md`` files (UTF-8; a byte-order mark is honoured).

    ``doc_id`` and ``source`` are the resolved absolute path; the title is the Markdown title
    (front matter or first ``#`` heading) or else the file name without its suffix.

    Raises (from ``load``):
        LoadError: missing, empty, binary or undecodable file.
    """

    def can_load(self, source: str) -> bool:
        suffix = Path(source).suffix.lower()
        return suffix in TEXT_SUFFIXES or suffix in MARKDOWN_SUFFIXES

    def load(self, source: str) -> Iterator[Document]:
        path, raw = read_file(source)
        yield parse_text(
            raw,
            source=str(path),
            doc_id=str(path),
            title=path.stem,
            markdown=path.suffix.lower() in MARKDOWN_SUFFIXES,
        )

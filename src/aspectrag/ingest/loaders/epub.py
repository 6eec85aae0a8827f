"""EPUB e-books (ebooklib): the spine's XHTML documents in reading order, each through the same
main-content extractor as HTML files (:func:`aspectrag.ingest.loaders.html.parse_html`);
chapter headings become sections. Needs the ``office`` extra."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from aspectrag.errors import LoadError
from aspectrag.ingest.loaders.common import fingerprint, read_file
from aspectrag.ingest.loaders.html import parse_html
from aspectrag.types import Document, Section


class EpubLoader:
    """Loads ``.epub`` files (see the module docstring).

    Raises (from ``load``):
        LoadError: missing, corrupt or DRM-protected file, no text, or ``ebooklib`` missing.
    """

    def can_load(self, source: str) -> bool:
        return Path(source).suffix.lower() == ".epub"

    def load(self, source: str) -> Iterator[Document]:
        path, raw = read_file(source)
        try:
            import ebooklib
            from ebooklib import epub
        except ImportError:
            raise LoadError(str(path), "needs the 'ebooklib' package: pip install "
                                       "'aspectrag[office]'") from None
        try:
            book = epub.read_epub(str(path), options={"ignore_ncx": True})
        except Exception as exc:
            raise LoadError(str(path), f"not a readable EPUB file ({type(exc).__name__}: "
                                       f"{exc})") from None
        parts: list[str] = []
        sections: list[Section] = []
        pos = 0
        items = [book.get_item_with_id(i) for i, _ in book.spine]
        for item in items:
            if item is None or item.get_type() != ebooklib.ITEM_DOCUMENT:
                continue
            name = item.get_name()
            try:
                doc = parse_html(item.get_content(), source=f"{path}#{name}", doc_id=name,
                                 fallback_title="")
            except LoadError:  # a cover or navigation page without main content
                continue
            start = pos + (2 if parts else 0)
            if not doc.sections or doc.sections[0].start > 0:
                end = doc.sections[0].start if doc.sections else len(doc.text)
                sections.append(Section(start, start + end, heading=doc.title or None))
            sections += [Section(start + s.start, start + s.end, heading=s.heading)
                         for s in doc.sections]
            parts.append(doc.text)
            pos = start + len(doc.text)
        text = "\n\n".join(parts)
        if not text.strip():
            raise LoadError(str(path), "no text found in the EPUB's documents")
        titles = book.get_metadata("DC", "title")
        title = (titles[0][0] if titles else "").strip() or path.stem
        yield Document(doc_id=str(path), source=str(path), title=title, text=text,
                       sections=[s for s in sections if s.end > s.start],
                       fingerprint=fingerprint(raw), metadata={"format": "epub"})

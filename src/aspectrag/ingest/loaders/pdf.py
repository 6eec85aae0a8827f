"""PDF loader: text per page with pypdf, one ``Section`` per page (1-based page numbers).

pypdf returns one line of text per printed line. We normalise it (NFKC: ligatures such as "ﬁ"
become "fi"), join words hyphenated across lines and reflow lines into paragraphs (see
``reflow``), so that the splitter can cut at paragraph and sentence boundaries.
"""

from __future__ import annotations

import io
import logging
import re
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aspectrag.errors import LoadError
from aspectrag.ingest.loaders.common import fingerprint, read_file
from aspectrag.types import Document, Section

if TYPE_CHECKING:
    import pypdf

log = logging.getLogger("aspectrag.ingest")


def _pypdf(source: str) -> Any:
    """The ``pypdf`` module (extra ``pdf``); missing: this file fails, saying what to install."""
    from aspectrag.extras import MissingExtraError, optional_import

    try:
        return optional_import("pypdf", "reading PDF files")
    except MissingExtraError as e:
        raise LoadError(source, str(e)) from None

PDF_SUFFIXES = frozenset({".pdf"})

#: A line shorter than this fraction of the page's median line length ends a paragraph.
SHORT_LINE_RATIO = 0.6
#: A line ending with . ? ! or : and shorter than this fraction of the median ends a paragraph.
SENTENCE_END_RATIO = 0.85

_BAD_TITLE = re.compile(r"^(untitled|microsoft word\b)|\.(dvi|pdf|docx?|tex|ps)$", re.IGNORECASE)
_WORD = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")
_HEADING = re.compile(
    r"^(?:(?:\d+(?:\.\d+)*\.?|[A-Z]\.|[IVX]+\.)\s+[A-Z][^.]{0,80}"
    r"|abstract|references|acknowledge?ments?|introduction|conclusions?|appendix)$",
    re.IGNORECASE,
)
_BULLET = ("•", "◦", "▪", "‣", "∙", "– ", "- ")


def normalise(page_text: str) -> str:
    """NFKC-normalised page text (ligatures "ﬁ" -> "fi", full-width forms) without NUL/CR."""
    text = unicodedata.normalize("NFKC", page_text).replace("\x00", "")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def vocabulary(text: str) -> set[str]:
    """Lower-cased words (hyphenated compounds kept whole) of ``text``: used to decide how to
    join a word hyphenated across a line break."""
    return {w.lower() for w in _WORD.findall(text)}


def _join_hyphenated(head: str, tail: str, vocab: set[str]) -> str:
    """``head`` ends with "-" and ``tail`` starts with a lower-case letter: keep the hyphen when
    the document spells the compound with one ("task-specific") and not without; else drop it
    ("repre-" + "sentation")."""
    m_head = re.search(r"[^\W\d_]+-$", head)
    m_tail = _WORD.match(tail)
    if m_head and m_tail:
        left, right = m_head.group(0)[:-1].lower(), m_tail.group(0).lower()
        if f"{left}-{right}" in vocab and f"{left}{right}" not in vocab:
            return head + tail
    return head[:-1] + tail


def reflow(page_text: str, vocab: set[str] | None = None) -> str:
    """Join the lines of one page of pypdf text into paragraphs.

    A line break becomes a paragraph break (``"\\n\\n"``) after a short line (< 60% of the
    page's median line length), after a line that ends a sentence and is < 85% of the median,
    before a heading-like line ("3.1 Pre-training BERT", "Abstract") and before a bullet; other
    breaks become a space, or nothing for a hyphenated word (see ``_join_hyphenated``).

    Args:
        page_text: text as returned by pypdf (normalised or not).
        vocab: words of the whole document (``vocabulary``); defaults to this page's words.

    Returns:
        The page text with paragraphs separated by ``"\\n\\n"`` (no leading/trailing whitespace).
    """
    text = normalise(page_text)
    lines = [line.strip() for line in text.split("\n")]
    lengths = sorted(len(line) for line in lines if line)
    if not lengths:
        return ""
    if vocab is None:
        vocab = vocabulary(text)
    median = lengths[len(lengths) // 2]

    paragraphs: list[str] = []
    current = ""
    prev = ""
    for line in lines:
        if not line:
            if current:
                paragraphs.append(current)
            current = prev = ""
            continue
        if not current:
            current = line
        elif (
            len(prev) < SHORT_LINE_RATIO * median
            or (prev[-1] in ".?!:" and len(prev) < SENTENCE_END_RATIO * median)
            or _HEADING.match(line)
            or line.startswith(_BULLET)
        ):
            paragraphs.append(current)
            current = line
        elif (
            current.endswith("-")
            and len(current) > 1
            and current[-2].isalpha()
            and line[0].islower()
        ):
            current = _join_hyphenated(current, line, vocab)
        else:
            current = current + " " + line
        prev = line
    if current:
        paragraphs.append(current)
    return "\n\n".join(paragraphs)


def page_separator(previous: str, following: str) -> str:
    """``" "`` when a sentence runs on from one page to the next (the previous page does not end
    with . ? ! : and the next one starts with a lower-case letter), else ``"\\n\\n"``."""
    if previous[-1] not in ".?!:" and following[0].islower():
        return " "
    return "\n\n"


@contextmanager
def _quiet_pypdf() -> Iterator[None]:
    """Silence pypdf's own warnings (they do not name the file); our errors do."""
    pypdf_log = logging.getLogger("pypdf")
    level = pypdf_log.level
    pypdf_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        pypdf_log.setLevel(level)


def _title(reader: pypdf.PdfReader, fallback: str) -> str:  # noqa: F821 (TYPE_CHECKING)
    try:
        title = (reader.metadata.title if reader.metadata else None) or ""
    except Exception:  # broken info dictionary
        title = ""
    title = " ".join(str(title).split())
    if len(title) < 4 or _BAD_TITLE.search(title):
        return fallback
    return title


def parse_pdf(raw: bytes, *, source: str, doc_id: str, fallback_title: str) -> Document:
    """Extract the text of a PDF, page by page.

    Args:
        raw: the PDF bytes.
        source, doc_id: copied into the document.
        fallback_title: used when the PDF's metadata has no usable title.

    Returns:
        A ``Document`` whose ``text`` is the pages' text separated by ``"\\n\\n"`` (``" "`` where
        a sentence runs on to the next page, see ``page_separator``), with one
        ``Section(page=n)`` (1-based) per page that has text; ``metadata["pages"]`` is the page
        count and ``metadata["pages_failed"]`` lists pages whose text could not be extracted.

    Raises:
        LoadError: not a PDF, corrupt, encrypted with a password, or no extractable text
            (scanned / image-only PDF: run OCR first).
    """
    if b"%PDF-" not in raw[:1024]:
        raise LoadError(source, "not a PDF file (no %PDF- header)")
    _pypdf(source)
    with _quiet_pypdf():
        return _parse_pdf(raw, source=source, doc_id=doc_id, fallback_title=fallback_title)


def _parse_pdf(raw: bytes, *, source: str, doc_id: str, fallback_title: str) -> Document:
    pypdf = _pypdf(source)
    try:
        reader = pypdf.PdfReader(io.BytesIO(raw))
        if reader.is_encrypted:
            try:
                decrypted = reader.decrypt("")
            except Exception as exc:
                raise LoadError(source, f"encrypted PDF, cannot be decrypted ({exc})") from None
            if decrypted == pypdf.PasswordType.NOT_DECRYPTED:
                raise LoadError(source, "encrypted PDF (password required); decrypt it first")
        pages = list(reader.pages)
    except LoadError:
        raise
    except Exception as exc:  # pypdf's PdfReadError and the rest
        raise LoadError(source, f"corrupt PDF ({type(exc).__name__}: {exc})") from None
    if not pages:
        raise LoadError(source, "PDF has no pages")

    raw_pages: list[str | None] = []
    failed: list[int] = []
    for number, page in enumerate(pages, start=1):
        try:
            raw_pages.append(normalise(page.extract_text() or ""))
        except Exception as exc:
            log.warning("%s: text of page %d could not be extracted (%s)", source, number, exc)
            raw_pages.append(None)
            failed.append(number)
    vocab = vocabulary("\n".join(p for p in raw_pages if p))

    parts: list[str] = []
    sections: list[Section] = []
    pos = 0
    for number, page_text in enumerate(raw_pages, start=1):
        page_text = reflow(page_text, vocab) if page_text else ""
        if not page_text:
            continue
        if parts:
            sep = page_separator(parts[-1], page_text)
            parts.append(sep)
            pos += len(sep)
        sections.append(Section(start=pos, end=pos + len(page_text), page=number))
        parts.append(page_text)
        pos += len(page_text)
    if not parts:
        reason = "no extractable text (scanned or image-only PDF?); run OCR on it first"
        if failed:
            reason = f"text extraction failed on all {len(failed)} pages"
        raise LoadError(source, reason)
    return Document(
        doc_id=doc_id,
        source=source,
        title=_title(reader, fallback_title),
        text="".join(parts),
        sections=sections,
        fingerprint=fingerprint(raw),
        metadata={"format": "pdf", "pages": len(pages), "pages_failed": failed},
    )


class PdfLoader:
    """Loads ``.pdf`` files (see ``parse_pdf``).

    Raises (from ``load``):
        LoadError: missing, empty, corrupt, encrypted or text-less PDF.
    """

    def can_load(self, source: str) -> bool:
        return Path(source).suffix.lower() in PDF_SUFFIXES

    def load(self, source: str) -> Iterator[Document]:
        path, raw = read_file(source)
        yield parse_pdf(raw, source=str(path), doc_id=str(path), fallback_title=path.stem)

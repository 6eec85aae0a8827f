"""Office formats: Word (.docx, python-docx), PowerPoint (.pptx, python-pptx), Excel (.xlsx,
openpyxl) and CSV (stdlib ``csv``). Headings, slide numbers ("Slide 3") and sheet names become
section headings, so chunks cite them as their location. Needs the ``office`` extra
(``pip install aspectrag[office]``) except for CSV.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from aspectrag.errors import LoadError
from aspectrag.ingest.loaders.blocks import TextBuilder
from aspectrag.ingest.loaders.common import decode_text, fingerprint, read_file
from aspectrag.types import Document

#: rows of a sheet / CSV file read at most (a larger table is cut, with a note in metadata)
MAX_ROWS = 100_000


def _need(module: str) -> Any:
    try:
        return __import__(module)
    except ImportError:
        raise LoadError(module, f"needs the '{module}' package: pip install "
                                "'aspectrag[office]'") from None


def _row(cells: Any) -> str:
    return " | ".join(str(c).strip() for c in cells if c is not None and str(c).strip())


def parse_docx(raw: bytes, source: str) -> tuple[str, list, str]:
    """Paragraphs and tables in body order; ``Heading n`` / ``Title`` styles are headings."""
    docx = _need("docx")
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    d = docx.Document(io.BytesIO(raw))
    b = TextBuilder()
    for el in d.element.body.iterchildren():
        tag = el.tag.rsplit("}", 1)[-1]
        if tag == "p":
            p = Paragraph(el, d)
            style = (p.style.name if p.style is not None else "") or ""
            if style.startswith(("Heading", "Title")):
                b.heading(p.text)
            else:
                b.text(p.text)
        elif tag == "tbl":
            b.text("\n".join(_row(c.text for c in r.cells) for r in Table(el, d).rows))
    text, sections = b.build()
    return text, sections, (d.core_properties.title or "").strip()


def parse_pptx(raw: bytes, source: str) -> tuple[str, list, str]:
    """One section per slide, heading ``"Slide n"``: title, text frames, tables, notes."""
    pptx = _need("pptx")
    prs = pptx.Presentation(io.BytesIO(raw))
    b = TextBuilder()
    for n, slide in enumerate(prs.slides, start=1):
        b.heading(f"Slide {n}", show=False)
        for shape in slide.shapes:
            if shape.has_text_frame:
                b.text("\n".join(p.text for p in shape.text_frame.paragraphs if p.text.strip()))
            elif getattr(shape, "has_table", False) and shape.has_table:
                b.text("\n".join(_row(c.text for c in r.cells) for r in shape.table.rows))
        if slide.has_notes_slide:
            b.text(slide.notes_slide.notes_text_frame.text)
    text, sections = b.build()
    return text, sections, (prs.core_properties.title or "").strip()


def parse_xlsx(raw: bytes, source: str) -> tuple[str, list, str]:
    """One section per sheet, heading = the sheet name; a row is its cells joined by ``|``
    (cached values of formulas)."""
    openpyxl = _need("openpyxl")
    wb = openpyxl.load_workbook(io.BytesIO(raw), read_only=True, data_only=True)
    b = TextBuilder()
    for ws in wb.worksheets:
        b.heading(ws.title, show=False)
        rows = []
        for i, r in enumerate(ws.iter_rows(values_only=True)):
            if i >= MAX_ROWS:
                break
            line = _row(r)
            if line:
                rows.append(line)
        b.text("\n".join(rows))
    title = (wb.properties.title or "").strip() if wb.properties else ""
    wb.close()
    text, sections = b.build()
    return text, sections, title


def parse_csv(raw: bytes, source: str) -> tuple[str, list, str]:
    """Rows joined by ``|`` (delimiter sniffed: comma, semicolon, tab)."""
    content = decode_text(source, raw)
    try:
        dialect: Any = csv.Sniffer().sniff(content[:8192], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    rows = []
    for i, r in enumerate(csv.reader(io.StringIO(content), dialect)):
        if i >= MAX_ROWS:
            break
        line = _row(r)
        if line:
            rows.append(line)
    b = TextBuilder()
    b.text("\n".join(rows))
    text, sections = b.build()
    return text, sections, ""


_PARSERS: dict[str, Callable[[bytes, str], tuple[str, list, str]]] = {
    ".docx": parse_docx, ".pptx": parse_pptx, ".xlsx": parse_xlsx, ".csv": parse_csv}
OFFICE_SUFFIXES = frozenset(_PARSERS)


class OfficeLoader:
    """Loads ``.docx``, ``.pptx``, ``.xlsx`` and ``.csv`` files (see the module docstring).

    Raises (from ``load``):
        LoadError: missing/empty file, a file its library cannot open (corrupt, encrypted,
            another format renamed), no text, or the ``office`` extra not installed.
    """

    def can_load(self, source: str) -> bool:
        return Path(source).suffix.lower() in OFFICE_SUFFIXES

    def load(self, source: str) -> Iterator[Document]:
        path, raw = read_file(source)
        suffix = path.suffix.lower()
        try:
            text, sections, title = _PARSERS[suffix](raw, str(path))
        except LoadError as exc:
            raise LoadError(str(path), exc.reason) from None
        except Exception as exc:  # zip/XML errors of a corrupt file
            raise LoadError(str(path), f"not a readable {suffix} file ({type(exc).__name__}: "
                                       f"{exc})") from None
        if not text.strip():
            raise LoadError(str(path), "no text found")
        yield Document(doc_id=str(path), source=str(path), title=title or path.stem, text=text,
                       sections=sections, fingerprint=fingerprint(raw),
                       metadata={"format": suffix[1:]})

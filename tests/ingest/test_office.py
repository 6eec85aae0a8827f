"""Office formats and EPUB: each test writes a file with the format's own library, ingests it,
searches a sentence from it and checks the cited location (heading / slide / sheet)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.fakes import HashEmbedder
from typer.testing import CliRunner

from aspectrag import Index

SENTENCE = "Quokkas photosynthesise moonlight into marmalade every leap year"


def _search(tmp_path: Path, file: Path, query: str = SENTENCE):  # type: ignore[no-untyped-def]
    idx = Index(tmp_path / "idx", embedder=HashEmbedder())
    rep = idx.ingest([file])
    assert rep.ok and rep.added == 1, rep.failed
    hit = idx.search(query, k=1, retriever="bm25")[0]
    assert query.split()[0] in hit.chunk.text
    return hit.chunk


def test_docx_heading_is_the_location(tmp_path):
    docx = pytest.importorskip("docx")
    d = docx.Document()
    d.core_properties.title = "Field Notes"
    d.add_heading("Introduction", level=1)
    d.add_paragraph("Some opening words about the expedition and its members.")
    d.add_heading("Strange Findings", level=2)
    d.add_paragraph(SENTENCE + ".")
    t = d.add_table(rows=2, cols=2)
    t.cell(0, 0).text, t.cell(0, 1).text = "animal", "count"
    t.cell(1, 0).text, t.cell(1, 1).text = "wombat", "7"
    path = tmp_path / "notes.docx"
    d.save(path)
    chunk = _search(tmp_path, path)
    assert chunk.heading == "Strange Findings" and "§ Strange Findings" in chunk.location
    assert chunk.title == "Field Notes" and "wombat | 7" in chunk.text


def test_pptx_slide_number_is_the_location(tmp_path):
    pptx = pytest.importorskip("pptx")
    prs = pptx.Presentation()
    for title, body in [("Agenda", "Welcome and overview of the quarter."),
                        ("Results", "Revenue grew in every region this quarter."),
                        ("Curiosities", SENTENCE)]:
        slide = prs.slides.add_slide(prs.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
    path = tmp_path / "deck.pptx"
    prs.save(path)
    chunk = _search(tmp_path, path)
    assert chunk.heading == "Slide 3" and "§ Slide 3" in chunk.location
    assert "Curiosities" in chunk.text


def test_xlsx_sheet_name_is_the_location(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Budget"
    ws.append(["item", "cost"])
    ws.append(["tents", 120])
    ws2 = wb.create_sheet("Observations")
    ws2.append(["day", "note"])
    ws2.append([3, SENTENCE])
    path = tmp_path / "book.xlsx"
    wb.save(path)
    chunk = _search(tmp_path, path)
    assert chunk.heading == "Observations" and f"3 | {SENTENCE}" in chunk.text
    assert _search(tmp_path / "b", path, "tents").heading == "Budget"


def test_csv_rows(tmp_path):
    import csv

    path = tmp_path / "table.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f, delimiter=";")
        w.writerows([["day", "note"], ["1", "Nothing happened today"], ["2", SENTENCE]])
    chunk = _search(tmp_path, path)
    assert f"2 | {SENTENCE}" in chunk.text and chunk.heading is None


def test_epub_chapters_through_the_html_extractor(tmp_path):
    pytest.importorskip("ebooklib")
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("id123")
    book.set_title("A Strange Journal")
    book.set_language("en")
    chapters = []
    for i, (head, body) in enumerate([
            ("Departure", "We left the harbour at dawn with a crew of eleven sailors and a "
                          "goat. The sea was calm and the wind was steady all day long."),
            ("The Island", f"On the island we met the locals. {SENTENCE}. Nobody could "
                           "explain it, and the goat refused to comment on the matter.")]):
        c = epub.EpubHtml(title=head, file_name=f"ch{i}.xhtml", lang="en")
        c.content = (f"<html><head><title>{head}</title></head><body><h1>{head}</h1>"
                     f"<p>{body}</p><p>{body}</p></body></html>")
        book.add_item(c)
        chapters.append(c)
    book.toc = chapters
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", *chapters]
    path = tmp_path / "journal.epub"
    epub.write_epub(str(path), book)
    chunk = _search(tmp_path, path)
    assert chunk.heading == "The Island" and chunk.title == "A Strange Journal"


def test_folder_of_unsupported_files_says_so(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("a.odt", "b.odt", "c.key", "d.rtf", "noext"):
        (docs / name).write_bytes(b"something")
    rep = Index(tmp_path / "idx", embedder=HashEmbedder()).ingest([docs])
    assert rep.added == 0 and rep.skipped_types == {".odt": 2, ".key": 1, ".rtf": 1, "(none)": 1}
    from aspectrag.cli import main

    res = CliRunner().invoke(main.app, ["ingest", str(docs), "--index", str(tmp_path / "i2")])
    assert "skipped files of unsupported types: 2 .odt" in " ".join(res.output.split())


def test_corrupt_office_file_is_one_clear_line(tmp_path):
    path = tmp_path / "broken.docx"
    path.write_bytes(b"PK\x03\x04 this is not really a zip archive")
    rep = Index(tmp_path / "idx", embedder=HashEmbedder()).ingest([path])
    (src, reason), = rep.failed
    assert src == str(path) and reason.startswith("not a readable .docx file") and "\n" not in reason

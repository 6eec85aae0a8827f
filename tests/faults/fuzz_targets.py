"""Fuzz targets (issue 17 item 9c): every loader, the splitter, the rule-based query
decomposition, the LLM-output query parser and query validation, each with a hypothesis
strategy of generated inputs and a check of its contract. The only exceptions allowed are the
project's own (:class:`~aspectrag.errors.AspectragError`, e.g. ``LoadError``); anything else
is a bug.

Used by ``tests/faults/test_fuzz.py`` (small budget) and ``benchmarks/faults.py`` (large).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aspectrag.errors import AspectragError
from aspectrag.types import Document, Section

# ---------------------------------------------------------------------------- inputs
_WORDS = ["Enzymes", "catalyse", "reactions", "the", "of", "and", "RAG", "what", "how", "why",
          "Rome", "consuls", "élan", "straße", "日本", "😀", "x", "7", "3.14", "e.g.", "U.S."]
_PUNCT = [" ", " ", " ", "\n", "\n\n", ". ", "? ", "! ", ", ", "; ", ": ", " - ", "\t", "\r\n",
          "(", ")", "[1]", '"', "'", "#", "## ", "* ", "1. ", "---\n", "\u00a0", "\u200b", "\x00"]
prose = st.lists(st.sampled_from(_WORDS + _PUNCT) | st.text(max_size=8), max_size=80).map("".join)
text_or_noise = prose | st.text(max_size=300)

_TAGS = ["<html>", "</html>", "<head>", "<title>", "</title>", "<body>", "</body>", "<p>", "</p>",
         "<h1>", "</h1>", "<h2>", "</h2>", "<ul>", "<li>", "</li>", "</ul>", "<table>", "<tr>",
         "<td>", "</td>", "<script>", "</script>", "<br>", "<div class='x'>", "</div>", "<!--",
         "-->", "<meta charset='latin-1'>", "<figure>", "<img src=x>", "&amp;", "&#0;", "<"]
html = st.lists(st.sampled_from(_TAGS) | prose, max_size=60).map("".join)
encodings = st.sampled_from(["utf-8", "utf-16", "latin-1", "cp1252"])


def _encode(text: str, enc: str) -> bytes:
    return text.encode(enc, errors="replace")


def minimal_pdf(text: str = "Enzymes are catalysts. They speed up reactions.") -> bytes:
    """A one-page PDF with ``text`` in Helvetica (hand-written objects and xref table)."""
    body = text.encode("latin-1", errors="replace").replace(b"\\", b"").replace(b"(", b"")
    stream = b"BT /F1 12 Tf 72 720 Td (" + body.replace(b")", b"") + b") Tj ET"
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, o in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + o + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


def _mutate(raw: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    """Apply (kind, position, data) edits: 0 overwrite, 1 insert, 2 delete, 3 truncate."""
    b = bytearray(raw)
    for kind, pos, data in edits:
        p = pos % (len(b) + 1)
        if kind == 0:
            b[p : p + len(data)] = data
        elif kind == 1:
            b[p:p] = data
        elif kind == 2:
            del b[p : p + max(1, len(data))]
        else:
            del b[p:]
    return bytes(b)


edits = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 10_000), st.binary(max_size=12)),
                 max_size=6)
pdf_bytes = st.one_of(
    st.tuples(prose, edits).map(lambda t: _mutate(minimal_pdf(t[0]), t[1])),
    st.binary(max_size=400).map(lambda b: b"%PDF-1.4\n" + b),
    st.binary(max_size=200),
)

_json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=6,
)
beir_object = st.fixed_dictionaries(
    {}, optional={"_id": _json_value | st.sampled_from(["1", "1", "a b", "", " "]),
                  "title": _json_value | prose, "text": _json_value | prose,
                  "metadata": _json_value})
beir_line = st.one_of(
    beir_object.map(lambda o: json.dumps(o, ensure_ascii=False).encode()),
    st.text(max_size=40).map(str.encode),
    st.binary(max_size=40),
    st.sampled_from([b"", b"{}", b"[]", b"null", b'{"_id": "1", "text": "x"}', b"\xef\xbb\xbf{"]),
)
beir_file = st.lists(beir_line, max_size=12).map(lambda lines: b"\n".join(lines))


@st.composite
def splitter_case(draw: Callable[..., Any]) -> tuple[Document, int, int, int | None]:
    text = draw(text_or_noise)
    size = draw(st.integers(1, 80))
    overlap = draw(st.integers(0, size - 1))
    cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=6)))
    sections = []
    for a, b in zip(cuts, cuts[1:], strict=False):
        sections.append(Section(a, b, page=draw(st.none() | st.integers(1, 9)),
                                heading=draw(st.none() | st.text(max_size=12))))
    title = draw(st.text(max_size=20))
    max_length = draw(st.none() | st.integers(size, size + 40))
    doc = Document(doc_id="d", source="/d.txt", title=title, text=text, sections=sections)
    return doc, size, overlap, max_length


# ---------------------------------------------------------------------------- checks
def _check_document(doc: Document) -> None:
    assert isinstance(doc.text, str) and isinstance(doc.title, str)
    for s in doc.sections:
        assert 0 <= s.start <= s.end <= len(doc.text), (s, len(doc.text))


def check_text(case: tuple[str, str, bool]) -> None:
    from aspectrag.ingest.loaders.text import parse_text

    text, enc, markdown = case
    doc = parse_text(_encode(text, enc), source="/f.md", doc_id="/f.md", title="f",
                     markdown=markdown)
    _check_document(doc)
    assert doc.text.strip()


def check_raw_text(raw: bytes) -> None:
    from aspectrag.ingest.loaders.text import parse_text

    _check_document(parse_text(raw, source="/f.txt", doc_id="/f.txt", title="f", markdown=False))


def check_html(case: tuple[str, str]) -> None:
    from aspectrag.ingest.loaders.html import parse_html

    page, enc = case
    _check_document(parse_html(_encode(page, enc), source="/p.html", doc_id="/p.html",
                               fallback_title="p"))


def check_pdf(raw: bytes) -> None:
    from aspectrag.ingest.loaders.pdf import parse_pdf

    doc = parse_pdf(raw, source="/x.pdf", doc_id="/x.pdf", fallback_title="x")
    _check_document(doc)
    assert all(s.page is not None and s.page >= 1 for s in doc.sections)


def check_beir(raw: bytes) -> None:
    from aspectrag.ingest.loaders.beir import BeirCorpusLoader

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "corpus.jsonl"
        path.write_bytes(raw)
        docs: list[Document] = []
        try:
            for doc in BeirCorpusLoader().load(str(path)):
                docs.append(doc)
        finally:
            ids = [d.doc_id for d in docs]
            assert len(ids) == len(set(ids))
            for d in docs:
                assert d.source == f"{path.resolve()}#{d.doc_id}"
                assert d.text.strip() or d.metadata.get("empty")  # empty ones are marked


def check_splitter(case: tuple[Document, int, int, int | None]) -> None:
    from aspectrag.ingest.splitter import RecursiveCharacterSplitter

    doc, size, overlap, max_length = case
    chunks = RecursiveCharacterSplitter(size, overlap, max_length=max_length).split(doc)
    if not doc.text.strip():
        assert chunks == []
    ids = [c.chunk_id for c in chunks]
    assert len(ids) == len(set(ids))
    prev_start = -1
    for i, c in enumerate(chunks):
        assert 0 <= c.start < c.end <= len(doc.text), (c.start, c.end, len(doc.text))
        assert c.text == doc.text[c.start : c.end]
        assert c.text.strip() and c.index == i and c.chunk_id == f"{doc.doc_id}#{i}"
        assert c.start > prev_start  # document order
        prev_start = c.start


def check_rules(question: str) -> None:
    from aspectrag.retrieve.query_gen.rules import RuleBasedQueryGenerator

    out = RuleBasedQueryGenerator().generate(question)
    assert isinstance(out, list)
    for q in out:
        assert isinstance(q.text, str) and q.weight >= 0


def check_parse(case: tuple[str, int | None]) -> None:
    from aspectrag.retrieve.query_gen.parse import parse_queries

    text, n = case
    out = parse_queries(text, n)
    assert all(isinstance(q, str) and q.strip() for q in out)
    if n is not None:
        assert len(out) <= n
    keys = [" ".join(q.split()).rstrip("?.!").strip().casefold() for q in out]
    assert len(keys) == len(set(keys))


def check_validate(query: str) -> None:
    import bm25s

    from aspectrag.validate import bm25_terms, validate_query

    assert bm25_terms(query) == bm25s.tokenize([query], stopwords="en", return_ids=False,
                                               show_progress=False)[0]
    validate_query(query)


_llm_output = st.lists(
    st.sampled_from(["1. ", "2) ", "- ", "* ", "Query 1: ", "Here are three queries:", "\n",
                     "```json\n", "```", '["a", "b"]', '{"queries": ["q1", 2]}', "<think>",
                     "</think>", "**Aspect**: ", '"', "\n\n"]) | prose, max_size=30).map("".join)

#: name -> (strategy, check); a check raises AssertionError on a broken contract.
TARGETS: dict[str, tuple[st.SearchStrategy[Any], Callable[[Any], None]]] = {
    "text/markdown loader": (st.tuples(text_or_noise, encodings, st.booleans()), check_text),
    "text loader (raw bytes)": (st.binary(max_size=300), check_raw_text),
    "html loader": (st.tuples(html, encodings), check_html),
    "pdf loader": (pdf_bytes, check_pdf),
    "beir corpus.jsonl loader": (beir_file, check_beir),
    "splitter": (splitter_case(), check_splitter),
    "rule-based query decomposition": (text_or_noise, check_rules),
    "LLM-output query parser": (st.tuples(_llm_output | text_or_noise,
                                          st.none() | st.integers(0, 5)), check_parse),
    "query validation": (text_or_noise, check_validate),
}


def fuzz(name: str, max_examples: int, *, derandomize: bool = True) -> int:
    """Run target ``name`` on ``max_examples`` generated inputs; returns how many ran.

    Raises:
        AssertionError / any exception but AspectragError: the (shrunk) failing input.
    """
    strategy, check = TARGETS[name]
    count = 0

    @settings(max_examples=max_examples, deadline=None, database=None, derandomize=derandomize,
              suppress_health_check=list(HealthCheck), print_blob=False)
    @given(strategy)
    def prop(case: Any) -> None:
        nonlocal count
        count += 1
        try:
            check(case)
        except AspectragError:
            pass  # the project's own error: a clear message, the allowed outcome

    prop()
    return count

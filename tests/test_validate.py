"""Validation at the edges (issue 17 item 5, contract 8): k, queries, missing indexes."""

from __future__ import annotations

import pytest
from tests.fakes import HashEmbedder

from aspectrag.errors import AspectragError, IndexNotFoundError, InvalidRequestError
from aspectrag.index import Index
from aspectrag.validate import (
    STOPWORDS_EN,
    bm25_terms,
    require_index,
    searchable_terms,
    validate_k,
    validate_query,
)


@pytest.mark.parametrize("k", [-1, 0, -3, 2.5, "3", True, None])
def test_k_below_one_or_not_a_number_is_rejected_naming_the_limit(k):
    with pytest.raises(InvalidRequestError) as e:
        validate_k(k)
    assert e.value.field == "k" and "k must be" in str(e.value)
    assert isinstance(e.value, AspectragError)


def test_k_accepted_and_upper_limit_named():
    import numpy as np

    assert validate_k(1) == 1 and validate_k(np.int64(7)) == 7 and validate_k(5.0) == 5
    with pytest.raises(InvalidRequestError, match="<= 100"):
        validate_k(101, max_k=100)


@pytest.mark.parametrize("query", ["", "   \n", "😀🎉", "???", "the of and", "🔥 the 🔥", 42])
def test_queries_without_a_searchable_word_are_rejected(query):
    with pytest.raises(InvalidRequestError) as e:
        validate_query(query)
    assert e.value.field == "query"


@pytest.mark.parametrize("query", ["x", "7", "日", "what is RAG?", "C++", "Ünïcode 😀"])
def test_queries_with_a_content_word_are_accepted(query):
    assert validate_query(query) == query


def test_stop_list_and_tokeniser_are_bm25s_ones():
    import bm25s
    from bm25s.stopwords import STOPWORDS_EN as BM25S_STOP

    assert set(BM25S_STOP) == STOPWORDS_EN
    for q in ["What is the role of Enzymes, in 2024?", "a_b c-d ÜBER straße", "the of"]:
        assert bm25_terms(q) == bm25s.tokenize([q], stopwords="en", return_ids=False,
                                               show_progress=False)[0]


def test_wordpiece_fallback_needs_a_non_special_piece(embedder):
    tok = embedder.tokenizer
    assert searchable_terms("x", lambda: tok) == ["x"]
    assert searchable_terms("日", lambda: tok) == ["日"]  # one CJK character: no BM25 term
    # a word character the vocabulary does not know maps to [UNK] only: not searchable
    assert searchable_terms("猫", lambda: tok) == []  # MiniLM: [UNK]
    assert searchable_terms("\U00010900", lambda: tok) == []  # Phoenician letter


def _index(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("Enzymes are biological catalysts that speed up reactions.\n")
    (docs / "b.txt").write_text("The Roman Republic was governed by two consuls.\n")
    idx = Index(tmp_path / "idx", embedder=HashEmbedder())
    idx.ingest([docs])
    return idx


def test_index_search_and_ask_validate(tmp_path):
    idx = _index(tmp_path)
    assert len(idx.search("enzymes", k=1, retriever="bm25")) == 1
    for k in (-1, 0, -3):
        with pytest.raises(InvalidRequestError, match=">= 1") as e:
            idx.search("enzymes", k=k, retriever="bm25")
        assert e.value.field == "k"
        with pytest.raises(InvalidRequestError):
            idx.ask("what are enzymes?", k=k, retriever="bm25")
    for q in ("", "😀", "the of and"):
        with pytest.raises(InvalidRequestError, match="query"):
            idx.search(q, retriever="bm25")
    with pytest.raises(InvalidRequestError) as e:
        idx.ask("😀", retriever="bm25")
    assert e.value.field == "question"


def test_reading_a_missing_index_raises_and_creates_nothing(tmp_path):
    missing = tmp_path / "typo"
    idx = Index(missing, embedder=HashEmbedder())
    for call in (lambda: idx.search("enzymes"), lambda: idx.ask("enzymes?"),
                 lambda: idx.retriever("bm25")):
        with pytest.raises(IndexNotFoundError, match="no index at .*typo; run `aspectrag ingest"):
            call()
    assert not missing.exists()
    with pytest.raises(IndexNotFoundError):
        require_index(tmp_path)  # a folder that is not an index
    require_index("qdrant://host:6333/c")  # remote backends check themselves


def test_symlink_loop_is_one_load_error(tmp_path):
    from aspectrag.errors import LoadError
    from aspectrag.ingest.loaders import discover, load

    (tmp_path / "a.txt").symlink_to(tmp_path / "b.txt")
    (tmp_path / "b.txt").symlink_to(tmp_path / "a.txt")
    (tmp_path / "ok.txt").write_text("Some text worth indexing here.\n")
    for given in ([str(tmp_path / "a.txt")], [str(tmp_path)]):
        found = discover(given)
        assert str(tmp_path / "a.txt") in found
        with pytest.raises(LoadError, match="symlink loop"):
            list(load(str(tmp_path / "a.txt")))
    rep = Index(tmp_path / "idx", embedder=HashEmbedder()).ingest([tmp_path])
    assert rep.added == 1 and {s for s, _ in rep.failed} == {str(tmp_path / "a.txt"),
                                                            str(tmp_path / "b.txt")}

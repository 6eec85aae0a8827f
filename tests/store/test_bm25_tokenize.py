"""The BM25 token lists are built by aspectrag (store/bm25_index.py: bm25s' token pattern,
stop list and stemmer without bm25s' per-call progress bars); they must equal
``bm25s.tokenize``'s on any text, or scores would drift from the corpus's tokens."""

from __future__ import annotations

import json
from pathlib import Path

import bm25s
import pytest
import Stemmer
from hypothesis import given, settings
from hypothesis import strategies as st

from aspectrag.store.bm25_index import tokenize

STEM = Stemmer.Stemmer("english")
SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "wikipedia-aspects" / "corpus.jsonl"
SCIFACT = Path(__file__).resolve().parents[3] / "shared" / "data" / "scifact"


def _bm25s(texts: list[str]) -> list[list[str]]:
    return bm25s.tokenize(texts, stopwords="en", stemmer=STEM, return_ids=False,
                          show_progress=False)


def test_equal_on_tricky_text():
    texts = ["What is the Eiffel Tower?", "", "a an the of", "Ünïcödé naïve café's résumé",
             "COVID-19 and SARS-CoV-2: 3.5% of 1,000 cases", "x y z", "don't won't it's",
             "日本語のテキスト and 中文", "running runners ran RUNS", "e-mail e.g. i.e. U.S.A.",
             "tab\tnew\nline\r\n", "__init__ snake_case camelCase", "repeated repeated word"]
    assert tokenize(texts, STEM) == _bm25s(texts)


def test_equal_on_the_bundled_corpus():
    docs = [json.loads(line) for line in SAMPLE.open()]
    texts = [d["title"] + "\n" + d["text"] for d in docs[:300]]
    texts += [f"What is {d['title']}?" for d in docs]
    assert tokenize(texts, STEM) == _bm25s(texts)


@pytest.mark.skipif(not (SCIFACT / "queries.jsonl").is_file(),
                    reason="../shared/data/scifact is absent (shared data folder)")
def test_equal_on_scifact_queries():
    texts = [json.loads(line)["text"] for line in (SCIFACT / "queries.jsonl").open()]
    assert tokenize(texts, STEM) == _bm25s(texts)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=80), min_size=1, max_size=4))
def test_equal_on_any_text(texts):
    assert tokenize(texts, STEM) == _bm25s(texts)


def test_ids_form_is_bm25s():
    ids = tokenize(["cats purr", "dogs bark"], STEM, return_ids=True)
    ref = bm25s.tokenize(["cats purr", "dogs bark"], stopwords="en", stemmer=STEM,
                         show_progress=False)
    assert ids.ids == ref.ids and ids.vocab == ref.vocab

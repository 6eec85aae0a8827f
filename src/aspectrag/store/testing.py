"""The store contract test suite: one set of tests every ``Store`` backend runs (the way
Haystack's ``haystack/testing/document_store.py`` works).

A backend's test module subclasses :class:`StoreContract` and provides the ``open_store``
fixture: a callable ``open_store(readonly=False) -> Store`` that opens the SAME (initially
empty) store each time it is called, so that persistence across reopen and read-only opening
can be tested::

    class TestSQLiteContract(StoreContract):
        @pytest.fixture
        def open_store(self, tmp_path):
            return lambda readonly=False: SQLiteStore(tmp_path / "idx", readonly=readonly)

Needs pytest (a test-time dependency only; this module is not imported by the package).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from aspectrag.errors import AspectragError, IndexMismatchError
from aspectrag.store.base import SpaceSpec, Store, chunk_key, source_matches
from aspectrag.types import Chunk, Document, Section

SPACES = [SpaceSpec("dense", 8), SpaceSpec("head0", 5), SpaceSpec("head1", 5)]

#: sources that tell exact / folder / corpus-file matching, ``_`` / ``%`` wildcards, case and
#: Unicode apart
FILTER_SOURCES = [
    "/data/a_b/x.txt", "/data/axb/y.txt", "/data/a%b/z.txt", "/data/a_b.txt",
    "/data/Café/u.txt", "/data/café/v.txt", "/data/cafe\u0301/w.txt", "/data/ab",
    "/c/corpus.jsonl#d1", "/c/corpus.jsonl#d2", "/c/corpus.jsonl.bak#d1",
    "https://example.org/p?q=1", "/data/日本/文書.txt",
]
FILTERS = [
    ["/data/a_b"], ["/data/a_b/"], ["/data/a%b"], ["/data/a%"], ["/data/a"], ["/data/A_B"],
    ["/data/café"], ["/data/Café"], ["/data/cafe\u0301"], ["/c/corpus.jsonl"],
    ["/c/corpus.jsonl#d1"], ["/c/corpus"], ["https://example.org/p?q=1"], ["/data/日本"],
    ["/data/_"], ["%"], ["/data/a_b/x.txt", "/c/corpus.jsonl"], ["/"],
]


def make_doc(source: str, texts: list[str], fp: str = "f",
             doc_id: str | None = None) -> tuple[Document, list[Chunk]]:
    """A document of ``texts`` (one chunk each, ids ``chunk_key(source, i)``)."""
    doc = Document(doc_id or source, source, "T", " ".join(texts), fingerprint=fp)
    chunks, pos = [], 0
    for i, t in enumerate(texts):
        chunks.append(Chunk(chunk_key(source, i), doc.doc_id, source, "T", i, t, pos, pos + len(t)))
        pos += len(t) + 1
    return doc, chunks


def unit_vectors(n: int, d: int, seed: int = 0) -> np.ndarray:
    """``(n, d)`` float32 random unit rows."""
    v = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def vectors_for(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Vectors of every space of :data:`SPACES` for ``n`` chunks."""
    return {s.name: unit_vectors(n, s.dim, seed * 10 + j) for j, s in enumerate(SPACES)}


class StoreContract:
    """The contract tests; subclasses provide the ``open_store`` fixture (module doc)."""

    @pytest.fixture
    def open_store(self) -> Callable[..., Store]:
        raise NotImplementedError("a backend's test class provides open_store")

    @pytest.fixture
    def store(self, open_store: Callable[..., Store]) -> Store:
        return open_store()

    @staticmethod
    def fill(store: Store, docs: list[tuple[Document, list[Chunk]]], seed: int = 0) -> None:
        with store.writer() as w:
            w.declare_spaces(SPACES)
            for i, (doc, chunks) in enumerate(docs):
                w.upsert(doc, chunks, vectors_for(len(chunks), seed + i))

    # -- basics ------------------------------------------------------------------------------
    def test_empty_store(self, store: Store) -> None:
        assert store.stats() == {"documents": 0, "chunks": 0}
        assert store.sources() == [] and list(store.iter_chunks()) == []
        assert store.spaces() == [] and store.vector_spaces() == []
        assert store.get_meta("embedder") is None and store.fingerprint("/x") is None
        assert store.keyword_search(["anything"], 5) == [[]]
        assert isinstance(store.capabilities, frozenset) and isinstance(store, Store)

    def test_upsert_get_and_iterate(self, store: Store) -> None:
        a, b = make_doc("/a.txt", ["cats purr loudly", "dogs bark at night"]), \
            make_doc("/b.txt", ["fish swim in water"], fp="g")
        self.fill(store, [a, b])
        assert store.stats() == {"documents": 2, "chunks": 3}
        assert store.sources() == ["/a.txt", "/b.txt"]
        assert store.fingerprint("/b.txt") == "g"
        ids = [chunk_key("/b.txt", 0), chunk_key("/a.txt", 1)]
        got = store.get_chunks(ids)
        assert [c.chunk_id for c in got] == ids and got[1].text == "dogs bark at night"
        assert (got[1].source, got[1].index, got[1].start, got[1].end) == ("/a.txt", 1, 17, 35)
        assert [c.chunk_id for c in store.iter_chunks()] == [
            chunk_key("/a.txt", 0), chunk_key("/a.txt", 1), chunk_key("/b.txt", 0)]
        with pytest.raises(KeyError):
            store.get_chunks(["/nope#0"])

    def test_replace_and_delete(self, store: Store) -> None:
        self.fill(store, [make_doc("/a.txt", ["one two", "three four"]),
                          make_doc("/a.txt/b.txt", ["five"]), make_doc("/ab.txt", ["six"])])
        self.fill(store, [make_doc("/a.txt", ["only chunk now"], fp="new")], seed=5)
        assert store.stats() == {"documents": 3, "chunks": 3}
        assert store.fingerprint("/a.txt") == "new"
        assert store.keyword_search(["three"], 5) == [[]]
        with store.writer() as w:
            assert w.delete("/a.txt") == 1  # exact: not /a.txt/b.txt, not /ab.txt
            assert w.delete("/missing") == 0
        assert store.sources() == ["/a.txt/b.txt", "/ab.txt"]

    def test_equal_doc_ids_in_two_corpus_files(self, store: Store) -> None:
        self.fill(store, [make_doc("/x/corpus.jsonl#d1", ["alpha"], doc_id="d1"),
                          make_doc("/y/corpus.jsonl#d1", ["beta"], doc_id="d1")])
        chunks = list(store.iter_chunks())
        assert [c.doc_id for c in chunks] == ["d1", "d1"]
        assert len({c.chunk_id for c in chunks}) == 2

    # -- source filter -----------------------------------------------------------------------
    @pytest.mark.parametrize("filters", FILTERS, ids=[repr(f) for f in FILTERS])
    def test_source_filter_is_exact(self, store: Store, filters: list[str]) -> None:
        self.fill(store, [make_doc(s, [f"common word{i}"]) for i, s in enumerate(FILTER_SOURCES)])
        want = {s for s in FILTER_SOURCES if source_matches(s, filters)}
        n = len(FILTER_SOURCES)
        kw = {s.chunk_id.rsplit("#", 1)[0] for s in store.keyword_search(["common"], n, filters)[0]}
        assert kw == want
        q = unit_vectors(1, 8, 99)
        vec = {s.chunk_id.rsplit("#", 1)[0] for s in store.vector_search("dense", q, n, filters)[0]}
        assert vec == want

    def test_reference_filter_semantics(self) -> None:
        assert source_matches("/data/a_b/x.txt", ["/data/a_b"])
        assert source_matches("/data/a_b/x.txt", ["/data/a_b/"])
        assert not source_matches("/data/axb/y.txt", ["/data/a_b"])  # `_` is no wildcard
        assert not source_matches("/data/a%b/z.txt", ["/data/a%"])  # `%` is no wildcard
        assert not source_matches("/data/Café/u.txt", ["/data/café"])  # case-sensitive
        assert not source_matches("/data/cafe\u0301/w.txt", ["/data/café"])  # no normalisation
        assert source_matches("/c/corpus.jsonl#d1", ["/c/corpus.jsonl"])
        assert not source_matches("/c/corpus.jsonl.bak#d1", ["/c/corpus.jsonl"])
        assert not source_matches("/data/ab", ["/data/a"])
        assert source_matches("/anything", None) and source_matches("/anything", [])

    # -- vector spaces -----------------------------------------------------------------------
    def test_every_declared_space(self, store: Store) -> None:
        docs = [make_doc(f"/d{i}.txt", [f"text {i} {j}" for j in range(3)]) for i in range(4)]
        self.fill(store, docs)
        assert store.spaces() == SPACES
        assert store.vector_spaces() == [s.name for s in SPACES]
        ids = [c.chunk_id for c in store.iter_chunks()]
        for spec in SPACES:
            stored = store.get_vectors(spec.name, ids)
            assert stored.shape == (12, spec.dim) and stored.dtype == np.float32
            given = vectors_for(3, 0)
            # a store may keep a space in float16 (the head spaces of a new index,
            # store/vector_codec.py): it reads back exactly what ``as_stored`` says
            as_stored = getattr(store, "as_stored", None)
            want = as_stored(given)[spec.name] if as_stored is not None else given[spec.name]
            np.testing.assert_allclose(stored[:3], want, rtol=1e-6)
            np.testing.assert_allclose(stored[:3], given[spec.name], rtol=1e-3, atol=1e-4)
            hit = store.vector_search(spec.name, stored[4:6], 2)
            assert [h[0].chunk_id for h in hit] == ids[4:6]
            assert hit[0][0].score == pytest.approx(float(stored[4] @ stored[4]), rel=1e-5)
            assert hit[0][0].score >= hit[0][1].score
        searches = [(s.name, store.get_vectors(s.name, ids[7:8])) for s in SPACES]
        batched = store.vector_search_spaces(searches, 3)
        looped = [store.vector_search(s, q, 3) for s, q in searches]
        assert [[[x.chunk_id for x in r] for r in b] for b in batched] == \
            [[[x.chunk_id for x in r] for r in b] for b in looped]

    def test_space_mismatch_is_refused(self, store: Store) -> None:
        self.fill(store, [make_doc("/a.txt", ["alpha"])])
        with pytest.raises(IndexMismatchError), store.writer() as w:
            w.declare_spaces([SpaceSpec("dense", 16)])
        with pytest.raises(IndexMismatchError), store.writer() as w:
            d, c = make_doc("/b.txt", ["beta"])
            w.upsert(d, c, {**vectors_for(1), "other": unit_vectors(1, 3)})
        with pytest.raises(IndexMismatchError), store.writer() as w:
            d, c = make_doc("/b.txt", ["beta"])
            w.upsert(d, c, {**vectors_for(1), "dense": unit_vectors(1, 4)})
        assert store.sources() == ["/a.txt"]

    # -- keyword search ----------------------------------------------------------------------
    def test_keyword_search_ranks(self, store: Store) -> None:
        self.fill(store, [make_doc("/a.txt", ["the cat sat", "dogs and dogs and dogs bark"]),
                          make_doc("/b.txt", ["a dog barks once", "fish swim"])])
        res = store.keyword_search(["dogs bark", "fish", "zebra"], 5)
        assert res[0][0].chunk_id == chunk_key("/a.txt", 1)
        assert all(a.score >= b.score for a, b in zip(res[0], res[0][1:], strict=False))
        assert [s.chunk_id for s in res[1]] == [chunk_key("/b.txt", 1)]
        assert res[2] == []
        assert len(store.keyword_search(["dogs bark"], 1)[0]) == 1

    # -- metadata and atomicity --------------------------------------------------------------
    def test_meta_commits_with_the_writer(self, store: Store) -> None:
        with store.writer() as w:
            w.set_meta("embedder", "test:e")
            w.set_meta("k", "v1")
        assert store.get_meta("embedder") == "test:e"
        with store.writer() as w:
            w.set_meta("k", "v2")
        assert store.get_meta("k") == "v2"

    def test_meta_keys_and_documents(self, store: Store) -> None:
        assert store.meta_keys() == [] and store.get_document("/a.txt") is None
        doc, chunks = make_doc("/a.txt", ["alpha beta", "gamma"], fp="fp1")
        doc.metadata = {"category": "Greek", "n": 2}
        doc.sections = [Section(0, 10, 1, "Intro")]
        with store.writer() as w:
            w.declare_spaces(SPACES)
            w.upsert(doc, chunks, vectors_for(2))
            w.set_meta("embedder", "test:e")
            w.set_meta("b.key", "v")
        assert store.meta_keys() == ["b.key", "embedder"]  # not the backend's bookkeeping
        got = store.get_document("/a.txt")
        assert got is not None and got.text == ""
        assert (got.doc_id, got.source, got.title, got.fingerprint, got.metadata) == \
            (doc.doc_id, doc.source, doc.title, "fp1", {"category": "Greek", "n": 2})
        assert got.sections == [Section(0, 10, 1, "Intro")]

    def test_failed_writer_changes_nothing(self, store: Store) -> None:
        self.fill(store, [make_doc("/a.txt", ["alpha beta"])])
        with store.writer() as w:
            w.set_meta("k", "before")
        with pytest.raises(RuntimeError, match="boom"), store.writer() as w:
            w.delete("/a.txt")
            d, c = make_doc("/b.txt", ["gamma"])
            w.upsert(d, c, vectors_for(1))
            w.set_meta("k", "after")
            raise RuntimeError("boom")
        assert store.sources() == ["/a.txt"] and store.get_meta("k") == "before"
        assert store.keyword_search(["alpha"], 3)[0][0].chunk_id == chunk_key("/a.txt", 0)
        assert store.keyword_search(["gamma"], 3) == [[]]

    # -- persistence -------------------------------------------------------------------------
    def test_persists_across_reopen(self, open_store: Callable[..., Store]) -> None:
        st = open_store()
        self.fill(st, [make_doc("/a.txt", ["alpha beta", "gamma"])])
        with st.writer() as w:
            w.set_meta("embedder", "test:e")
        again = open_store()
        assert again.sources() == ["/a.txt"] and again.stats()["chunks"] == 2
        assert again.spaces() == SPACES and again.get_meta("embedder") == "test:e"
        assert again.keyword_search(["gamma"], 2)[0][0].chunk_id == chunk_key("/a.txt", 1)
        # a write through one handle is seen by the other
        self.fill(again, [make_doc("/b.txt", ["delta"])], seed=3)
        assert st.keyword_search(["delta"], 2)[0][0].chunk_id == chunk_key("/b.txt", 0)

    def test_readonly_open(self, open_store: Callable[..., Store]) -> None:
        self.fill(open_store(), [make_doc("/a.txt", ["alpha beta"])])
        ro = open_store(readonly=True)
        assert ro.readonly and ro.sources() == ["/a.txt"]
        assert ro.keyword_search(["alpha"], 1)[0][0].chunk_id == chunk_key("/a.txt", 0)
        assert ro.vector_search("dense", unit_vectors(1, 8), 1)[0]
        with pytest.raises(AspectragError), ro.writer() as w:
            w.delete("/a.txt")
        assert open_store().sources() == ["/a.txt"]

import numpy as np
import pytest

from aspectrag.store.dense_index import DenseIndex
from aspectrag.store.sqlite import SQLiteStore
from aspectrag.types import Chunk, Document


def _doc(source: str, texts: list[str], fp: str = "f") -> tuple[Document, list[Chunk]]:
    doc = Document(source, source, "T", " ".join(texts), fingerprint=fp)
    chunks, pos = [], 0
    for i, t in enumerate(texts):
        chunks.append(Chunk(f"{source}#{i}", source, source, "T", i, t, pos, pos + len(t)))
        pos += len(t) + 1
    return doc, chunks


def _vecs(n: int, d: int = 8, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_upsert_search_replace_delete(tmp_path):
    st = SQLiteStore(tmp_path / "idx")
    d1, c1 = _doc("/a.txt", ["cats purr loudly", "dogs bark at night"])
    d2, c2 = _doc("/b.txt", ["fish swim in water"])
    v1, v2 = _vecs(2), _vecs(1, seed=1)
    with st.writer() as w:
        w.upsert(d1, c1, {"dense": v1})
        w.upsert(d2, c2, {"dense": v2})
    assert st.stats() == {"documents": 2, "chunks": 3}
    assert st.keyword_search(["dogs"], 5)[0][0].chunk_id == "/a.txt#1"
    res = st.vector_search("dense", v2, 3)[0]
    assert res[0].chunk_id == "/b.txt#0" and res[0].score == pytest.approx(1.0, abs=1e-5)
    # source filter
    assert [s.chunk_id for s in st.vector_search("dense", v2, 3, sources=["/a.txt"])[0]] != []
    assert all(s.chunk_id.startswith("/a.txt") for s in st.vector_search("dense", v2, 3, sources=["/a.txt"])[0])
    # replace: a changed document replaces its chunks
    d1b, c1b = _doc("/a.txt", ["only one chunk now"], fp="g")
    with st.writer() as w:
        w.upsert(d1b, c1b, {"dense": _vecs(1, seed=2)})
    assert st.stats() == {"documents": 2, "chunks": 2}
    assert st.fingerprint("/a.txt") == "g"
    assert st.keyword_search(["dogs"], 5)[0] == []
    with st.writer() as w:
        assert w.delete("/b.txt") == 1
    assert st.sources() == ["/a.txt"]
    np.testing.assert_allclose(st.get_vectors("dense", ["/a.txt#0"]), _vecs(1, seed=2))


def test_failed_transaction_leaves_store_unchanged(tmp_path):
    st = SQLiteStore(tmp_path)
    d, c = _doc("/a.txt", ["alpha beta"])
    with st.writer() as w:
        w.upsert(d, c, {"dense": _vecs(1)})
    gen = st.generation
    with pytest.raises(RuntimeError), st.writer() as w:
        w.delete("/a.txt")
        raise RuntimeError("boom")
    assert st.stats()["chunks"] == 1 and st.generation == gen
    assert st.keyword_search(["alpha"], 3)[0][0].chunk_id == "/a.txt#0"


def test_derived_indexes_rebuilt_when_stale_or_missing(tmp_path):
    st = SQLiteStore(tmp_path)
    d, c = _doc("/a.txt", ["alpha beta"])
    with st.writer() as w:
        w.upsert(d, c, {"dense": _vecs(1)})
    st.refresh()
    assert (tmp_path / "derived" / "vec-dense.npz").exists()
    # a second process opening the folder loads the saved derived indexes
    st2 = SQLiteStore(tmp_path)
    assert st2.keyword_search(["alpha"], 3)[0][0].chunk_id == "/a.txt#0"
    # the first store writes; the second sees the new generation and rebuilds
    d2, c2 = _doc("/b.txt", ["gamma delta"])
    with st.writer() as w:
        w.upsert(d2, c2, {"dense": _vecs(1, seed=3)})
    assert st2.keyword_search(["gamma"], 3)[0][0].chunk_id == "/b.txt#0"
    import shutil

    shutil.rmtree(tmp_path / "derived")
    assert SQLiteStore(tmp_path).keyword_search(["delta"], 3)[0][0].chunk_id == "/b.txt#0"


def test_hnsw_agrees_with_exact_search():
    v = _vecs(3000, d=32, seed=5)
    rows = np.arange(3000, dtype=np.int64) + 10
    exact = DenseIndex(v, rows, ann_threshold=10**9)
    ann = DenseIndex(v, rows, ann_threshold=1000)
    q = _vecs(20, d=32, seed=6)
    overlap = [len(set(a[0]) & set(b[0])) / 10 for a, b in zip(exact.search(q, 10), ann.search(q, 10), strict=True)]
    assert np.mean(overlap) > 0.9
    mask = np.zeros(3000, bool)
    mask[:50] = True
    assert set(ann.search(q, 5, mask)[0][0]) <= set(rows[:50])


def test_float16_graph_halves_the_rows_and_keeps_the_ranking(tmp_path):
    pytest.importorskip("faiss")
    v = _vecs(3000, d=32, seed=5)
    rows = np.arange(3000, dtype=np.int64) + 10
    q = _vecs(20, d=32, seed=6)
    wide = DenseIndex(v, rows, ann_threshold=1000, ann_dtype="float32")
    half = DenseIndex(v, rows, ann_threshold=1000)  # the default
    a, b = wide.search(q, 10), half.search(q, 10)
    assert half.base_vectors.dtype == np.float16 and wide.base_vectors.dtype == np.float32
    assert half.base_vectors.nbytes * 2 == wide.base_vectors.nbytes
    overlap = [len(set(x[0]) & set(y[0])) / 10 for x, y in zip(a, b, strict=True)]
    assert np.mean(overlap) > 0.95
    assert all(s.dtype == np.float32 and len(ids) == 10 for ids, s in b)
    got = np.array([s for _, s in b])  # the float32 inner products to ~1e-3
    want = np.array([[q[i] @ v[r - 10] for r in ids] for i, (ids, _) in enumerate(b)])
    assert np.abs(got - want).max() < 2e-3
    mask = np.zeros(3000, bool)
    mask[:50] = True  # filtered: exact over the widened float16 rows
    ids, scores = half.search(q[:1], 5, mask)[0]
    assert set(ids) <= set(rows[:50])
    assert np.abs(scores - v[ids - 10] @ q[0]).max() < 2e-3
    for dtype, idx in (("float32", wide), ("float16", half)):  # a saved graph keeps its dtype
        idx.save(tmp_path / f"vec-{dtype}", 0)
        back = DenseIndex.load(tmp_path / f"vec-{dtype}", 0, 1000)
        assert back is not None and back._hnsw is not None
        assert back.base_vectors.dtype == idx.base_vectors.dtype
        assert [list(x[0]) for x in back.search(q, 10)] == [list(x[0]) for x in idx.search(q, 10)]


def test_store_check_accepts_a_float16_graph(tmp_path):
    pytest.importorskip("faiss")
    st = SQLiteStore(tmp_path / "idx", ann_threshold=30)
    for i in range(40):
        d, c = _doc(f"/d{i}.txt", [f"text number {i}"])
        with st.writer() as w:
            w.upsert(d, c, {"dense": _vecs(1, seed=i)})
    st.refresh()
    assert st.dense_index("dense")._ensure_hnsw() is not None
    st.refresh()
    assert st.dense_index("dense").base_vectors.dtype == np.float16
    rep = SQLiteStore(tmp_path / "idx", ann_threshold=30).check()
    assert not [p for p in rep.problems if "derived" in p]  # (no embedder is recorded here)
    stored = st.get_vectors("dense", ["/d0.txt#0"])[0]
    held = st.dense_index("dense").vectors[0]
    assert not np.array_equal(stored, held)  # rounded: a strict comparison would fail


def test_new_index_uses_16k_pages(tmp_path):
    st = SQLiteStore(tmp_path / "idx")
    d, c = _doc("/a.txt", ["alpha beta"])
    with st.writer() as w:
        w.upsert(d, c, {"dense": _vecs(1)})
    assert st._conn().execute("PRAGMA page_size").fetchone()[0] == 16384
    assert st._conn().execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"


def test_chunk_cache_serves_repeats_and_a_commit_invalidates_it(tmp_path):
    st = SQLiteStore(tmp_path / "idx")
    d1, c1 = _doc("/a.txt", ["cats purr loudly", "dogs bark at night"])
    with st.writer() as w:
        w.upsert(d1, c1, {"dense": _vecs(2)})
    sql: list[str] = []
    st._conn().set_trace_callback(sql.append)
    with st.reading():
        first = st.get_chunks(["/a.txt#1", "/a.txt#0", "/a.txt#1"])
    n_first = len(sql)
    with st.reading():
        again = st.get_chunks(["/a.txt#0", "/a.txt#1"])
    assert [c.text for c in first] == ["dogs bark at night", "cats purr loudly",
                                       "dogs bark at night"]
    assert [c.text for c in again] == ["cats purr loudly", "dogs bark at night"]
    assert not any("FROM chunks" in s for s in sql[n_first:])  # served from the cache
    assert sum("SELECT value FROM meta" in s for s in sql[:n_first]) == 1  # generation read once
    d1b, c1b = _doc("/a.txt", ["cats purr softly", "dogs sleep"], fp="g")
    with st.writer() as w:  # a commit: the next reading sees the new text
        w.upsert(d1b, c1b, {"dense": _vecs(2)})
    with st.reading():
        assert [c.text for c in st.get_chunks(["/a.txt#1"])] == ["dogs sleep"]
    with pytest.raises(KeyError, match="unknown chunk ids"):
        st.get_chunks(["/nope#0"])


def test_chunk_cache_is_bounded(tmp_path):
    st = SQLiteStore(tmp_path / "idx")
    st.chunk_cache_size = 3
    d1, c1 = _doc("/a.txt", [f"text number {i}" for i in range(6)])
    with st.writer() as w:
        w.upsert(d1, c1, {"dense": _vecs(6)})
    with st.reading():
        got = st.get_chunks([c.chunk_id for c in c1])
    assert [c.text for c in got] == [c.text for c in c1]
    assert list(st._chunks[1]) == ["/a.txt#3", "/a.txt#4", "/a.txt#5"]


def test_chunk_cache_never_mixes_generations_under_a_writer(tmp_path):
    """Readers in other threads while a writer commits new texts: within one read transaction
    the chunk text always belongs to the generation read there (one text per generation, and
    never an older text at a newer generation)."""
    import threading

    st = SQLiteStore(tmp_path / "idx")
    d, c = _doc("/a.txt", ["version 0", "other"])
    with st.writer() as w:
        w.upsert(d, c, {"dense": _vecs(2)})
    seen: list[tuple[int, str]] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            with st.reading():
                seen.append((st.generation, st.get_chunks(["/a.txt#0"])[0].text))

    readers = [threading.Thread(target=read) for _ in range(3)]
    written = {st.generation: "version 0"}  # generation -> the text committed at it
    for t in readers:
        t.start()
    for v in range(1, 30):
        dv, cv = _doc("/a.txt", [f"version {v}", "other"], fp=f"v{v}")
        with st.writer() as w:
            w.upsert(dv, cv, {"dense": _vecs(2)})
        written[st.generation] = f"version {v}"
    stop.set()
    for t in readers:
        t.join()
    assert len({g for g, _ in seen}) > 1
    for gen, text in seen:
        assert text == written[gen], f"generation {gen} read {text!r}, committed {written[gen]!r}"


def test_a_current_derived_index_is_served_while_another_thread_loads(tmp_path):
    """``bm25_index(gen)`` / ``dense_index(space, gen)`` of the current generation do not wait
    for ``_lock``, which a thread loading a derived index holds throughout (the service runs
    short searches on its event loop, which must not stall behind a load)."""
    import threading

    st = SQLiteStore(tmp_path / "idx")
    d, c = _doc("/a.txt", ["roman army legion", "greek navy"])
    with st.writer() as w:
        w.upsert(d, c, {"dense": _vecs(2)})
    gen = st.generation
    bm25, dense = st.bm25_index(gen), st.dense_index("dense", gen)
    got: list[object] = []
    with st._lock:  # as a loading thread would
        t = threading.Thread(target=lambda: got.extend(
            [st.bm25_index(gen), st.dense_index("dense", gen)]))
        t.start()
        t.join(timeout=5)
        assert not t.is_alive()
    assert got == [bm25, dense]

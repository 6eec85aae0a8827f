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


def test_new_index_uses_16k_pages(tmp_path):
    st = SQLiteStore(tmp_path / "idx")
    d, c = _doc("/a.txt", ["alpha beta"])
    with st.writer() as w:
        w.upsert(d, c, {"dense": _vecs(1)})
    assert st._conn().execute("PRAGMA page_size").fetchone()[0] == 16384
    assert st._conn().execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"

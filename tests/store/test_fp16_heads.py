"""Float16 storage of the per-head vectors (``store/vector_codec.py``): new SQLite indexes store
the head spaces' blobs in float16 and rank as float32 ones do; indexes without the recorded
dtypes (float32, written before) open, search and grow unchanged; ``check`` passes on both."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from aspectrag.errors import ConfigError
from aspectrag.multihead.layout import head_queries, head_space, pack_heads
from aspectrag.multihead.stats import HeadStats, HeadStatsTracker
from aspectrag.store.sqlite import SQLiteStore
from aspectrag.store.testing import make_doc
from aspectrag.store.vector_codec import DTYPES_KEY, FP16_MAX, as_stored, encode

G, DH, D = 12, 32, 24


def _vectors(n: int, seed: int) -> dict[str, np.ndarray]:
    """A dense space and G head spaces in the stored layout, heads sharing a large component
    (like MiniLM's: what query-time centring removes)."""
    rng = np.random.default_rng(seed)
    dense = rng.normal(size=(n, D)).astype(np.float32)
    dense /= np.linalg.norm(dense, axis=1, keepdims=True)
    raw = rng.normal(size=(n, G, DH)) + 2.0 * rng.normal(size=(1, G, DH))
    packed = pack_heads(raw.astype(np.float32) * rng.uniform(0.3, 3.0, size=(n, 1, 1)))
    return {"dense": dense, **{head_space(g): packed[:, g] for g in range(G)}}


def _fill(store: SQLiteStore, docs: int = 60, per_doc: int = 5, seed: int = 0) -> None:
    with store.writer() as w:
        w.set_meta("embedder", "test-embedder")  # what ``check`` asks an index with vectors for
        for i in range(docs):
            doc, chunks = make_doc(f"/d{seed}-{i}.txt", [f"text {i} {j}" for j in range(per_doc)])
            w.upsert(doc, chunks, _vectors(per_doc, seed * 1000 + i))


def _blob_sizes(store: SQLiteStore) -> dict[str, set[int]]:
    conn = sqlite3.connect(store.db_path)
    try:
        out: dict[str, set[int]] = {}
        for space, size in conn.execute("SELECT space, length(vec) FROM vectors"):
            out.setdefault(space, set()).add(size)
        return out
    finally:
        conn.close()


def _searches(seed: int = 7) -> list[tuple[str, np.ndarray]]:
    q = _vectors(1, seed)
    heads = np.stack([q[head_space(g)][:, :-1] / q[head_space(g)][:, -1:] for g in range(G)], 1)
    qv = head_queries(heads, heads[0].mean(0) * 0.5)
    return [(head_space(g), qv[:, g]) for g in range(G)] + [("dense", q["dense"])]


def _ranked(store: SQLiteStore, k: int = 10) -> list[list[tuple[str, float]]]:
    return [[(s.chunk_id, s.score) for s in r[0]] for r in store.vector_search_spaces(
        _searches(), k)]


def test_new_index_stores_heads_in_float16(tmp_path) -> None:  # type: ignore[no-untyped-def]
    st = SQLiteStore(tmp_path / "idx")
    _fill(st, docs=4)
    assert json.loads(st.get_meta(DTYPES_KEY)) == {head_space(g): "float16" for g in range(G)}
    assert DTYPES_KEY not in st.meta_keys()  # the store's own key
    sizes = _blob_sizes(st)
    assert sizes["dense"] == {4 * D}  # the standard vector stays float32
    assert all(sizes[head_space(g)] == {2 * (DH + 1)} for g in range(G))
    ids = [c.chunk_id for c in st.iter_chunks()][:5]
    given = _vectors(5, 0)
    for space in ("dense", "head3"):
        got = st.get_vectors(space, ids)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, as_stored(given, st.vector_dtypes() or {})[space])
    np.testing.assert_array_equal(st.get_vectors("dense", ids), given["dense"])
    np.testing.assert_allclose(st.get_vectors("head3", ids), given["head3"], rtol=1e-3)
    st.refresh()
    assert st.check().problems == []
    assert any("head0 (33 dims, ip, float16)" in n for n in st.check().notes)


def test_float16_index_ranks_as_float32(tmp_path) -> None:  # type: ignore[no-untyped-def]
    half, full = SQLiteStore(tmp_path / "h"), SQLiteStore(tmp_path / "f", head_dtype="float32")
    _fill(half)
    _fill(full)
    assert full.get_meta(DTYPES_KEY) is None and full.vector_dtypes() == {}
    a, b = _ranked(half), _ranked(full)
    overlap = [len({c for c, _ in x} & {c for c, _ in y}) / 10 for x, y in zip(a, b, strict=True)]
    assert np.mean(overlap) >= 0.9 and a[-1] == b[-1]  # dense: identical
    for x, y in zip(a[:-1], b[:-1], strict=True):
        sx, sy = dict(x), dict(y)
        common = set(sx) & set(sy)
        scale = max(abs(v) for v in sy.values())
        assert all(abs(sx[c] - sy[c]) <= 2e-3 * scale for c in common)
    # the per-space search path (a source filter) reads the same float16 values
    flt = half.vector_search("head2", _searches()[2][1], 5, sources=["/d0-3.txt"])[0]
    assert [s.chunk_id for s in flt] and all(s.chunk_id.startswith("/d0-3.txt") for s in flt)


def test_float32_index_without_dtypes_stays_float32(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An index written before dtypes were recorded (no meta key, float32 blobs) is read as
    float32 and keeps float32 when a new-version writer (default setting) adds to it."""
    old = SQLiteStore(tmp_path / "old", head_dtype="float32")
    _fill(old, docs=30)
    ref = SQLiteStore(tmp_path / "ref", head_dtype="float32")
    _fill(ref, docs=30)
    reopened = SQLiteStore(tmp_path / "old")  # head_dtype from the setting: float16
    assert reopened.vector_dtypes() == {}
    assert _ranked(reopened) == _ranked(ref)
    _fill(reopened, docs=30, seed=1)
    _fill(ref, docs=30, seed=1)
    assert reopened.get_meta(DTYPES_KEY) is None
    assert all(sizes == {4 * (DH + 1)} for space, sizes in _blob_sizes(reopened).items()
               if space != "dense")
    assert _ranked(reopened) == _ranked(ref)
    reopened.refresh()
    assert reopened.check().problems == []
    ids = [c.chunk_id for c in reopened.iter_chunks()][:3]
    np.testing.assert_array_equal(reopened.get_vectors("head1", ids), _vectors(5, 0)["head1"][:3])


def test_delta_and_rebuild_agree(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Vectors added after the derived index was saved (the delta path) decode like a full
    rebuild, and check compares the float16 blobs with the derived index exactly."""
    st = SQLiteStore(tmp_path / "idx")
    _fill(st, docs=20)
    st.refresh()
    _fill(st, docs=3, seed=2)
    st.refresh()
    delta = _ranked(st)
    again = SQLiteStore(tmp_path / "idx")
    for p in (tmp_path / "idx" / "derived").glob("vec-*"):
        p.unlink()
    assert _ranked(again) == delta
    assert again.check().problems == []


def test_stats_add_what_the_store_reads_back(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Adding then removing a document leaves the head statistics of the rest exactly (the
    tracker adds the float16-rounded values the store returns on removal)."""
    st = SQLiteStore(tmp_path / "idx")
    keep, gone = make_doc("/keep.txt", ["a", "b", "c"]), make_doc("/gone.txt", ["d", "e"])
    vk, vg = _vectors(3, 1), _vectors(2, 2)
    t = HeadStatsTracker(st)
    with st.writer() as w:
        t.added(vk)
        t.added(vg)
        w.upsert(*keep, vk)
        w.upsert(*gone, vg)
        t.save(w)
    t2 = HeadStatsTracker(st)
    with st.writer() as w:
        t2.removing(["/gone.txt"])
        w.delete("/gone.txt")
        t2.save(w)
    after = HeadStats.from_json(st.get_meta("multihead.stats"))
    exact = HeadStats.of([st.get_vectors(head_space(g), [f"/keep.txt#{i}" for i in range(3)])
                          for g in range(G)])
    np.testing.assert_allclose(after.raw_sum, exact.raw_sum, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(after.norm_sum, exact.norm_sum, rtol=1e-12)


def test_out_of_range_is_clipped_and_bad_dtype_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    x = np.array([[0.5, -1e6, 1e6]], np.float32)
    assert encode(x, "float16").tolist() == [[0.5, -FP16_MAX, FP16_MAX]]
    with pytest.raises(ConfigError):
        st = SQLiteStore(tmp_path / "idx", head_dtype="bfloat16")
        _fill(st, docs=1)


@pytest.mark.parametrize("head_dtype", ["float16", "float32"])
def test_qdrant_head_vectors_float16_on_new_collections(head_dtype) -> None:  # type: ignore[no-untyped-def]
    """New collections declare FLOAT16 head vectors (the dense one stays float32); the writer
    sends the rounded values, so local mode returns what a server would."""
    pytest.importorskip("qdrant_client", reason="qdrant-client is not installed")
    import uuid

    from qdrant_client import models

    from aspectrag.store.qdrant import QdrantStore

    st = QdrantStore(f"qdrant+local://:memory:/t{uuid.uuid4().hex[:12]}", head_dtype=head_dtype)
    assert st.vector_dtypes() is None
    doc, chunks = make_doc("/a.txt", ["x", "y", "z"])
    given = _vectors(3, 0)
    with st.writer() as w:
        w.upsert(doc, chunks, given)
    params = st.client.get_collection(st.collection).config.params.vectors
    half = head_dtype == "float16"
    assert params["dense"].datatype is None
    assert (params["head0"].datatype == models.Datatype.FLOAT16) == half
    assert st.vector_dtypes() == ({head_space(g): "float16" for g in range(G)} if half else {})
    ids = [c.chunk_id for c in chunks]
    np.testing.assert_array_equal(st.get_vectors("dense", ids), given["dense"])
    got = st.get_vectors("head5", ids)
    want = given["head5"].astype(np.float16).astype(np.float32) if half else given["head5"]
    np.testing.assert_array_equal(got, want)
    hit = st.vector_search("head5", got[1:2], 1)[0][0]
    assert hit.chunk_id == ids[1]

"""``copy_store`` (store/copy.py): an index copied between the SQLite and Qdrant stores keeps its
documents, chunks, stored vectors of every space and metadata, and searches the same (no
re-embedding)."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from aspectrag.errors import AspectragError
from aspectrag.store.copy import copy_store
from aspectrag.store.factory import build_store
from aspectrag.store.testing import SPACES, make_doc, unit_vectors, vectors_for
from aspectrag.types import Section

pytest.importorskip("qdrant_client", reason="qdrant-client is not installed (pip install "
                    "'aspectrag[qdrant]')")

TEXTS = {f"/docs/{i:02d}.txt": [f"topic {i} alpha {'beta ' * (i % 3)}text", f"second {i} chunk",
                                f"gamma delta {i}"][: 1 + i % 3] for i in range(30)}


def _filled(tmp_path):  # type: ignore[no-untyped-def]
    src = build_store(str(tmp_path / "sqlite"))
    with src.writer() as w:
        w.declare_spaces(SPACES)
        for i, (source, texts) in enumerate(TEXTS.items()):
            doc, chunks = make_doc(source, texts, fp=f"fp{i}")
            doc.metadata = {"i": i}
            doc.sections = [Section(0, 5, None, f"h{i}")]
            w.upsert(doc, chunks, vectors_for(len(chunks), i))
        w.set_meta("embedder", "test:e")
        w.set_meta("multihead.config", '{"x": 1}')
    return src


def _same(a, b) -> None:  # type: ignore[no-untyped-def]
    assert b.stats() == a.stats() and b.sources() == a.sources() and b.spaces() == a.spaces()
    assert b.meta_keys() == a.meta_keys() == ["embedder", "multihead.config"]
    assert [b.get_meta(k) for k in b.meta_keys()] == [a.get_meta(k) for k in a.meta_keys()]
    chunks = list(a.iter_chunks())
    assert list(b.iter_chunks()) == chunks
    ids = [c.chunk_id for c in chunks]
    for s in SPACES:
        np.testing.assert_array_equal(b.get_vectors(s.name, ids), a.get_vectors(s.name, ids))
    for src in a.sources():
        assert b.get_document(src) == a.get_document(src)
    queries = ["alpha beta", "gamma 7", "second chunk 12"]
    ka, kb = a.keyword_search(queries, 10), b.keyword_search(queries, 10)
    assert [[x.chunk_id for x in r] for r in kb] == [[x.chunk_id for x in r] for r in ka]
    for s in SPACES:
        q = unit_vectors(3, s.dim, 5)
        va, vb = a.vector_search(s.name, q, 8), b.vector_search(s.name, q, 8)
        assert [[x.chunk_id for x in r] for r in vb] == [[x.chunk_id for x in r] for r in va]
        assert [x.score for r in vb for x in r] == pytest.approx([x.score for r in va for x in r],
                                                                 abs=1e-5)


def test_sqlite_to_qdrant_and_back(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import aspectrag.store.copy as copy_mod

    monkeypatch.setattr(copy_mod, "BATCH_CHUNKS", 7)  # several batches, split inside documents
    src = _filled(tmp_path)
    qd = build_store(f"qdrant+local://:memory:/copy{uuid.uuid4().hex[:10]}")
    seen: list[tuple[int, int]] = []
    rep = copy_store(src, qd, on_progress=lambda d, t: seen.append((d, t)))
    n = src.stats()["chunks"]
    assert (rep.documents, rep.chunks, rep.vectors) == (30, n, n * len(SPACES))
    assert seen[-1] == (n, n) and len(seen) > 3
    _same(src, qd)
    back = build_store(str(tmp_path / "back"))
    copy_store(qd, back)
    _same(src, back)


def test_copy_needs_an_empty_destination(tmp_path) -> None:  # type: ignore[no-untyped-def]
    src = _filled(tmp_path)
    dst = build_store(str(tmp_path / "dst"))
    copy_store(src, dst)
    with pytest.raises(AspectragError, match="not empty"):
        copy_store(src, dst)


def test_qdrant_writer_batches_small_documents(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Many one-chunk documents share upsert requests (the copy and ingest bulk path)."""
    st = build_store(f"qdrant+local://:memory:/b{uuid.uuid4().hex[:10]}")
    calls = []
    real = st.client.upsert
    monkeypatch.setattr(st.client, "upsert", lambda name, pts, **kw: (
        calls.append(len(pts)), real(name, pts, **kw))[1], raising=False)
    with st.writer() as w:
        w.declare_spaces(SPACES)
        for i in range(300):
            d, c = make_doc(f"/s{i}.txt", [f"word{i} shared"])
            w.upsert(d, c, vectors_for(1, i))
    assert st.stats() == {"documents": 300, "chunks": 300}
    assert len(calls) <= 6 and max(calls) == st.batch_points  # 300 chunks + 300 docs + state
    assert st.keyword_search(["word17"], 3)[0][0].chunk_id == "/s17.txt#0"


def test_local_search_skips_invisible_points() -> None:
    """Local mode searches unfiltered first; an uncommitted version or a superseded one that
    is not collected yet makes it repeat the search with the visibility filter."""
    from aspectrag.store.qdrant_write import QdrantWriter

    st = build_store(f"qdrant+local://:memory:/v{uuid.uuid4().hex[:10]}")
    with st.writer() as w:
        w.declare_spaces(SPACES)
        for i in range(5):
            d, c = make_doc(f"/d{i}.txt", [f"apple {i}", f"pear {i}"])
            w.upsert(d, c, vectors_for(2, i))
    q = st.get_vectors("dense", ["/d3.txt#1"])
    before = st.vector_search("dense", q, 4)
    w = QdrantWriter(st)  # an unfinished write: the new version of /d3.txt is never committed
    d, c = make_doc("/d3.txt", ["apple 3 new", "pear 3 new"], fp="new")
    w.upsert(d, c, {s: np.repeat(q, 2, 0) if s == "dense" else v
                    for s, v in vectors_for(2, 9).items()})
    w.flush()
    assert st.vector_search("dense", q, 4) == before
    assert st.keyword_search(["new"], 4) == [[]]
    with st.writer() as w2:  # the next writer collects it, then replaces /d1.txt
        d, c = make_doc("/d1.txt", ["apple 1 replaced"], fp="r")
        w2.upsert(d, c, vectors_for(1, 20))
    hits = st.keyword_search(["apple"], 10)[0]  # the old /d1.txt versions died, not collected
    assert "/d1.txt#1" not in {h.chunk_id for h in hits} and len(hits) == 5
    assert st.get_chunks(["/d1.txt#0"])[0].text == "apple 1 replaced"

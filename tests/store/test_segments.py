"""Incremental derived indexes of the embedded store (base + delta segments, issue 13 item 5).

Real text: SciFact abstracts (skips without the shared data folder). What is checked: a small
change is carried by a delta (the base files are not rewritten), the delta's BM25 scores are
exactly what the base would give the same text, removed chunks disappear from every search
path (exact, HNSW, the stacked multi-head product, filters), a merge reproduces a full
rebuild, and another process reading the index sees the delta without rebuilding.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from aspectrag.store import segments
from aspectrag.store.bm25_index import BM25Index
from aspectrag.store.dense_index import DenseIndex
from aspectrag.store.sqlite import SQLiteStore
from aspectrag.store.testing import make_doc, unit_vectors

SPACES = {"dense": 16, "head0": 4, "head1": 4}


@pytest.fixture(scope="module")
def abstracts(data_dir: Path) -> list[dict[str, str]]:
    with (data_dir / "scifact" / "corpus.jsonl").open(encoding="utf-8") as fh:
        docs = [json.loads(line) for _, line in zip(range(400), fh, strict=False)]
    return [d for d in docs if d["text"].strip()]


def _vectors(texts: list[str]) -> dict[str, np.ndarray]:
    """Deterministic unit vectors per text (seeded by the text), one array per space."""
    out = {}
    for space, d in SPACES.items():
        seeds = [abs(hash((space, t))) % 2**32 for t in texts]
        out[space] = np.concatenate([unit_vectors(1, d, s) for s in seeds])
    return out


def _add(st: SQLiteStore, docs: list[dict[str, str]]) -> None:
    with st.writer() as w:
        w.set_meta("embedder", "seeded-random")
        for d in docs:
            sents = [s for s in d["text"].split(". ") if s.strip()][:3]
            doc, chunks = make_doc(f"/c/{d['_id']}.txt", sents)
            w.upsert(doc, chunks, _vectors(sents))


def _remove(st: SQLiteStore, ids: list[str]) -> None:
    with st.writer() as w:
        for i in ids:
            w.delete(f"/c/{i}.txt")


def _search_all(st: SQLiteStore, queries: list[str], q_vecs: dict[str, np.ndarray],
                sources: list[str] | None = None) -> list[list[str]]:
    out = []
    for res in st.keyword_search(queries, 10, sources):
        out.append([h.chunk_id for h in res])
    for space, v in q_vecs.items():
        for res in st.vector_search(space, v, 10, sources):
            out.append([h.chunk_id for h in res])
    heads = st.vector_search_spaces([(s, q_vecs[s][:1]) for s in ("head0", "head1")], 10)
    out += [[h.chunk_id for h in r[0]] for r in heads]
    return out


def _fresh(tmp_path: Path, src: SQLiteStore, ann: int = 50_000) -> SQLiteStore:
    """The same index with its derived indexes rebuilt from scratch (a full rebuild)."""
    import shutil

    dst = tmp_path / "fresh"
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src.path, dst, ignore=shutil.ignore_patterns("derived"))
    return SQLiteStore(dst, ann_threshold=ann)


def test_delta_bm25_scores_equal_the_base_formula(abstracts):
    texts = [d["text"] for d in abstracts[:200]]
    base = BM25Index().build(texts, np.arange(1, 201, dtype=np.int64), generation=1)
    # the same texts again as delta rows: scored with the base's statistics, so each copy
    # must score exactly as its original (bm25s' precomputed Lucene scores)
    copies = base.with_changes(texts[:20], np.arange(1001, 1021, dtype=np.int64),
                               np.zeros(0, np.int64), generation=2)
    for q in [abstracts[i]["title"] for i in range(10)]:
        (rows, scores), = copies.search([q], 400)
        by_row = dict(zip(rows.tolist(), scores.tolist(), strict=True))
        for i in range(20):
            if i + 1 in by_row:
                assert by_row[1001 + i] == pytest.approx(by_row[i + 1], rel=1e-5)
            else:
                assert 1001 + i not in by_row
    assert len(copies.delta.rowids) == 20 and len(base.delta.rowids) == 0  # base untouched


def test_small_change_is_a_delta_and_matches_a_rebuild(tmp_path, abstracts):
    st = SQLiteStore(tmp_path / "idx")
    _add(st, abstracts[:300])
    st.refresh()
    base_file = st.derived / "vec-dense.npz"
    base_mtime = base_file.stat().st_mtime_ns
    bm25_meta = (st.derived / "bm25" / "meta.json").read_text()
    _add(st, abstracts[300:310])
    _remove(st, [abstracts[0]["_id"], abstracts[5]["_id"]])
    st.refresh()
    assert base_file.stat().st_mtime_ns == base_mtime  # the base was not rewritten
    assert (st.derived / "bm25" / "meta.json").read_text() == bm25_meta
    assert (st.derived / "bm25-delta.npz").exists() and (st.derived / "vec-dense-delta.npz").exists()
    bm = st.bm25_index()
    assert len(bm.delta.rowids) > 0 and bm.alive is not None and (~bm.alive).sum() > 0
    assert st.check().ok

    queries = [abstracts[i]["text"].split(". ")[0] for i in (0, 5, 300, 305, 50)]
    q_vecs = _vectors(queries)
    got, want = _search_all(st, queries, q_vecs), _search_all(_fresh(tmp_path, st), queries, q_vecs)
    removed = {f"/c/{abstracts[i]['_id']}.txt#0" for i in (0, 5)}
    assert not removed & {c for hits in got for c in hits}
    assert got[len(queries):] == want[len(queries):]  # vector search: exact, identical
    for g, w in zip(got[: len(queries)], want[: len(queries)], strict=True):
        # BM25: the base's statistics (N, df, avgdl) are 3% out of date; near-ties may swap
        assert g[0] == w[0] and len(set(g) & set(w)) >= 8
    # an added document is found by its own first sentence
    assert got[2][0] == f"/c/{abstracts[300]['_id']}.txt#0"


def test_another_process_reads_the_delta_without_rebuilding(tmp_path, abstracts):
    st = SQLiteStore(tmp_path / "idx")
    _add(st, abstracts[:200])
    st.refresh()
    _add(st, abstracts[200:205])
    st.refresh()
    other = SQLiteStore(tmp_path / "idx")
    gen = other.generation
    assert BM25Index.load(other.derived / "bm25", gen) is not None
    assert DenseIndex.load(other.derived / "vec-head0", gen) is not None
    first = abstracts[202]["text"].split(". ")[0]
    assert other.keyword_search([first], 1)[0][0].chunk_id == f"/c/{abstracts[202]['_id']}.txt#0"


def test_large_change_merges_into_a_new_base(tmp_path, abstracts, monkeypatch):
    monkeypatch.setattr(segments, "MERGE_MIN_ROWS", 0)
    st = SQLiteStore(tmp_path / "idx")
    _add(st, abstracts[:100])
    st.refresh()
    first = st.bm25_index().base_id
    _add(st, abstracts[100:130])  # > 10% of the base rows: rebuilt
    st.refresh()
    bm = st.bm25_index()
    assert bm.base_id != first and bm.delta_size == 0
    assert not (st.derived / "bm25-delta.npz").exists()
    queries = [abstracts[i]["title"] for i in (3, 110)]
    q_vecs = _vectors(queries)
    assert _search_all(st, queries, q_vecs) == _search_all(_fresh(tmp_path, st), queries, q_vecs)


def test_removed_rows_leave_hnsw_and_filtered_search(tmp_path, abstracts):
    st = SQLiteStore(tmp_path / "idx", ann_threshold=50)  # HNSW from 50 base rows
    _add(st, abstracts[:120])
    st.refresh()
    _remove(st, [d["_id"] for d in abstracts[:3]])
    _add(st, abstracts[120:122])
    q = _vectors([abstracts[1]["text"].split(". ")[0]])
    hits = st.vector_search("dense", q["dense"], 20)[0]
    gone = {f"/c/{d['_id']}.txt" for d in abstracts[:3]}
    assert hits and not any(h.chunk_id.split("#")[0] in gone for h in hits)
    new_vec = _vectors([abstracts[120]["text"].split(". ")[0]])["dense"]
    assert st.vector_search("dense", new_vec, 1)[0][0].chunk_id == f"/c/{abstracts[120]['_id']}.txt#0"
    src = [f"/c/{abstracts[1]['_id']}.txt", f"/c/{abstracts[10]['_id']}.txt"]
    assert {h.chunk_id.split("#")[0] for h in st.vector_search("dense", q["dense"], 10, src)[0]} \
        == {src[1]}
    assert st.dense_index("dense")._hnsw is not None
    st.refresh()
    graphs = list(st.derived.glob("vec-dense-*.hnsw"))
    assert len(graphs) == 1  # saved with the base, read by the next process
    other = SQLiteStore(tmp_path / "idx", ann_threshold=50)
    loaded = DenseIndex.load(other.derived / "vec-dense", other.generation, 50)
    assert loaded is not None and loaded._hnsw is not None
    assert [h.chunk_id for h in other.vector_search("dense", q["dense"], 20)[0]] == \
        [h.chunk_id for h in hits]


def test_chunk_row_ids_are_never_reused(tmp_path, abstracts):
    st = SQLiteStore(tmp_path / "idx")
    _add(st, abstracts[:3])
    last = f"/c/{abstracts[2]['_id']}.txt"
    top = st._conn().execute("SELECT MAX(id) FROM chunks").fetchone()[0]
    _remove(st, [abstracts[2]["_id"]])
    _add(st, abstracts[2:3])
    rows = [r[0] for r in st._conn().execute(
        "SELECT c.id FROM chunks c JOIN documents d ON c.doc = d.id WHERE d.source = ?", (last,))]
    assert min(rows) > top


def test_old_layout_derived_indexes_are_rebuilt(tmp_path, abstracts):
    st = SQLiteStore(tmp_path / "idx")
    _add(st, abstracts[:20])
    st.refresh()
    meta = st.derived / "bm25" / "meta.json"
    meta.write_text(json.dumps({"generation": st.generation}))  # as saved before segments
    other = SQLiteStore(tmp_path / "idx")
    rep = other.check()
    assert rep.ok and any("older layout" in n for n in rep.notes)
    assert other.keyword_search([abstracts[4]["title"]], 1)[0]
    assert "base_id" in json.loads(meta.read_text())


def test_hnsw_only_for_rows_of_one_norm():
    rng = np.random.default_rng(0)
    unit = unit_vectors(300, 8, 1)
    scaled = np.hstack([unit, rng.uniform(0.4, 0.9, (300, 1)).astype(np.float32)])  # head layout
    rows = np.arange(300, dtype=np.int64)
    assert DenseIndex(unit, rows, ann_threshold=100)._ensure_hnsw() is not None
    heads = DenseIndex(scaled, rows, ann_threshold=100)
    assert heads._ensure_hnsw() is None  # unequal norms: exact search
    q = scaled[:3]
    want = np.argsort(-(q @ scaled.T), axis=1)[:, :5]
    got = [r for r, _ in heads.search(q, 5)]
    assert [list(g) for g in got] == [list(w) for w in want]


def test_numba_backend_gives_the_numpy_scores(abstracts, tmp_path):
    pytest.importorskip("numba")
    import subprocess
    import sys

    texts = [d["text"] for d in abstracts[:150]]
    queries = [abstracts[i]["title"] for i in range(4)]
    (tmp_path / "in.json").write_text(json.dumps({"texts": texts, "queries": queries}))
    code = f"""
import json, numpy as np
from aspectrag.store import bm25_index
bm25_index.NUMBA_MIN_DOCS = 1  # before bm25s is imported, as the service does
d = json.loads(open({str(tmp_path / "in.json")!r}).read())
idx = bm25_index.BM25Index().build(d["texts"], np.arange(150, dtype=np.int64))
idx = idx.with_changes(d["texts"][:5], np.arange(200, 205, dtype=np.int64),
                       np.array([3, 7], dtype=np.int64), generation=1)
got = idx.search(d["queries"], 10)
assert idx._bm25.backend == "numba", idx._bm25.backend
bm25_index.NUMBA_MIN_DOCS = None
idx._bm25.backend = "numpy"
want = idx.search(d["queries"], 10)
for (r1, s1), (r2, s2) in zip(got, want):
    assert list(r1) == list(r2)
    np.testing.assert_allclose(s1, s2, rtol=1e-5)
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]


def test_command_line_imports_bm25s_without_numba(tmp_path):
    import subprocess
    import sys

    code = ("import sys\nfrom aspectrag.store.bm25_index import tokenize\n"
            "tokenize(['cats purr'])\nprint('numba' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "False", r.stderr[-2000:]

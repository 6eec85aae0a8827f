"""MultiHeadRetriever and head statistics over a real SQLite store, with a tiny random BERT."""

from __future__ import annotations

import numpy as np
import pytest

from aspectrag.errors import ConfigError
from aspectrag.ingest.pipeline import ingest, remove
from aspectrag.multihead.embedder import MultiHeadEmbedder
from aspectrag.multihead.layout import head_queries, pack_heads, unpack_heads
from aspectrag.multihead.retriever import MultiHeadRetriever, search_spaces
from aspectrag.multihead.stats import STATS_KEY, HeadStats, HeadStatsTracker, recompute
from aspectrag.store.sqlite import SQLiteStore

DOCS = {
    "cakes.txt": "Cakes are baked from flour, sugar and eggs. Sponge cake is light and airy.",
    "battle.txt": "The Roman legions fought the Allobroges near the Isère river in 121 BC.",
    "rap.txt": "A diss track is a song whose purpose is to verbally attack another artist.",
    "ships.txt": "Container ships carry freight across oceans; ports load them with cranes.",
    "trees.txt": "Oak and beech trees dominate temperate forests of central Europe.",
    "chess.txt": "In chess the queen is the most powerful piece; castling protects the king.",
}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):  # type: ignore[no-untyped-def]
    from tests.fakes import tiny_bert_folder

    return str(tiny_bert_folder(tmp_path_factory.mktemp("tiny_bert_mh"), seed=1))


def _corpus(tmp_path):  # type: ignore[no-untyped-def]
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in DOCS.items():
        # several distinct chunks per document (no tied scores)
        words = text.split()
        parts = [" ".join(words[3 * i :] + words[: 3 * i]) for i in range(3)]  # rotated words
        (folder / name).write_text("\n\n".join(parts))
    return folder


def _index(tmp_path, model, head_dtype=None, **emb_opts):  # type: ignore[no-untyped-def]
    from aspectrag.config import ChunkingConfig
    from aspectrag.ingest.pipeline import make_splitter

    tmp_path.mkdir(parents=True, exist_ok=True)  # opening a store creates nothing
    store = SQLiteStore(tmp_path / "index", head_dtype=head_dtype)
    emb = MultiHeadEmbedder(model, batch_size=8, **emb_opts)
    folder = _corpus(tmp_path)
    rep = ingest(
        store,
        emb,
        [str(folder)],
        progress=False,
        splitter=make_splitter(emb, ChunkingConfig(24, 4)),
        hooks=[HeadStatsTracker(store, emb)],
    )
    assert rep.ok and rep.chunks > len(DOCS)
    return store, emb, folder


def _all_vectors(store: SQLiteStore, space: str) -> tuple[list[str], np.ndarray]:
    ids = [c.chunk_id for c in store.iter_chunks()]
    return ids, store.get_vectors(space, ids)


def test_head_stats_are_exact_and_additive() -> None:
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(40, 3, 5)) + 1.5
    packed = pack_heads(raw)
    st = HeadStats.of([packed[:, g] for g in range(3)])
    for g in range(3):
        v = raw[:, g]
        u = v / np.linalg.norm(v, axis=1, keepdims=True)
        cos = u @ u.T
        pairs = cos[~np.eye(len(v), dtype=bool)]
        want = np.linalg.norm(v, axis=1).mean() * (1 - pairs.mean())
        assert st.importance[g] == pytest.approx(want, rel=1e-6)
    np.testing.assert_allclose(st.centre, raw.mean(0), rtol=1e-5)
    a = HeadStats.of([packed[:25, g] for g in range(3)])
    b = HeadStats.of([packed[25:, g] for g in range(3)])
    np.testing.assert_allclose((a + b).importance, st.importance, rtol=1e-9)
    np.testing.assert_allclose((st - b).unit_sum, a.unit_sum, atol=1e-9)
    assert HeadStats.from_json(st.to_json()).count == 40


def test_ingest_keeps_stats_exact_through_updates_and_removal(tmp_path, tiny_model) -> None:  # type: ignore[no-untyped-def]
    store, emb, folder = _index(tmp_path, tiny_model)
    assert store.get_meta("multihead.config") is not None
    first = HeadStats.from_json(store.get_meta(STATS_KEY))
    assert first.count == store.stats()["chunks"]
    # update one document, remove another: the incremental stats equal a recomputation
    (folder / "cakes.txt").write_text("Cheesecake has a biscuit base and a cream cheese layer.")
    ingest(store, emb, [str(folder)], progress=False, hooks=[HeadStatsTracker(store, emb)])
    remove(store, str((folder / "chess.txt").resolve()), hooks=[HeadStatsTracker(store)])
    tracked = HeadStats.from_json(store.get_meta(STATS_KEY))
    exact = recompute(store)
    assert tracked.count == exact.count == store.stats()["chunks"] < first.count
    np.testing.assert_allclose(tracked.importance, exact.importance, rtol=1e-6)
    np.testing.assert_allclose(tracked.centre, exact.centre, rtol=1e-5, atol=1e-6)


def test_votes_match_brute_force(tmp_path, tiny_model) -> None:  # type: ignore[no-untyped-def]
    store, emb, _ = _index(tmp_path, tiny_model)
    queries = ["Roman battle near a river", "baking a sponge cake"]
    k = 5
    for votes, centre, dense_weight in (
        ("unweighted", True, 2.0),
        ("importance", False, 0.0),
        ("distance", True, 1.0),
    ):
        r = MultiHeadRetriever(store, emb, votes=votes, centre=centre, dense_weight=dense_weight)
        got = r.vote(queries, k)
        stats = recompute(store)
        _, q_heads = emb.encode_heads(queries)
        dense_q = emb.encode(queries)["dense"]
        qv = head_queries(q_heads, stats.centre if centre else None)
        w = stats.importance / stats.importance.mean() if votes == "importance" else np.ones(4)
        ids, _ = _all_vectors(store, "head0")
        expected = np.zeros((len(queries), len(ids)))
        spaces = [(f"head{g}", qv[:, g], w[g]) for g in range(4)]
        if dense_weight:
            spaces.append(("dense", dense_q, dense_weight))
        for space, q, weight in spaces:
            _, mat = _all_vectors(store, space)
            sims = q @ mat.T
            for qi in range(len(queries)):
                top = np.argsort(-sims[qi], kind="stable")[:k]
                if votes == "distance":
                    expected[qi, top] += weight / np.maximum(1 - sims[qi, top], 1e-6)
                else:
                    expected[qi, top] += weight * 2.0 ** -np.arange(k)
        for qi in range(len(queries)):
            ranked, prov = got[qi]
            assert len(ranked) == k
            want = np.sort(expected[qi])[::-1][:k]
            np.testing.assert_allclose([v for _, v in ranked], want, rtol=1e-4)
            for (cid, v), p in zip(ranked, prov, strict=True):
                assert expected[qi, ids.index(cid)] == pytest.approx(v, rel=1e-4)
                assert p and all(name.startswith(("head", "dense")) for name in p)


def test_retrieve_hits_modes_and_groups(tmp_path, tiny_model) -> None:  # type: ignore[no-untyped-def]
    from aspectrag.retrieve.factory import build_retriever

    store, emb, _ = _index(tmp_path, tiny_model, split=True)
    for name in (
        "multihead",
        "multihead-paper",
        "multihead-unweighted",
        "multihead-distance",
        "multihead-bm25",
        "split",
    ):
        hits = build_retriever(name, store, emb).retrieve("Roman legions", k=4)
        assert [h.rank for h in hits] == [1, 2, 3, 4]
        assert all(a.score >= b.score for a, b in zip(hits, hits[1:], strict=False))
    bm = build_retriever("multihead-bm25", store, emb, bm25_weight=20.0).retrieve_batch(
        ["queen castling"], 3
    )[0]
    assert bm[0].provenance["bm25"] == 1 and bm[0].chunk.source.endswith("chess.txt")
    split_hits = build_retriever("split", store, emb).retrieve("chess queen", k=3)
    assert all(set(h.provenance) <= {f"split{i}" for i in range(4)} for h in split_hits)
    # source filter goes through to every space
    src = [s for s in store.sources() if s.endswith("rap.txt")]
    assert {
        h.chunk.source
        for h in build_retriever("multihead", store, emb).retrieve("song", k=3, sources=src)
    } == set(src)

    gstore, gemb, _ = _index(tmp_path / "g", tiny_model, groups=2)
    assert sorted(s for s in gstore.vector_spaces() if s.startswith("head")) == ["head0", "head1"]
    plain = MultiHeadEmbedder(tiny_model)  # the retriever adopts the index's grouping
    r = MultiHeadRetriever(gstore, plain)
    assert r.embedder.groups == 2 and len(r.retrieve("forests", k=3)) == 3
    ids, x = _all_vectors(gstore, "head1")
    _, raw = gemb.encode_raw([c.index_text() for c in gstore.get_chunks(ids)])
    np.testing.assert_allclose(unpack_heads(x), raw[(-1, "cls")][:, 2:4].mean(1), atol=1e-4)


def test_index_without_heads_is_a_clear_error(tmp_path, tiny_model) -> None:  # type: ignore[no-untyped-def]
    from aspectrag.embed.hf import HFEmbedder

    store = SQLiteStore(tmp_path / "plain")
    emb = HFEmbedder(tiny_model)
    ingest(store, emb, [str(_corpus(tmp_path))], progress=False)
    with pytest.raises(ConfigError, match="no per-head vectors"):
        MultiHeadRetriever(store, emb)
    with pytest.raises(ConfigError, match="votes"):
        MultiHeadRetriever(store, emb, votes="bogus")  # type: ignore[arg-type]


def test_batched_space_search_equals_one_by_one(tmp_path, tiny_model) -> None:  # type: ignore[no-untyped-def]
    from aspectrag.store.sqlite import top_k_rows

    store, emb, _ = _index(tmp_path, tiny_model)
    rng = np.random.default_rng(3)
    spaces = [s for s in store.vector_spaces() if s.startswith("head")] + ["dense"]
    dims = {s: store.get_vectors(s, [next(store.iter_chunks()).chunk_id]).shape[1] for s in spaces}
    for nq, sources in ((1, None), (2, None), (1, [store.sources()[0]])):
        searches = [(s, rng.normal(size=(nq, dims[s])).astype(np.float32)) for s in spaces]
        got = store.vector_search_spaces(searches, 4, sources)
        want = [store.vector_search(s, q, 4, sources) for s, q in searches]
        # the retriever's entry point: head spaces here, the dense voter on a second thread
        assert search_spaces(store, searches, 4, sources) == got
        for g, w in zip(got, want, strict=True):
            assert [[x.chunk_id for x in run] for run in g] == [
                [x.chunk_id for x in run] for run in w
            ]
            np.testing.assert_allclose(
                [[x.score for x in run] for run in g],
                [[x.score for x in run] for run in w],
                rtol=1e-5,
            )
    # the vectorised top-k is exact, also on sorted rows (bad for strided samples) and ties
    scores = rng.normal(size=(5, 9000)).astype(np.float32)
    scores[1] = np.sort(scores[1])
    scores[2] = 0.5
    for (pos, vals), row in zip(top_k_rows(scores, 10), scores, strict=True):
        np.testing.assert_array_equal(vals, np.sort(row)[::-1][:10])
        np.testing.assert_array_equal(row[pos], vals)


def test_float16_heads_rank_as_float32(tmp_path, tiny_model) -> None:  # type: ignore[no-untyped-def]
    """A new index (float16 head vectors) and one built with ``head_dtype="float32"`` give the
    the same top 3 here (18 chunks; vote totals may differ where rounding swaps a chunk's
    rank in one head), and the same head statistics within float16 rounding."""
    half, emb, _ = _index(tmp_path / "h", tiny_model)
    full, _, _ = _index(tmp_path / "f", tiny_model, head_dtype="float32")
    assert half.vector_dtype("head0") == "float16" and full.vector_dtype("head0") == "float32"
    st16, st32 = HeadStats.from_json(half.get_meta(STATS_KEY)), HeadStats.from_json(
        full.get_meta(STATS_KEY))
    np.testing.assert_allclose(st16.centre, st32.centre, rtol=2e-3, atol=1e-4)
    queries = ["baked sponge cake", "legions by the river", "ships and cranes", "queen piece"]
    for votes in ("unweighted", "importance", "distance"):
        a = MultiHeadRetriever(half, emb, votes=votes).retrieve_batch(queries, 5)
        b = MultiHeadRetriever(full, emb, votes=votes).retrieve_batch(queries, 5)
        for x, y in zip(a, b, strict=True):
            names = [[h.chunk.chunk_id.split("/docs/")[1] for h in r[:3]] for r in (x, y)]
            assert names[0] == names[1], votes

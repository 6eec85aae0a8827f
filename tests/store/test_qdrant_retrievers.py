"""Every retriever works on a Qdrant (local mode) index built through ``Index.ingest``, and
ranks as on the SQLite store built from the same files (tiny random BERT with per-head
vectors, so ``multihead`` has head spaces to search)."""

from __future__ import annotations

import pytest

pytest.importorskip("qdrant_client", reason="qdrant-client is not installed (pip install "
                    "'aspectrag[qdrant]')")

from aspectrag.config import ChunkingConfig  # noqa: E402
from aspectrag.index import Index  # noqa: E402

DOCS = {
    "cakes.txt": "Cakes are baked from flour, sugar and eggs. Sponge cake is light and airy.",
    "battle.txt": "The Roman legions fought the Allobroges near the river in 121 BC.",
    "rap.txt": "A diss track is a song whose purpose is to verbally attack another artist.",
    "ships.txt": "Container ships carry freight across oceans; ports load them with cranes.",
    "trees.txt": "Oak and beech trees dominate temperate forests of central Europe.",
    "chess.txt": "In chess the queen is the most powerful piece; castling protects the king.",
}
QUERIES = ["ships carry freight and cranes", "which trees grow in European forests",
           "sponge cake with eggs. The queen in chess."]
RETRIEVERS = ["bm25", "dense", "hybrid", "multiquery", "multihead"]


@pytest.fixture(scope="module")
def indexes(tmp_path_factory):  # type: ignore[no-untyped-def]
    from tests.fakes import tiny_bert_folder

    from aspectrag.multihead.embedder import MultiHeadEmbedder

    root = tmp_path_factory.mktemp("qdrant_retrievers")
    emb = MultiHeadEmbedder(str(tiny_bert_folder(root / "model", seed=1)), batch_size=8)
    folder = root / "docs"
    folder.mkdir()
    for name, text in DOCS.items():
        words = text.split()
        (folder / name).write_text("\n\n".join(" ".join(words[3 * i :] + words[: 3 * i])
                                               for i in range(3)))
    out = {}
    for kind, loc in [("sqlite", str(root / "sqlite")),
                      ("qdrant", f"qdrant+local://:memory:/docs{id(root)}")]:
        idx = Index(loc, embedder=emb, chunking=ChunkingConfig(24, 4))
        rep = idx.ingest([str(folder)])
        assert rep.ok and rep.chunks > len(DOCS), rep
        out[kind] = idx
    return out


@pytest.mark.parametrize("name", RETRIEVERS)
def test_retriever_ranks_as_on_sqlite(indexes, name: str) -> None:  # type: ignore[no-untyped-def]
    sq, qd = indexes["sqlite"], indexes["qdrant"]
    assert qd.store.stats() == sq.store.stats()
    assert qd.store.vector_spaces() == sq.store.vector_spaces()
    assert any(s.startswith("head") for s in qd.store.vector_spaces())
    for q in QUERIES:
        a, b = sq.search(q, k=5, retriever=name), qd.search(q, k=5, retriever=name)
        assert b and len(b) == len(a)
        assert [h.chunk.chunk_id for h in b] == [h.chunk.chunk_id for h in a], (name, q)
        assert [h.score for h in b] == pytest.approx([h.score for h in a], rel=1e-4, abs=1e-5)
    src = [qd.search(QUERIES[0], k=5, retriever=name)[-1].chunk.source]
    hits = qd.search(QUERIES[0], k=5, retriever=name, sources=src)
    assert hits and all(h.chunk.source == src[0] for h in hits)


def test_rerank_on_qdrant(indexes) -> None:  # type: ignore[no-untyped-def]
    from aspectrag.rerank.base import RerankingRetriever
    from aspectrag.rerank.factory import build_reranker

    out = {}
    for kind, idx in indexes.items():
        r = RerankingRetriever(idx.retriever("hybrid"),
                               build_reranker("bi-encoder", embedder=idx.embedder), depth=10)
        out[kind] = [h.chunk.chunk_id for h in idx.search(QUERIES[1], k=5, retriever=r)]
    assert len(out["qdrant"]) == 5 and out["qdrant"] == out["sqlite"]

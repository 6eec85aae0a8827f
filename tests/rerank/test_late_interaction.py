"""Late interaction (MaxSim) with the real MiniLM: scoring, windows, cache, SciFact."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tests.rerank.helpers import chunk, hits_of

from aspectrag.embed.hf import HFEmbedder
from aspectrag.errors import IndexMismatchError
from aspectrag.rerank.cache import TokenVectorCache
from aspectrag.rerank.late_interaction import LateInteractionReranker, fill_cache, maxsim
from aspectrag.rerank.tokens import encode_texts
from aspectrag.types import Hit

DOCS = [
    "The Eiffel Tower is a wrought-iron tower in Paris.",
    "Photosynthesis converts light into chemical energy in chloroplasts.",
    "Bananas are a fruit rich in potassium and vitamin B6.",
]


def test_maxsim_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    q = rng.normal(size=(5, 8)).astype(np.float32)
    docs = [rng.normal(size=(n, 8)).astype(np.float32) for n in (3, 1, 0, 7)]
    want = [sum(max(qi @ dj for dj in d) for qi in q) if len(d) else 0.0 for d in docs]
    np.testing.assert_allclose(maxsim(q, docs), want, rtol=1e-5)


def test_windows_cover_long_text_and_match_the_embedder(embedder: HFEmbedder) -> None:
    long_text = " ".join(f"word{i}" for i in range(150))
    n_tokens = embedder.count_tokens(long_text)
    short, long_ = encode_texts(embedder, ["A short sentence.", long_text], overlap=32)
    # one window for the short text, pooled exactly like HFEmbedder.encode
    np.testing.assert_allclose(
        short.windows[0], embedder.encode(["A short sentence."])["dense"][0], atol=1e-6
    )
    assert short.tokens.shape == (embedder.count_tokens("A short sentence."), embedder.dim)
    # the long text is split, nothing dropped: tokens >= all its tokens (overlaps counted twice)
    assert long_.windows.shape[0] >= 2
    assert n_tokens <= long_.tokens.shape[0] < n_tokens + 32 * long_.windows.shape[0]
    np.testing.assert_allclose(np.linalg.norm(long_.tokens, axis=1), 1.0, atol=1e-5)
    first = encode_texts(embedder, [long_text], max_windows=1)[0]
    assert first.windows.shape[0] == 1 and first.tokens.shape[0] == embedder.max_tokens - 2


def test_reorders_constructed_case(embedder: HFEmbedder) -> None:
    r = LateInteractionReranker(embedder)
    out = r.rerank("Which fruit contains potassium?", hits_of(DOCS))
    assert out[0].chunk.text == DOCS[2] and out[0].provenance["rerank"]["first_stage_rank"] == 3
    out = r.rerank("How do plants turn light into energy?", hits_of(DOCS), k=1)
    assert [h.chunk.text for h in out] == [DOCS[1]]


def test_cache_gives_same_scores_and_refuses_other_embedders(embedder, tmp_path) -> None:  # type: ignore[no-untyped-def]
    chunks = [chunk(i, t) for i, t in enumerate(DOCS)]
    plain = LateInteractionReranker(embedder).score("potassium fruit", chunks)
    path = tmp_path / "tv.sqlite"
    r = LateInteractionReranker(embedder)
    r.cache = TokenVectorCache(path, embedder.name, embedder.dim, r.cache_config)
    assert fill_cache(r, chunks) == 3 and len(r.cache) == 3
    stats: dict[str, int] = {}
    cached = r.score("potassium fruit", chunks, stats)
    assert stats == {"cached": 3, "computed": 0}
    np.testing.assert_allclose(cached, plain, atol=2e-2)  # float16 storage
    assert np.argsort(cached).tolist() == np.argsort(plain).tolist()
    # a changed chunk text is recomputed, not served stale
    changed = [chunk(0, "Completely different text about volcanoes.")] + chunks[1:]
    r.score("x", changed, stats)
    assert stats == {"cached": 2, "computed": 1}
    info: dict[str, int] = {}
    r.rerank("x", [Hit(c, 1.0, i + 1) for i, c in enumerate(changed)], info=info)
    assert info == {"cached": 3, "computed": 0}
    assert fill_cache(r, changed) == 0  # the recomputed vectors were written back
    r.cache.close()
    with pytest.raises(IndexMismatchError, match="delete the file"):
        TokenVectorCache(path, "hf:other+lora:x@123", embedder.dim, r.cache_config)
    with pytest.raises(IndexMismatchError):
        TokenVectorCache(path, embedder.name, embedder.dim, "skip_punctuation=1")


@pytest.mark.slow
def test_scifact_relevant_abstracts_move_up(embedder, data_dir) -> None:  # type: ignore[no-untyped-def]
    """For 5 SciFact test claims, the relevant abstract is put last among 5 BM25-similar
    non-relevant abstracts; late interaction must lift it well above last place."""
    import bm25s

    d = data_dir / "scifact"
    if not d.is_dir():
        pytest.skip(f"{d} is absent")
    corpus = {}
    with (d / "corpus.jsonl").open() as f:
        for line in f:
            o = json.loads(line)
            corpus[o["_id"]] = (o["title"], o["text"])
    queries = {json.loads(x)["_id"]: json.loads(x)["text"] for x in (d / "queries.jsonl").open()}
    qrels: dict[str, set[str]] = {}
    for row in list((d / "qrels" / "test.tsv").open())[1:]:
        q, doc, _ = row.split("\t")
        qrels.setdefault(q, set()).add(doc)
    ids = list(corpus)
    bm = bm25s.BM25()
    bm.index(bm25s.tokenize([f"{t} {x}" for t, x in corpus.values()], show_progress=False),
             show_progress=False)  # fmt: skip
    r = LateInteractionReranker(embedder)
    ranks = []
    for q in sorted(qrels)[:5]:
        res, _ = bm.retrieve(bm25s.tokenize([queries[q]], show_progress=False), k=30,
                             show_progress=False)  # fmt: skip
        negs = [ids[i] for i in res[0] if ids[i] not in qrels[q]][:5]
        pos = sorted(qrels[q])[0]
        cands = [chunk(x, corpus[x][1], corpus[x][0]) for x in [*negs, pos]]
        hits = [h for h in hits_of(["-"] * 6)]
        for h, c in zip(hits, cands, strict=True):
            h.chunk = c
        out = r.rerank(queries[q], hits)
        ranks.append(next(h.rank for h in out if h.chunk.doc_id == f"d{pos}"))
    assert np.mean(ranks) <= 2.5, ranks  # from rank 6 to the top on average

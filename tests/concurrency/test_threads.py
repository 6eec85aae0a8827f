"""One ``Index`` serving 8 threads of mixed searches gives every search its single-threaded
result (ids, scores to 1e-6, the queries searched): the read path shares nothing per request.

Corpus: a slice of the bundled ``samples/wikipedia-aspects`` (real Wikipedia articles), embedded
with a tiny random BERT (multi-head spaces included) so that the test runs in seconds.
"""

from __future__ import annotations

import json
import random
import threading
from pathlib import Path

import pytest

from aspectrag.types import SearchResult

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "wikipedia-aspects" / "corpus.jsonl"
QUESTIONS = [
    "How were ziggurats built in Mesopotamia?",
    "What is timber framing? How does it differ from a shotgun house?",
    "Baroque architecture and Romanesque churches",
    "Which materials does an earthship use, and where are they built?",
    "Gothic revival in England; Islamic domes; Russian wooden churches.",
    "cathedral windows and vaults",
]


@pytest.fixture(scope="module")
def index(tmp_path_factory):  # type: ignore[no-untyped-def]
    if not SAMPLE.is_file():
        pytest.skip(f"{SAMPLE} is absent (the bundled sample corpus)")
    from tests.fakes import tiny_bert_folder

    from aspectrag.config import ChunkingConfig
    from aspectrag.index import Index
    from aspectrag.multihead.embedder import MultiHeadEmbedder

    root = tmp_path_factory.mktemp("threads")
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()[::30]  # 42 articles, all categories
    corpus = root / "corpus.jsonl"
    with corpus.open("w", encoding="utf-8") as fh:
        for line in lines:
            d = json.loads(line)
            fh.write(json.dumps({**d, "text": d["text"][:1200]}, ensure_ascii=False) + "\n")
    model = tiny_bert_folder(root / "model", seed=3)
    idx = Index(root / "index", embedder=MultiHeadEmbedder(str(model), batch_size=16),
                chunking=ChunkingConfig(96, 16))
    rep = idx.ingest([corpus])
    assert rep.ok and rep.chunks > 100
    return idx


def _retrievers(idx, cache_path):  # type: ignore[no-untyped-def]
    from aspectrag.rerank.base import RerankingRetriever
    from aspectrag.rerank.factory import build_reranker
    from aspectrag.rerank.late_interaction import fill_cache

    late = build_reranker("late-interaction", embedder=idx.embedder)
    cached = build_reranker("late-interaction", embedder=idx.embedder, cache_path=cache_path)
    fill_cache(cached, idx.store.iter_chunks())  # every read served from the (shared) cache
    return {
        "rerank-cached": RerankingRetriever(idx.retriever("bm25"), cached, depth=20),
        "bm25": idx.retriever("bm25"),
        "hybrid": idx.retriever("hybrid"),
        "multiquery": idx.retriever("multiquery", base="hybrid", queries="rules"),
        "multihead": idx.retriever("multihead"),
        "rerank": RerankingRetriever(idx.retriever("hybrid"), late, depth=20),
    }


def _key(res: SearchResult):  # type: ignore[no-untyped-def]
    return ([h.chunk.chunk_id for h in res.hits], [h.score for h in res.hits], res.queries)


def _same(got: SearchResult, want: SearchResult) -> bool:
    g_ids, g_scores, g_q = _key(got)
    w_ids, w_scores, w_q = _key(want)
    return (g_ids == w_ids and g_q == w_q
            and all(abs(a - b) <= 1e-6 for a, b in zip(g_scores, w_scores, strict=True)))


def test_eight_threads_of_mixed_searches_equal_single_threaded(index, tmp_path) -> None:  # type: ignore[no-untyped-def]
    retrievers = _retrievers(index, tmp_path / "token_vectors.sqlite")
    k = 8
    expected = {(name, q): index.search_result(q, k, retriever=r)
                for name, r in retrievers.items() for q in QUESTIONS}
    assert all(res.hits for res in expected.values())
    assert any(len(res.queries) > 2 for (n, _), res in expected.items() if n == "multiquery")
    assert all(res.queries == [] for (n, _), res in expected.items() if n != "multiquery")
    assert all("rerank" in res.timings for (n, _), res in expected.items()
               if n.startswith("rerank"))
    assert all(res.info["rerank"]["computed"] == 0 for (n, _), res in expected.items()
               if n == "rerank-cached")

    jobs = list(expected) * 2
    errors: list[str] = []
    start = threading.Barrier(8)

    def worker(seed: int) -> None:
        mine = jobs[:]
        random.Random(seed).shuffle(mine)
        start.wait()
        for name, q in mine:
            try:
                got = index.search_result(q, k, retriever=retrievers[name])
            except Exception as e:  # noqa: BLE001 - reported below with the failing search
                errors.append(f"{name} {q!r}: {type(e).__name__}: {e}")
                continue
            if not _same(got, expected[(name, q)]):
                g, w = _key(got), _key(expected[(name, q)])
                diff = max((abs(a - b) for a, b in zip(g[1], w[1], strict=False)), default=0.0)
                errors.append(f"{name} {q!r}: ids {g[0] == w[0]}, queries {g[2] == w[2]}, "
                              f"max score difference {diff:.3g}: {g} != {w}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, f"{len(errors)} of {8 * len(jobs)} searches differed:\n" + "\n".join(
        errors[:5])
    # nothing per call was left on the shared retrievers
    for r in retrievers.values():
        assert not [a for a in vars(r) if a.startswith("last_")]


def test_head_statistics_are_read_only_at_query_time(index) -> None:  # type: ignore[no-untyped-def]
    """A multi-head search on an index whose statistics are missing computes them in memory
    and writes nothing (the meta stays absent)."""
    from aspectrag.multihead.layout import STATS_KEY
    from aspectrag.multihead.retriever import MultiHeadRetriever
    from aspectrag.multihead.stats import compute_stats

    store = index.store
    recorded = store.get_meta(STATS_KEY)
    assert recorded is not None
    exact = compute_stats(store)

    class NoStats:  # the index as an older version left it: no statistics recorded
        def __init__(self, inner):  # type: ignore[no-untyped-def]
            self._inner = inner

        def __getattr__(self, name):  # type: ignore[no-untyped-def]
            return getattr(self._inner, name)

        def get_meta(self, key: str):  # type: ignore[no-untyped-def]
            return None if key == STATS_KEY else self._inner.get_meta(key)

        def set_meta(self, key, value):  # type: ignore[no-untyped-def]
            raise AssertionError(f"the read path wrote {key!r}")

        def writer(self):  # type: ignore[no-untyped-def]
            raise AssertionError("the read path opened a writer")

    r = MultiHeadRetriever(NoStats(store), index.embedder, votes="importance")
    hits = r.retrieve(QUESTIONS[0], k=5)
    assert len(hits) == 5
    assert r.stats().count == exact.count == store.stats()["chunks"]
    assert store.get_meta(STATS_KEY) == recorded

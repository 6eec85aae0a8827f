"""Does storing the per-head vectors in float16 keep multi-head ranking quality? (issue 13.6)

Development data only (never SciFact test):

- MRAG Wikipedia v1 (1,250 articles, 250 queries): strategies ``mrag`` and ``mrag-centred``
  (the ``aspectrag eval mrag`` main index), per-query weighted score averaged over k = a .. a+10 (``weighted_avg``)
  and at k = a (``weighted``); paired bootstrap stratified by aspect count;
- HotpotQA (200 hard distractor questions, 1,971 paragraphs, ``multiquery_hotpot.py``'s index):
  the default ``multihead`` retriever and ``multihead-heads`` (dense weight 2, the heads
  weigh more), nDCG@10 with the two supporting paragraphs relevant;
- SciFact **train** queries (809), ``--scifact``: the ``aspectrag eval beir`` cache index
  (built if absent: ~20 min), the same two retrievers' nDCG@10.

Each index is built (or reused) with float32 head vectors. The float16 run rounds every head
vector of the loaded index to float16 and back (``round_heads``: exactly what a float16 index
stores and reads back, ``store/vector_codec.py``) and recomputes the head statistics from the
rounded vectors (the float16 store keeps them from the stored values); queries stay float32,
products are float32. Prints per data set: the metric for float32 and float16, the paired
bootstrap 95% CI of float16 - float32 (10,000 resamples), the share of queries whose top-10
documents change (as a set, and in order), and the largest score change of any stored head
coordinate.

    python benchmarks/fp16_heads.py [--datasets mrag hotpot] [--scifact] [--json out.json]
    python benchmarks/fp16_heads.py --latency [--json out.json]   # head product fp16 vs fp32
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ASPECTRAG_SHARED_DATA", ROOT.parent / "shared" / "data"))
sys.path.insert(0, str(ROOT / "benchmarks"))


def round_heads(store) -> float:  # type: ignore[no-untyped-def]
    """Round the loaded head vectors of ``store`` (a SQLiteStore) to float16 and back, in
    place; returns the largest absolute change of a coordinate."""
    from aspectrag.multihead.stats import head_spaces

    worst = 0.0
    for space in head_spaces(store):
        ix = store.dense_index(space)
        for name in ("base_vectors", "delta_vectors"):
            a = getattr(ix, name)
            r = a.astype(np.float16).astype(np.float32)
            if a.size:
                worst = max(worst, float(np.abs(r - a).max()))
            setattr(ix, name, r)
        ix._vectors = None
    store._stacks.clear()
    return worst


def rounded_stats(store):  # type: ignore[no-untyped-def]
    """Head statistics of the (rounded) vectors now loaded in ``store``."""
    from aspectrag.multihead.stats import HeadStats, head_spaces

    packed = []
    for space in head_spaces(store):
        ix = store.dense_index(space)
        packed.append(ix.vectors[ix.live])
    return HeadStats.of(packed)


def with_stats(retriever, stats):  # type: ignore[no-untyped-def]
    """``retriever`` (a MultiHeadRetriever) answering with ``stats``."""
    retriever.stats = lambda: stats
    return retriever


def changed(a: list[list[str]], b: list[list[str]], k: int = 10) -> tuple[float, float]:
    """Share of queries whose top-``k`` differs as a set, and in order."""
    sets = np.mean([set(x[:k]) != set(y[:k]) for x, y in zip(a, b, strict=True)])
    order = np.mean([x[:k] != y[:k] for x, y in zip(a, b, strict=True)])
    return float(sets), float(order)


def report(name: str, metric: str, a32: np.ndarray, a16: np.ndarray, r32, r16,  # type: ignore[no-untyped-def]
           strata=None, worst: float = 0.0) -> dict:  # type: ignore[type-arg]
    from aspectrag.evaluate.metrics import paired_bootstrap

    ci = paired_bootstrap(a16, a32, strata)["mean"]
    sets, order = changed(r32, r16)
    print(f"{name:38s} {metric:16s} fp32 {np.nanmean(a32):.4f}  fp16 {np.nanmean(a16):.4f}  "
          f"diff {ci[0]:+.4f} [95% CI {ci[1]:+.4f}, {ci[2]:+.4f}]  top-10 changed: "
          f"set {sets:.1%}, order {order:.1%}  (largest coordinate change {worst:.2e})")
    return {"metric": metric, "fp32": float(np.nanmean(a32)), "fp16": float(np.nanmean(a16)),
            "diff": ci[0], "ci": [ci[1], ci[2]], "top10_set_changed": sets,
            "top10_order_changed": order, "max_coord_change": worst, "queries": len(a32)}


def mrag() -> dict:  # type: ignore[type-arg]
    """``mrag`` (the eval's main strategy) and ``mrag-centred`` (heads alone, no dense voter:
    the most head-sensitive) on MRAG Wikipedia v1."""
    from aspectrag.evaluate.mrag import load_mrag
    from aspectrag.evaluate.mrag_strategies import MragEvaluation, strategy

    ds = load_mrag("wikipedia", DATA)
    ev = MragEvaluation(ds, progress=sys.stderr.isatty())
    names = ("mrag", "mrag-centred")
    run32 = {n: ev.run(n) for n in names}
    store = ev.index(strategy("mrag").index).store
    worst = round_heads(store)
    stats = rounded_stats(store)
    run16 = {n: ev.run(n, retriever=with_stats(ev.retriever(strategy(n)), stats)) for n in names}
    out: dict[str, dict] = {}  # type: ignore[type-arg]
    for n in names:
        for m in ("weighted_avg", "weighted"):
            out[f"{n}:{m}"] = report(f"MRAG wikipedia v1 {n}", m, run32[n].per_query[m],
                                     run16[n].per_query[m], run32[n].rankings,
                                     run16[n].rankings, ds.strata, worst)
    return out


def qrels_run(name: str, idx, queries: dict[str, str], qrels) -> dict:  # type: ignore[no-untyped-def, type-arg]
    """nDCG@10 of the ``multihead`` and ``multihead-heads`` retrievers on ``idx`` for float32,
    then float16 heads."""
    from aspectrag.evaluate.beir import beir_run
    from aspectrag.evaluate.metrics import per_query_scores
    from aspectrag.retrieve.factory import build_retriever

    emb, names = idx.embedder, ("multihead", "multihead-heads")
    run32 = {n: beir_run(build_retriever(n, idx.store, emb), queries) for n in names}
    worst = round_heads(idx.store)
    stats = rounded_stats(idx.store)
    run16 = {n: beir_run(with_stats(build_retriever(n, idx.store, emb), stats), queries)
             for n in names}
    out = {}
    for n in names:
        s32, s16 = per_query_scores(qrels, run32[n]), per_query_scores(qrels, run16[n])
        rk = [[list(r[n][q]) for q in qrels] for r in (run32, run16)]
        out[n] = report(f"{name} {n}", "nDCG@10", s32, s16, rk[0], rk[1], None, worst)
    return out


def product_latency(store, queries: list[np.ndarray], rounds: int = 5) -> dict:  # type: ignore[no-untyped-def, type-arg]
    """Warm latency of the store's batched head search (``vector_search_spaces`` over the 12
    head spaces, k = 100) with the stacked head matrix held in float32 (what the store does)
    and in float16 (numpy promotes it to float32 inside every product), same process, same
    queries; median over ``rounds`` of the mean ms per query."""
    import time

    from aspectrag.multihead.stats import head_spaces

    spaces = head_spaces(store)
    key = tuple(spaces)

    def timed() -> float:
        per = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            for q in queries:
                store.vector_search_spaces([(s, q[g]) for g, s in enumerate(spaces)], 100)
            per.append((time.perf_counter() - t0) / len(queries) * 1e3)
        return float(np.median(per))

    store.vector_search_spaces([(s, queries[0][g]) for g, s in enumerate(spaces)], 100)
    gen, stacked, rowids, live = store._stacks[key]
    ms32 = timed()
    store._stacks[key] = (gen, stacked.astype(np.float16), rowids, live)
    ms16 = timed()
    store._stacks[key] = (gen, stacked, rowids, live)
    n = stacked.shape[1]
    print(f"head search latency ({n} chunks, {len(spaces)} heads, k=100, under load): "
          f"float32 stack {ms32:.2f} ms/query, float16 stack {ms16:.2f} ms/query, "
          f"ratio fp16/fp32 {ms16 / ms32:.2f}; head matrix bytes/chunk float32 "
          f"{stacked[:, 0].nbytes} (in memory, kept), float16 {stacked[:, 0].nbytes // 2} "
          f"(the SQLite blobs)")
    return {"chunks": n, "ms_fp32": ms32, "ms_fp16": ms16, "ratio": ms16 / ms32,
            "bytes_per_chunk_fp32": int(stacked[:, 0].nbytes),
            "bytes_per_chunk_fp16": int(stacked[:, 0].nbytes // 2), "load": "under load"}


def hotpot_latency() -> dict:  # type: ignore[type-arg]
    """:func:`product_latency` on the HotpotQA index with its 200 questions' head queries."""
    from multiquery_hotpot import build_index, load

    from aspectrag.multihead.layout import head_queries
    from aspectrag.multihead.retriever import query_embedder
    from aspectrag.multihead.stats import load_stats

    rows, corpus = load(DATA / "multihop" / "hotpot.jsonl")
    idx = build_index(corpus)
    emb = query_embedder(idx.embedder, idx.store)
    _, heads = emb.encode_heads([r["question"] for r in rows])
    qv = head_queries(heads, load_stats(idx.store).centre)
    return product_latency(idx.store, [np.ascontiguousarray(qv[i]) for i in range(len(qv))])


def hotpot() -> dict:  # type: ignore[type-arg]
    from multiquery_hotpot import build_index, load

    rows, corpus = load(DATA / "multihop" / "hotpot.jsonl")
    idx = build_index(corpus)
    queries = {str(i): r["question"] for i, r in enumerate(rows)}
    qrels = {str(i): {t: 1 for t, _ in r["supporting_facts"]} for i, r in enumerate(rows)}
    return qrels_run("HotpotQA (200)", idx, queries, qrels)


def scifact_train() -> dict:  # type: ignore[type-arg]
    from aspectrag.evaluate.beir import default_eval_index, load_beir
    from aspectrag.index import Index

    root = (DATA / "scifact").resolve()
    ds = load_beir(root, split="train")
    idx = Index(default_eval_index(root))
    idx.ingest([root / "corpus.jsonl"], progress=sys.stderr.isatty())
    return qrels_run("SciFact train (809)", idx, ds.queries, ds.qrels)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["mrag", "hotpot"],
                    choices=["mrag", "hotpot"])
    ap.add_argument("--scifact", action="store_true", help="also SciFact train (slow build)")
    ap.add_argument("--latency", action="store_true",
                    help="only the float16 vs float32 head-matrix product latency (HotpotQA)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    from aspectrag.cli.common import quiet_libraries
    from aspectrag.config import setup_threads

    quiet_libraries()
    setup_threads()
    out: dict[str, object] = {}
    if args.latency:
        out["latency"] = hotpot_latency()
        args.datasets, args.scifact = [], False
    if "mrag" in args.datasets:
        out["mrag"] = mrag()
    if "hotpot" in args.datasets:
        out["hotpot"] = hotpot()
    if args.scifact:
        out["scifact_train"] = scifact_train()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

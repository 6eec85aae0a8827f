"""Ingest throughput and search latency on SciFact (foundation benchmark).

Prints: ingest chunks/s and the share of ingest time spent in the embedder (target >= 90%);
median / p95 latency per retriever at k=10 including query encoding (target hybrid <= 15 ms);
and the thread-pool effect (hybrid latency with torch and BLAS both multi-threaded, as a ratio
to the default setting: torch = all cores, BLAS = 1).

With ``--quality``: nDCG@10 / Recall@100 / MRR@10 on the test queries (the same code path as
``aspectrag eval beir``) for bm25, dense and hybrid fused by convex combination (dense weight
0.3..0.7) and by reciprocal rank fusion (c=60), plus a paired bootstrap 95% CI of
nDCG@10(convex 0.5) - nDCG@10(RRF), the comparison that picks the hybrid default.

Usage: python benchmarks/foundation_scifact.py [--data ../shared/data/scifact] [--index DIR]
           [--quality] [--no-latency]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from aspectrag.config import setup_threads, shared_data_dir
from aspectrag.evaluate.beir import load_beir
from aspectrag.index import Index


def latency(idx: Index, name: str, queries: list[str], k: int = 10) -> tuple[float, float]:
    r = idx.retriever(name)
    r.retrieve(queries[0], k)  # warm-up: loads models and derived indexes
    times = []
    for q in queries:
        t = time.perf_counter()
        r.retrieve(q, k)
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))]


def quality(idx: Index, ds) -> None:  # type: ignore[no-untyped-def]
    """Prints the metrics per retriever configuration and the convex-vs-RRF bootstrap CI."""
    from aspectrag.evaluate.beir import beir_run
    from aspectrag.evaluate.metrics import paired_bootstrap, per_query_scores, score_run

    configs = [("bm25", {}), ("dense", {}), ("hybrid", {"fusion": "rrf"})]
    configs += [("hybrid", {"weight": w}) for w in (0.3, 0.4, 0.5, 0.6, 0.7)]
    per_query = {}
    print(f"SciFact test, {len(ds.qrels)} queries:  nDCG@10  Recall@100  MRR@10")
    for name, opts in configs:
        run = beir_run(idx.retriever(name, **opts), ds.queries)
        m = score_run(ds.qrels, run)
        label = name + "".join(f" {k}={v}" for k, v in opts.items())
        print(f"  {label:22s} {m['ndcg@10']:.4f}  {m['recall@100']:.4f}     {m['mrr@10']:.4f}",
              flush=True)
        per_query[label] = per_query_scores(ds.qrels, run)
    diff, lo, hi = paired_bootstrap(per_query["hybrid weight=0.5"],
                                    per_query["hybrid fusion=rrf"])["mean"]
    print(f"  convex(0.5) - RRF nDCG@10: {diff:+.4f} "
          f"(paired bootstrap 95% CI [{lo:+.4f}, {hi:+.4f}])")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=shared_data_dir() / "scifact")
    ap.add_argument("--index", type=Path, default=None)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--quality", action="store_true", help="also nDCG@10 etc. per retriever")
    ap.add_argument("--no-latency", action="store_true", help="skip the latency part")
    args = ap.parse_args()
    setup_threads()
    ds = load_beir(args.data, "test")
    path = args.index or Path(tempfile.mkdtemp(prefix="aspectrag-bench-"))
    idx = Index(path)
    rep = idx.ingest([str(ds.corpus)], progress=True)
    if rep.chunks:
        print(f"ingest: {rep.added} documents, {rep.chunks} chunks in {rep.seconds:.1f} s = "
              f"{rep.chunks_per_second:.1f} chunks/s; embedder share {rep.embed_seconds / rep.seconds:.1%}")
    else:
        print(f"ingest: index {path} already up to date ({rep.unchanged} unchanged documents)")
    if args.quality:
        quality(idx, ds)
    if args.no_latency:
        return
    queries = list(ds.queries.values())[: args.queries]
    print(f"search latency over {len(queries)} queries, k=10 (ms, includes query encoding):")
    base = {}
    for name in ("bm25", "dense", "hybrid"):
        med, p95 = latency(idx, name, queries)
        base[name] = med
        print(f"  {name:8s} median {med:6.2f}  p95 {p95:6.2f}")
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=2, user_api="blas"):
        med, _ = latency(idx, "hybrid", queries)
    print(f"  hybrid with BLAS at 2 threads too: median {med:.2f} ms = "
          f"{med / base['hybrid']:.2f}x the default (BLAS 1 thread)")


if __name__ == "__main__":
    main()

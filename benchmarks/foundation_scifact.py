"""Ingest throughput and search latency on SciFact (foundation benchmark).

Prints: ingest chunks/s and the share of ingest time spent in the embedder (target >= 90%);
median / p95 latency per retriever at k=10 including query encoding (target hybrid <= 15 ms);
and the thread-pool effect (hybrid latency with torch and BLAS both multi-threaded, as a ratio
to the default setting: torch = all cores, BLAS = 1).

Usage: python benchmarks/foundation_scifact.py [--data ../shared/data/scifact] [--index DIR]
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=shared_data_dir() / "scifact")
    ap.add_argument("--index", type=Path, default=None)
    ap.add_argument("--queries", type=int, default=200)
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

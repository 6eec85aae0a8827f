"""Late-interaction (MaxSim) reranking of the hybrid top-100 on SciFact test.

Quality through the real evaluation path:
  aspectrag eval beir DATA --retriever hybrid --index IDX --json                  (first stage)
  aspectrag rerank cache --index IDX                                              (token vectors)
  aspectrag eval beir DATA --retriever hybrid --rerank late-interaction --rerank-depth 100 ...
Cost, in this process on ``--queries`` test queries: first-stage latency, and the latency the
reranker adds with token vectors read from the cache and computed on the fly (median / p95 ms
per query), plus cache build time and size.

Usage: python benchmarks/rerank_scifact.py [--data ../shared/data/scifact] [--index DIR]
           [--embedder-adapter AD] [--depth 100] [--queries 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from aspectrag.config import setup_threads, shared_data_dir

_EXE = Path(sys.executable).parent / "aspectrag"
CLI = [str(_EXE) if _EXE.exists() else "aspectrag"]


def run(args: list[str]) -> tuple[str, float]:
    """Run the aspectrag CLI; returns (stdout, seconds)."""
    print("$ aspectrag " + " ".join(args), flush=True)
    t = time.perf_counter()
    res = subprocess.run([*CLI, *args], capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"command failed ({res.returncode}):\n{res.stderr[-3000:]}")
    secs = time.perf_counter() - t
    print(f"  ({secs:.0f} s)", flush=True)
    return res.stdout, secs


def pct(xs: list[float]) -> str:
    xs = sorted(xs)
    return f"median {statistics.median(xs):8.1f}  p95 {xs[int(0.95 * (len(xs) - 1))]:8.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=shared_data_dir() / "scifact")
    ap.add_argument(
        "--index",
        type=Path,
        default=Path.home() / ".cache" / "aspectrag" / "bench-lora" / "index-base",
    )
    ap.add_argument("--embedder-adapter", type=Path, default=None)
    ap.add_argument("--depth", type=int, default=100)
    ap.add_argument("--queries", type=int, default=20, help="queries timed on the fly")
    args = ap.parse_args()
    if not (args.data / "corpus.jsonl").is_file():
        sys.exit(f"{args.data}: SciFact (BEIR layout) not found; set ASPECTRAG_SHARED_DATA")
    common = ["--index", str(args.index)]
    if args.embedder_adapter is not None:
        common += ["--embedder-adapter", str(args.embedder_adapter)]
    ev = ["eval", "beir", str(args.data), "--retriever", "hybrid", *common, "--json"]
    first, _ = run(ev)
    out, cache_secs = run(["rerank", "cache", *common])
    reranked, _ = run([*ev, "--rerank", "late-interaction", "--rerank-depth", str(args.depth)])
    base, rr = json.loads(first.splitlines()[-1]), json.loads(reranked.splitlines()[-1])

    # latency in this process
    from aspectrag.embed.hf import HFEmbedder
    from aspectrag.evaluate.beir import load_beir
    from aspectrag.index import Index
    from aspectrag.rerank.cache import CACHE_FILE
    from aspectrag.rerank.factory import build_reranker

    setup_threads()
    ds = load_beir(args.data, "test")
    adapter = str(args.embedder_adapter) if args.embedder_adapter else None
    idx = Index(args.index, embedder=HFEmbedder(adapter=adapter))
    hybrid = idx.retriever("hybrid")
    cached = build_reranker(
        "late-interaction", embedder=idx.embedder, cache_path=args.index / CACHE_FILE
    )
    fly = build_reranker("late-interaction", embedder=idx.embedder)
    queries = list(ds.queries.values())[: args.queries]
    hybrid.retrieve(queries[0], args.depth)  # warm-up (models, derived indexes)
    t_first, t_cached, t_fly, agree = [], [], [], []
    for q in queries:
        t = time.perf_counter()
        hits = hybrid.retrieve(q, args.depth)
        t_first.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        a = cached.rerank(q, hits, 10)
        t_cached.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        b = fly.rerank(q, hits, 10)
        t_fly.append((time.perf_counter() - t) * 1000)
        agree.append(
            sum(x.chunk.chunk_id == y.chunk.chunk_id for x, y in zip(a, b, strict=True)) / 10
        )
    size = (args.index / CACHE_FILE).stat().st_size
    print()
    print(
        f"SciFact test, hybrid top-{args.depth} reranked by late interaction (MaxSim), embedder {idx.embedder.name}"
    )
    print(f"{'':26s} {'nDCG@10':>8s} {'Recall@100':>10s} {'MRR@10':>8s}")
    for name, m in (("hybrid", base), (f"hybrid + MaxSim@{args.depth}", rr)):
        print(f"{name:26s} {m['ndcg@10']:8.4f} {m['recall@100']:10.4f} {m['mrr@10']:8.4f}")
    print(
        f"change: nDCG@10 {rr['ndcg@10'] - base['ndcg@10']:+.4f}, Recall@100 {rr['recall@100'] - base['recall@100']:+.4f}"
    )
    print(
        f"latency per query over {len(queries)} queries (ms), {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}:"
    )
    print(f"  hybrid first stage (k={args.depth})   {pct(t_first)}")
    print(f"  + MaxSim, cached token vectors  {pct(t_cached)}  (added)")
    print(f"  + MaxSim, computed on the fly   {pct(t_fly)}  (added)")
    print(f"  top-10 agreement cached (float16) vs on the fly: {statistics.mean(agree):.3f}")
    print(
        f"token-vector cache: {size / 2**20:.0f} MiB, built in {cache_secs:.0f} s ({out.strip().splitlines()[-1] if out.strip() else ''})"
    )


if __name__ == "__main__":
    main()

"""Median / p95 latency of one bm25 search (k=10) over real queries, in two passes: the first
sees every query (and its hits) for the first time, the second repeats them (the store's
chunk cache then serves the hits). Run it alternately with two code versions to compare them
(``PYTHONPATH=<other checkout>/src``), after one run to warm the OS page cache.

    python benchmarks/bm25_query_latency.py --index ~/.cache/aspectrag/beir/scifact-<hash> \\
        --queries ../shared/data/scifact/queries.jsonl [--n 300]

The index is opened read-only (``aspectrag eval beir scifact`` builds one in that folder).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--queries", type=Path, required=True, help="BEIR queries.jsonl")
    ap.add_argument("--n", type=int, default=300, help="queries used")
    args = ap.parse_args()
    from aspectrag.cli.common import quiet_libraries
    from aspectrag.config import setup_threads
    from aspectrag.index import Index

    setup_threads(None)
    quiet_libraries()
    idx = Index(args.index, readonly=True)
    with args.queries.open() as f:
        queries = [json.loads(line)["text"] for line in f][: args.n]
    r = idx.retriever("bm25")
    idx.search("warm up the derived index", 10, retriever=r)
    print(f"{idx.store.stats()['chunks']} chunks, {len(queries)} queries, k=10")
    for name in ("first sight", "repeated"):
        lat = []
        for q in queries:
            t0 = time.perf_counter()
            idx.search(q, 10, retriever=r)
            lat.append(time.perf_counter() - t0)
        lat.sort()
        print(f"{name:12s} median {1000 * statistics.median(lat):.3f} ms  "
              f"p95 {1000 * lat[int(0.95 * (len(lat) - 1))]:.3f} ms", flush=True)


if __name__ == "__main__":
    main()

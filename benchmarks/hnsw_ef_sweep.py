"""Recall@10 and latency of the dense HNSW graph against efSearch, on a kept scale-curve index.

For an index left by ``scale_curve.py --keep`` (synthetic mixture vectors, the same query
vectors as its query child), sets the graph's ``efSearch`` to each value of ``--ef`` and prints
recall@10 against exact search over the float32 vectors stored in SQLite, and warm p50 / p99
of one ``DenseIndex.search`` per query. Which dtype the graph holds its rows in is the index's
(``store.ann_dtype`` when it was built). Timings belong on a quiet machine.

    python benchmarks/hnsw_ef_sweep.py /tmp/scale_curve/idx-1000000 [--ef 64 128 256] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale_curve import exact_top10, mixtures, stored_blocks  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("index", type=Path)
    ap.add_argument("--ef", type=int, nargs="+", default=[64, 128, 192, 256, 384])
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--centres", type=int, default=1000)
    ap.add_argument("--spread-cos", type=float, default=0.6)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    from aspectrag.config import setup_threads
    from aspectrag.store.sqlite import SQLiteStore

    setup_threads()
    store = SQLiteStore(args.index, readonly=True)
    idx = store.dense_index("dense")
    graph = idx._ensure_hnsw()
    if graph is None:
        sys.exit(f"{args.index}: the dense space has no HNSW graph (fewer than 50k chunks?)")
    q = mixtures(args)["dense"].sample(np.random.default_rng(11), args.queries)  # as scale_curve
    truth = exact_top10(stored_blocks(store, "dense"), q)
    out = {"index": str(args.index), "chunks": len(idx.rowids),
           "rows_dtype": str(idx.base_vectors.dtype), "ef": {}}
    print(f"{out['chunks']} rows held as {out['rows_dtype']}")
    for ef in args.ef:
        graph.hnsw.efSearch = ef
        for row in q[:10]:
            idx.search(row[None], 10)
        got, t = [], []
        for row in q:
            t0 = time.perf_counter()
            got.append(idx.search(row[None], 10)[0][0])
            t.append(time.perf_counter() - t0)
        rec = float(np.mean([len(set(g.tolist()) & set(e.tolist())) / 10
                             for g, e in zip(got, truth, strict=True)]))
        ms = np.array(t) * 1e3
        out["ef"][ef] = {"recall_at_10": rec, "p50_ms": float(np.percentile(ms, 50)),
                         "p99_ms": float(np.percentile(ms, 99))}
        print(f"efSearch {ef:4d}: recall@10 {rec:.4f}, p50 {out['ef'][ef]['p50_ms']:.2f} ms, "
              f"p99 {out['ef'][ef]['p99_ms']:.2f} ms", flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

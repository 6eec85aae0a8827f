"""Thread settings on this machine (issue 14, item 4): ONNX Runtime intra-op threads x BLAS
threads, for ingest-style encoding, one query's encoding and a warm query through an index.

Each setting runs in a fresh process (thread pools are sized once per process):

* ``chunks/s``: multi-head encoding (dense + 12 heads) of ``--n`` corpus texts, batches of 32;
* ``q enc p50``: one short query's encoding (ms, median over ``--queries``);
* ``hybrid p50`` / ``auto p50``: a warm query through ``Index(..., for_queries=True)`` on
  ``--index`` (query encoding, BM25, dense + 12 head spaces as the retriever needs), ms;
* ``2 clients``: the same hybrid query from two threads at once (the service's case), ms per
  query wall-clock / 2.

    python benchmarks/thread_settings.py --index /path/to/index [--n 400] [--queries 60]

Run it alone on a quiet machine; the figures are ratios to the first row of the same run.
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

SETTINGS = [(2, 1), (1, 1), (2, 2), (1, 2)]
"""(ONNX Runtime intra-op threads, BLAS threads); the first is the shipped default."""


def _child(args: argparse.Namespace, ort_threads: int, blas: int) -> dict[str, float]:
    from threading import Thread

    from threadpoolctl import threadpool_limits

    from aspectrag.embed.onnx import OnnxMultiHeadEmbedder
    from aspectrag.index import Index

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from onnx_fastpath import _texts

    threadpool_limits(limits=blas, user_api="blas")
    texts = _texts(args.n)
    queries = [" ".join(t.split()[:8]) for t in texts[: args.queries]]
    e = OnnxMultiHeadEmbedder(runtime=args.runtime, threads=ort_threads)
    e.encode_raw(texts[:8])
    t0 = time.perf_counter()
    for i in range(0, len(texts), 32):
        e.encode_raw(texts[i:i + 32])
    cps = len(texts) / (time.perf_counter() - t0)
    enc = []
    for q in queries:
        t = time.perf_counter()
        e.encode_raw([q])
        enc.append((time.perf_counter() - t) * 1e3)
    out = {"chunks_per_s": cps, "query_encode_p50_ms": statistics.median(enc)}
    idx = Index(args.index, for_queries=True)
    idx.embedder.threads = ort_threads  # type: ignore[attr-defined]
    for name in ("hybrid", "auto"):
        r = idx.retriever(name)
        for q in queries[:5]:
            idx.search_result(q, 10, retriever=r)  # warm: indexes loaded, session open
        lat = []
        for q in queries:
            t = time.perf_counter()
            idx.search_result(q, 10, retriever=r)
            lat.append((time.perf_counter() - t) * 1e3)
        out[f"{name}_p50_ms"] = statistics.median(lat)
    r = idx.retriever("hybrid")

    def run(qs: list[str]) -> None:
        for q in qs:
            idx.search_result(q, 10, retriever=r)

    t0 = time.perf_counter()
    ts = [Thread(target=run, args=(queries[i::2],)) for i in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    out["hybrid_2clients_ms_per_query"] = (time.perf_counter() - t0) * 1e3 / len(queries)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--runtime", default="onnx-fp32", help="onnx-fp32 (the query twin) or onnx-int8")
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--queries", type=int, default=60)
    ap.add_argument("--child", nargs=2, type=int, help=argparse.SUPPRESS)
    ap.add_argument("--json-out", type=Path)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_child(args, *args.child)))
        return
    rows = []
    for ort_t, blas in SETTINGS:
        cmd = [sys.executable, __file__, "--index", str(args.index), "--runtime", args.runtime,
               "--n", str(args.n), "--queries", str(args.queries), "--child", str(ort_t), str(blas)]
        env = {**os.environ, "ASPECTRAG_THREADS": str(ort_t)}
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
        rows.append({"ort_threads": ort_t, "blas_threads": blas,
                     **json.loads(res.stdout.strip().splitlines()[-1])})
    base = rows[0]
    keys = ["chunks_per_s", "query_encode_p50_ms", "hybrid_p50_ms", "auto_p50_ms",
            "hybrid_2clients_ms_per_query"]
    print(f"{args.runtime}, {os.cpu_count()} cores; ratio to ORT 2 / BLAS 1 in brackets")
    print(f"{'ORT':>3} {'BLAS':>4} " + " ".join(f"{k:>26}" for k in keys))
    for r in rows:
        cells = [f"{r[k]:8.2f} ({r[k] / base[k]:4.2f}x)" for k in keys]
        print(f"{r['ort_threads']:>3} {r['blas_threads']:>4} " + " ".join(f"{c:>26}" for c in cells))
    if args.json_out:
        args.json_out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

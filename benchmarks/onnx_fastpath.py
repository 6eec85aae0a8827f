"""torch vs onnx-fp32 vs onnx-int8 embedders side by side in one process (issue 14).

Usage: python benchmarks/onnx_fastpath.py [--n 2000] [--json out.json]
Chunks: the SciFact corpus under ../shared/data (first N texts), else the bundled sample.
Reports chunks/s (multi-head encode), mean cosine to torch (dense and per head, CLS pooling)
and the warm dense query p50 in ms.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _texts(n: int) -> list[str]:
    cands = [ROOT.parent / "shared/data/scifact/corpus.jsonl",
             ROOT.parent / "shared/data/beir/scifact/corpus.jsonl",
             ROOT / "samples/wikipedia-aspects/corpus.jsonl"]
    path = next(p for p in cands if p.exists())
    out: list[str] = []
    for line in path.read_text().splitlines():
        d = json.loads(line)
        out.append((d.get("title", "") + "\n" + d["text"]).strip())
        if len(out) == n:
            break
    return out


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return float((a * b).sum(-1).mean())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    from aspectrag.embed.onnx import OnnxMultiHeadEmbedder
    from aspectrag.multihead.embedder import MultiHeadEmbedder

    texts = _texts(args.n)
    queries = [t[:80] for t in texts[: args.queries]]
    rows, ref = [], None
    for rt in ("torch", "onnx-fp32", "onnx-int8"):
        e = MultiHeadEmbedder() if rt == "torch" else OnnxMultiHeadEmbedder(runtime=rt)
        e.encode_raw(texts[:8])  # warm up (and export once)
        t0 = time.perf_counter()
        dense, heads = e.encode_raw(texts)
        cps = len(texts) / (time.perf_counter() - t0)
        h = heads[(e.layer, e.pooling)]
        if ref is None:
            ref = (dense, h)
        lat = []
        for q in queries:
            t = time.perf_counter()
            e.encode_raw([q])
            lat.append((time.perf_counter() - t) * 1000)
        rows.append({"runtime": rt, "chunks_per_s": cps, "cos_dense": _cos(dense, ref[0]),
                     "cos_heads": [_cos(h[:, i], ref[1][:, i]) for i in range(h.shape[1])],
                     "query_p50_ms": float(np.median(lat))})
    print(f"{'runtime':10} {'chunks/s':>9} {'x torch':>8} {'cos dense':>9} "
          f"{'cos head min':>12} {'q p50 ms':>9}")
    for r in rows:
        print(f"{r['runtime']:10} {r['chunks_per_s']:9.1f} "
              f"{r['chunks_per_s'] / rows[0]['chunks_per_s']:8.2f} {r['cos_dense']:9.4f} "
              f"{min(r['cos_heads']):12.4f} {r['query_p50_ms']:9.2f}")
    if args.json:
        args.json.write_text(json.dumps({"n": len(texts), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()

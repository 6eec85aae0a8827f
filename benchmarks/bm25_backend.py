"""BM25 search time of the store's bm25s index with the numpy (today) vs numba backend.

Loads a saved ``derived/bm25`` folder (e.g. the 1M-chunk index of ``scale_curve.py``) twice and
times ``BM25Index``-equivalent retrieval (top ``--k``, SciFact query texts, the store's
tokenizer) per query, warm: p50 / p99 ms. The numba backend compiles on first use (excluded).
Agreement: mean overlap of the two backends' top-k id sets (ties at the cut may differ) and
the largest difference of their sorted scores.

    python benchmarks/bm25_backend.py FOLDER [--k 100] [--queries 200]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from incremental_add import DATA  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args()
    import bm25s

    from aspectrag.store.bm25_index import tokenize

    texts = [json.loads(x)["text"] for x in (DATA / "scifact" / "queries.jsonl").open()]
    toks = [t for t in tokenize(list(dict.fromkeys(texts))[: args.queries]) if t]
    runs: dict[str, list] = {}
    for backend in ("numpy", "numba"):
        t = time.perf_counter()
        bm = bm25s.BM25.load(str(args.folder / "bm25"), show_progress=False, verbosity=0)
        bm.backend = backend
        load = time.perf_counter() - t
        for q in toks[:10]:
            bm.retrieve([q], k=args.k, show_progress=False, n_threads=0)
        ms, runs[backend] = [], []
        for q in toks:
            t = time.perf_counter()
            docs, scores = bm.retrieve([q], k=args.k, show_progress=False, n_threads=0)
            ms.append((time.perf_counter() - t) * 1e3)
            runs[backend].append((set(docs[0].tolist()), np.sort(scores[0])))
        print(f"{backend}: {bm.scores['num_docs']} docs, load {load:.1f} s, top-{args.k} "
              f"p50 {np.percentile(ms, 50):.1f} ms, p99 {np.percentile(ms, 99):.1f} ms "
              f"({len(ms)} queries)", flush=True)
    a, b = runs["numpy"], runs["numba"]
    overlap = np.mean([len(x[0] & y[0]) / max(len(x[0]), 1) for x, y in zip(a, b, strict=True)])
    diff = max(float(np.abs(x[1] - y[1]).max()) for x, y in zip(a, b, strict=True))
    print(f"agreement: top-{args.k} overlap {overlap:.4f}, max sorted-score difference {diff:.2e}")


if __name__ == "__main__":
    main()

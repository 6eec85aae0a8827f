"""Why the store's HNSW misses on head spaces, and the fix (issue 13 scale curve, finding).

Head spaces are stored as ``[v/|v|, 1/|v|]`` (``multihead/layout.py``: centring at query time
needs the raw norm), and the bundled model's ``1/|v|`` is ~0.4-0.9 (median 0.6 on SciFact).
FAISS ``IndexHNSWFlat`` with inner product (what ``store/dense_index.py`` builds at >= 50k rows)
links each row to the rows of largest inner product, which that shared last coordinate
dominates, so the graph does not follow the cosine neighbourhoods the queries ask for. Compared
on ``--n`` Gaussian-mixture head vectors (``scale_curve.Mixture``) with 200 queries
``[q/|q|, 0]``: recall@10 against exact search, the store's HNSW parameters, for
``1/|v| = 0`` (plain cosine), ``1/|v|`` real-like, and each with the equal-norm augmentation
(``scale_curve.equal_norm_recall``: one extra coordinate ``sqrt(R^2 - |x|^2)``, query 0).

    python benchmarks/hnsw_head_layout.py [--n 100000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale_curve import Mixture, equal_norm_recall  # noqa: E402


def plain_recall(x: np.ndarray, q: np.ndarray) -> dict[str, float]:
    """Recall@10 and build seconds of the store's ``DenseIndex`` HNSW path over ``x``."""
    from aspectrag.store.dense_index import DenseIndex

    idx = DenseIndex(x, np.arange(len(x)), ann_threshold=1)
    t = time.perf_counter()
    idx._ensure_hnsw()
    build = time.perf_counter() - t
    exact = np.argpartition(-(q @ x.T), 9, axis=1)[:, :10]
    rec = [len(set(g[0].tolist()) & set(e.tolist())) / 10
           for g, e in zip(idx.search(q, 10), exact, strict=True)]
    return {"recall_at_10": float(np.mean(rec)), "hnsw_build_seconds": build}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    args = ap.parse_args()
    import faiss

    faiss.omp_set_num_threads(1)
    rng = np.random.default_rng(0)
    mix = Mixture(32, 1000, 0.6, 5)
    u = mix.sample(rng, args.n)
    q = np.hstack([mix.sample(rng, 200), np.zeros((200, 1), np.float32)])
    for name, inv in [("1/|v| = 0 (plain cosine)", np.zeros((args.n, 1))),
                      ("1/|v| real-like (0.6 x lognormal 0.24)",
                       0.6 * np.exp(rng.normal(0, 0.24, (args.n, 1))))]:
        x = np.hstack([u, inv]).astype(np.float32)
        for how, r in (("store HNSW", plain_recall(x, q)), ("equal-norm fix", equal_norm_recall(x, q))):
            print(f"{args.n} rows, {name}, {how}: recall@10 {r['recall_at_10']:.3f}, "
                  f"build {r['hnsw_build_seconds']:.1f} s", flush=True)


if __name__ == "__main__":
    main()

"""The grouped-heads curve: G head groups vs retrieval quality vs index size vs query time.

Quality comes from an ``aspectrag eval mrag wikipedia --details FILE`` run (strategies
``mrag-g1`` .. ``mrag-g6`` and ``mrag`` = G 12, all with the default voting); index size is
the bytes of head vectors per chunk (G x (32 + 1) float32) and the measured size of the
evaluation index folders; query time is measured here at 10k chunks with
``multihead_latency.py``'s store (search only, query encoding excluded).

    python benchmarks/mrag_groups.py benchmarks/results/mrag/wikipedia_details.json \
        --plot benchmarks/results/mrag/groups.png
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import multihead_latency as lat  # noqa: E402

GROUPS = (1, 2, 3, 4, 6, 12)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("details", type=Path)
    ap.add_argument("--plot", type=Path, default=None)
    ap.add_argument("--chunks", type=int, default=10_000)
    ap.add_argument("--queries", type=int, default=100)
    args = ap.parse_args()
    det = json.loads(args.details.read_text())
    st = det["strategies"]
    lat.setup_threads()
    rng = np.random.default_rng(0)
    queries = [f"query {i}" for i in range(args.queries)]
    qdense = rng.normal(size=(len(queries), lat.D)).astype(np.float32)
    qdense /= np.linalg.norm(qdense, axis=1, keepdims=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for g in GROUPS:
            name = "mrag" if g == 12 else f"mrag-g{g}"
            e = st.get(name)
            if e is None:
                print(f"{name}: not in {args.details}; skipped", file=sys.stderr)
                continue
            store = lat.build_store(Path(tmp) / f"g{g}", args.chunks, g, rng)
            qheads = rng.normal(size=(len(queries), g, lat.DH)).astype(np.float32) + 0.5
            enc = lat._FixedEncoder(
                dict(zip(queries, qdense, strict=True)), dict(zip(queries, qheads, strict=True)), g
            )
            dense = lat.DenseRetriever(store, enc)  # type: ignore[arg-type]
            mh = lat.MultiHeadRetriever(store, lat._as_mh(enc))
            mh.embedder = enc  # type: ignore[assignment]
            mh.retrieve("query 0", 10)
            dw, dc = lat.timed(dense.retrieve, queries, 10)
            mw, mc = lat.timed(mh.retrieve, queries, 10)
            store.close()
            vs = e.get("vs_baseline", {}).get("weighted_avg", {}).get("mean", [np.nan] * 3)
            rsr = e.get("vs_baseline", {}).get("rsr", {})
            worst_rsr = min((v[0] for k, v in rsr.items() if k != "mean"), default=np.nan)
            rows.append(
                {
                    "G": g,
                    "mean_weighted_avg": e["summary"]["mean_weighted_avg"],
                    "delta": vs,
                    "worst_rsr_delta": worst_rsr,
                    "head_bytes_per_chunk": g * (lat.DH + 1) * 4,
                    "extra_ms_wall": mw - dw,
                    "extra_ms_cpu": mc - dc,
                }
            )
    base = st[det["baseline"]]["summary"]["mean_weighted_avg"]
    print(f"baseline {det['baseline']}: mean weighted_avg {base:.3f}")
    print(
        f"{'G':>3} {'mwa':>6} {'delta [95% CI]':>24} {'worst dRSR':>10} {'head B/chunk':>12} "
        f"{'extra ms wall/cpu':>18}"
    )
    for r in rows:
        d = r["delta"]
        print(
            f"{r['G']:>3} {r['mean_weighted_avg']:>6.3f} {d[0]:>+8.3f} [{d[1]:+.3f}, {d[2]:+.3f}]"
            f" {r['worst_rsr_delta']:>+10.2f} {r['head_bytes_per_chunk']:>12} "
            f"{r['extra_ms_wall']:>8.2f} / {r['extra_ms_cpu']:.2f}"
        )
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        g = [r["G"] for r in rows]
        fig, ax = plt.subplots(1, 3, figsize=(10, 3))
        d = np.array([r["delta"] for r in rows])
        ax[0].errorbar(
            g, d[:, 0], yerr=[d[:, 0] - d[:, 1], d[:, 2] - d[:, 0]], marker="o", capsize=3
        )
        ax[0].axhline(0, color="grey", linewidth=0.8)
        ax[0].set_ylabel(f"mean weighted_avg - {det['baseline']}")
        ax[1].plot(g, [r["head_bytes_per_chunk"] for r in rows], marker="o")
        ax[1].set_ylabel("head vectors, bytes per chunk")
        ax[2].plot(g, [r["extra_ms_cpu"] for r in rows], marker="o", label="CPU")
        ax[2].plot(g, [r["extra_ms_wall"] for r in rows], marker="s", label="wall")
        ax[2].set_ylabel(f"ms/query over dense, {args.chunks // 1000}k chunks")
        ax[2].legend(fontsize=7)
        for a in ax:
            a.set_xlabel("head groups G")
            a.set_xticks(g)
        fig.suptitle("Grouped heads on MRAG Wikipedia v1 (MiniLM)", fontsize=10)
        fig.tight_layout()
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot, dpi=120)
        print(f"plot written to {args.plot}")


if __name__ == "__main__":
    main()

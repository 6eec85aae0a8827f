"""Bar chart of the held-out dev nDCG@10 of LoRA adapters trained with ``--dev-fraction``.

Reads each adapter folder's ``training.json`` (written by ``aspectrag train embedder``), prints
one line per adapter (settings, training seconds, dev nDCG@10 / Recall@10 before -> after) and
draws the dev nDCG@10 after training against the base model's.

Usage: python benchmarks/lora_dev_plot.py ADAPTER [ADAPTER ...] [--out docs/lora_dev_sweep.png]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def label(meta: dict) -> str:  # type: ignore[type-arg]
    """Short description of an adapter's training settings."""
    s = meta["settings"]
    mods = s["target_modules"]
    mods = "all linear" if {"query", "key", "value", "dense"} <= set(mods) else ",".join(mods)
    per_step = meta.get("hard_negatives_per_step", meta["hard_negatives_per_pair"])
    negs = "in-batch only" if not per_step else f"{per_step} hard neg."
    if s.get("negatives_per_step"):
        negs += " resampled"
    return f"{mods}, lr {s['lr']:g}, {negs}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("adapters", type=Path, nargs="+")
    ap.add_argument("--out", type=Path, default=Path("docs/lora_dev_sweep.png"))
    args = ap.parse_args()
    rows = []
    for ad in args.adapters:
        meta = json.loads((ad / "training.json").read_text())
        if "dev" not in meta:
            sys.exit(f"{ad}: trained without --dev-fraction; no dev metrics")
        rows.append((label(meta), meta))
        d = meta["dev"]
        print(f"{label(meta):45s} {meta['seconds']:6.0f} s  dev nDCG@10 "
              f"{d['before']['ndcg@10']:.4f} -> {d['after']['ndcg@10']:.4f}  Recall@10 "
              f"{d['before']['recall@10']:.4f} -> {d['after']['recall@10']:.4f}")  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    before = rows[0][1]["dev"]["before"]["ndcg@10"]
    vals = [m["dev"]["after"]["ndcg@10"] for _, m in rows]
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(rows) + 1.4), dpi=110)
    ax.barh(range(len(rows)), vals, color="#3a7")
    ax.axvline(before, color="#999", ls="--", label=f"base model {before:.3f}")
    ax.set_yticks(range(len(rows)), [n for n, _ in rows], fontsize=8)
    ax.set_xlim(min(before, *vals) - 0.03, max(vals) + 0.02)
    for i, v in enumerate(vals):
        ax.text(v + 0.002, i, f"{v:.3f}", va="center", fontsize=7)
    d = rows[0][1]["dev"]
    ax.set_xlabel(f"dev nDCG@10 ({d['queries']} held-out SciFact train queries, "
                  f"{d['corpus']} passages)", fontsize=8)  # fmt: skip
    ax.set_title("LoRA configurations, 3 epochs, r=16 (chosen on dev, not test)", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    plt.close(fig)
    print(f"plot: {args.out}")


if __name__ == "__main__":
    main()

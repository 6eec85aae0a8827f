"""LoRA fine-tuning of the embedder on SciFact train, evaluated on SciFact test.

Trains an adapter with ``aspectrag train embedder --beir DATA --split train`` (unless
``--adapter`` points at an existing one), then runs the real evaluation path,
``aspectrag eval beir DATA --retriever {dense,hybrid} [--embedder-adapter AD] --json``,
once with the base model and once with the adapter (each in its own index folder), and prints
nDCG@10 / Recall@100 / MRR@10 before and after, the training time (from the adapter's
training.json), the adapter size, and a bar chart PNG.

Targets (issue 6): dense +0.03 nDCG@10 or more; hybrid above 0.75.

Usage: python benchmarks/lora_scifact.py [--data ../shared/data/scifact] [--work DIR]
           [--adapter DIR] [--base-index DIR] [--epochs 3] [--r 16] [--alpha 32]
           [--lr 1e-3] [--hard-negatives 1] [--fixed-negatives]
           [--target-modules query,value]

The hybrid keeps the default dense weight (0.5): ``benchmarks/lora_dev_hybrid.py`` checks that
choice on held-out training queries, never on this test split. Each LoRA - base difference
comes with a paired bootstrap 95% CI from the per-query scores of the same runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from aspectrag.config import shared_data_dir
from aspectrag.evaluate.metrics import paired_bootstrap

# the console script next to this interpreter (the venv's), else the one on PATH
_EXE = Path(sys.executable).parent / "aspectrag"
CLI = [str(_EXE) if _EXE.exists() else "aspectrag"]


def run(args: list[str]) -> str:
    """Run the aspectrag CLI; returns stdout; echoes the command and its wall time."""
    print("$ aspectrag " + " ".join(args), flush=True)
    t = time.perf_counter()
    res = subprocess.run([*CLI, *args], capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"command failed ({res.returncode}):\n{res.stderr[-3000:]}")
    print(f"  ({time.perf_counter() - t:.0f} s)", flush=True)
    return res.stdout


def evaluate(
    data: Path, retriever: str, index: Path, adapter: Path | None
) -> tuple[dict[str, float], dict[str, float]]:
    """``(mean metrics, per-query nDCG@10)`` of ``aspectrag eval beir ... --json --per-query``."""
    with tempfile.TemporaryDirectory() as tmp:
        pq = Path(tmp) / "per_query.json"
        args = ["eval", "beir", str(data), "--retriever", retriever, "--index", str(index),
                "--json", "--per-query", str(pq)]  # fmt: skip
        if adapter is not None:
            args += ["--embedder-adapter", str(adapter)]
        means = json.loads(run(args).strip().splitlines()[-1])
        return means, json.loads(pq.read_text())


def plot(rows: dict[str, dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rows)
    metrics = ["ndcg@10", "recall@100"]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), dpi=110)
    for ax, m in zip(axes, metrics, strict=True):
        vals = [rows[n][m] for n in names]
        ax.bar(range(len(names)), vals, color=["#3a7" if "LoRA" in n else "#999" for n in names])
        ax.set_xticks(range(len(names)), names, rotation=20, fontsize=8)
        ax.set_ylim(min(vals) - 0.05, min(1.0, max(vals) + 0.03))
        ax.set_title(f"SciFact test {m}", fontsize=9)
        for i, v in enumerate(vals):
            ax.text(i, v + 0.003, f"{v:.3f}", ha="center", fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=shared_data_dir() / "scifact")
    ap.add_argument(
        "--work", type=Path, default=Path.home() / ".cache" / "aspectrag" / "bench-lora"
    )
    ap.add_argument("--adapter", type=Path, default=None, help="existing adapter (skip training)")
    ap.add_argument(
        "--base-index", type=Path, default=None,
        help="existing SciFact index built with the base model (default: WORK/index-base)",
    )  # fmt: skip
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--r", type=int, default=16)
    ap.add_argument("--alpha", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--hard-negatives", type=int, default=1)
    ap.add_argument("--fixed-negatives", action="store_true", help="same hard negatives every epoch")
    ap.add_argument("--target-modules", default="query,value")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not (args.data / "corpus.jsonl").is_file():
        sys.exit(f"{args.data}: SciFact (BEIR layout) not found; set ASPECTRAG_SHARED_DATA")
    args.work.mkdir(parents=True, exist_ok=True)
    adapter = args.adapter
    if adapter is None:
        mods = "" if args.target_modules == "query,value" else "-" + args.target_modules.replace(",", "")
        rs = "" if args.fixed_negatives else "rs"
        adapter = args.work / (
            f"adapter-r{args.r}-a{args.alpha}-lr{args.lr:g}-e{args.epochs}-hn{args.hard_negatives}"
            f"{rs}{mods}-s{args.seed}"
        )
        if not (adapter / "adapter_model.safetensors").is_file():
            run([
                "train", "embedder", str(adapter), "--beir", str(args.data), "--split", "train",
                "--r", str(args.r), "--alpha", str(args.alpha), "--lr", str(args.lr),
                "--epochs", str(args.epochs), "--hard-negatives", str(args.hard_negatives),
                "--seed", str(args.seed), "--target-modules", args.target_modules,
                "--fixed-negatives" if args.fixed_negatives else "--resample-negatives",
            ])  # fmt: skip
    meta = json.loads((adapter / "training.json").read_text())
    rows: dict[str, dict[str, float]] = {}
    per_query: dict[str, dict[str, float]] = {}
    for retriever in ("dense", "hybrid"):
        for name, index, ad in (
            (f"{retriever} base", args.base_index or args.work / "index-base", None),
            (f"{retriever} + LoRA", args.work / f"index-{adapter.name}", adapter),
        ):
            rows[name], per_query[name] = evaluate(args.data, retriever, index, ad)
    print()
    print(f"SciFact test (300 queries); adapter {adapter}")
    print(f"{'':22s} {'nDCG@10':>8s} {'Recall@100':>10s} {'MRR@10':>8s}")
    for name, m in rows.items():
        print(f"{name:22s} {m['ndcg@10']:8.4f} {m['recall@100']:10.4f} {m['mrr@10']:8.4f}")
    for retriever in ("dense", "hybrid"):
        b, a = rows[f"{retriever} base"], rows[f"{retriever} + LoRA"]
        qids = list(per_query[f"{retriever} base"])
        pa, pb = (np.array([per_query[f"{retriever} {side}"][q] for q in qids])
                  for side in ("+ LoRA", "base"))  # fmt: skip
        diff, lo, hi = paired_bootstrap(pa, pb)["mean"]
        print(f"{retriever}: nDCG@10 {diff:+.4f} (paired bootstrap 95% CI [{lo:+.4f}, {hi:+.4f}], "
              f"{len(qids)} queries), Recall@100 {a['recall@100'] - b['recall@100']:+.4f}")  # fmt: skip
    s = meta["settings"]
    print(
        f"training: {meta['pairs']} pairs x {s['epochs']} epochs = {meta['steps']} steps, "
        f"{meta['seconds']:.0f} s with {meta['torch_threads']} torch threads on "
        f"{os.cpu_count()} cores (load average at the end: {os.getloadavg()[0]:.1f}); "
        f"r={s['r']} alpha={s['alpha']} lr={s['lr']} modules={','.join(s['target_modules'])} "
        f"hard negatives/pair {meta['hard_negatives_per_pair']} "
        f"(per step {meta.get('hard_negatives_per_step', meta['hard_negatives_per_pair'])}); "
        f"data: {meta['data']}"
    )
    size = (adapter / "adapter_model.safetensors").stat().st_size
    print(
        f"adapter: {meta['trainable_params']} parameters, adapter_model.safetensors {size / 1024:.0f} KiB"
    )
    png = args.work / "lora_scifact.png"
    plot(rows, png)
    print(f"plot: {png}; loss curve: {adapter / 'loss_curve.png'}")


if __name__ == "__main__":
    main()

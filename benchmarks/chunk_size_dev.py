"""Chunk size and overlap by measurement (issue 15, item 5), on development data.

Each configuration ``SIZE/OVERLAP`` (tokens of the embedder's tokenizer: ``chunking.chunk_size``
/ ``chunking.chunk_overlap``) gets its own evaluation cache (``<cache_dir>-chunk/sSIZE-oOVERLAP``;
the default configuration uses the normal cache), so every index is built once with that
chunking and reused. For each configuration benchmarks/routing_dev.py runs in a child process
with ``ASPECTRAG_CHUNK_SIZE`` / ``ASPECTRAG_CHUNK_OVERLAP`` / ``ASPECTRAG_CACHE_DIR`` set, over

* SciFact (``--scifact-split train`` = development queries; ``test`` only for the report):
  nDCG@10, chunks aggregated to documents by their best chunk;
* HotpotQA (200 distractor questions): both supporting paragraphs in the top 10;
* MRAG Wikipedia v1: mean weighted score over k = a..a+10 (documents by their best chunk).

Every figure is compared with the first configuration (the baseline) on the same queries by a
paired bootstrap (stratified by aspect count on MRAG). Per-configuration JSON lands in
``--out`` (re-used when present: delete a file to re-run it); the table goes to stdout and
``--out/summary.{txt,json}``; with matplotlib, ``--out/chunk_size.png`` plots each metric
against the mean chunk length.

    python benchmarks/chunk_size_dev.py --configs 224/32 128/16 160/24 96/16 \\
        --sets scifact hotpot wikipedia --strategies dense hybrid multihead auto
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
METRIC = {"scifact": "ndcg@10", "hotpot": "both@10"}  # else mean_weighted_avg (MRAG)


def config_env(cfg: str, default: str) -> dict[str, str]:
    """Environment of the child run for ``cfg`` = ``"SIZE/OVERLAP"``."""
    from aspectrag.settings import get_settings

    size, _, overlap = cfg.partition("/")
    env = {**os.environ, "ASPECTRAG_CHUNK_SIZE": size, "ASPECTRAG_CHUNK_OVERLAP": overlap or "0"}
    if cfg != default:
        base = get_settings().cache_dir
        env["ASPECTRAG_CACHE_DIR"] = str(base.with_name(base.name + "-chunk") / f"s{size}-o{overlap}")
    return env


def chunk_stats(env: dict[str, str], split_set: str) -> dict[str, float]:
    """Chunks and mean / p90 tokens per chunk of the SciFact index of a configuration."""
    code = (
        "import json,sys\n"
        "from tokenizers import Tokenizer\n"
        "from aspectrag.embed.hf import default_model_path\n"
        "from aspectrag.evaluate.beir import default_eval_index\n"
        "from aspectrag.index import Index\n"
        "from pathlib import Path\n"
        "tok = Tokenizer.from_file(str(Path(default_model_path()) / 'tokenizer.json'))\n"
        "tok.no_truncation(); tok.no_padding()\n"
        f"idx = Index(default_eval_index(Path({split_set!r})))\n"
        "texts = [c.text for c in idx.store.iter_chunks()]\n"
        "n = sorted(len(e.ids) - 2 for e in tok.encode_batch(texts))\n"
        "print(json.dumps({'chunks': len(n), 'mean_tokens': sum(n) / len(n),"
        " 'p90_tokens': n[int(0.9 * len(n))]}))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def compare(runs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows ``{set, strategy, config, value, vs_baseline: [d, lo, hi]}`` (first config = baseline)."""
    from aspectrag.evaluate.metrics import paired_bootstrap

    cfgs = list(runs)
    rows = []
    for set_name, by_strategy in runs[cfgs[0]]["results"].items():
        metric = METRIC.get(set_name.split("-")[0], "mean_weighted_avg")
        for strategy, base in by_strategy.items():
            a0 = np.asarray(base["per_query"])
            for cfg in cfgs:
                r = runs[cfg]["results"].get(set_name, {}).get(strategy)
                if r is None:
                    continue
                a = np.asarray(r["per_query"])
                d, lo, hi = paired_bootstrap(a, a0, r.get("strata"), n_boot=2000)["mean"]
                rows.append({"set": set_name, "strategy": strategy, "config": cfg,
                             "metric": metric, "value": float(r[metric]),
                             "vs_baseline": [float(d), float(lo), float(hi)]})
    return rows


def plot(rows: list[dict[str, Any]], runs: dict[str, dict[str, Any]], path: Path) -> None:
    """One panel per data set: metric against mean tokens per chunk, one line per strategy."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    sets = sorted({r["set"] for r in rows})
    fig, axes = plt.subplots(1, len(sets), figsize=(4.2 * len(sets), 3.4), squeeze=False)
    for ax, s in zip(axes[0], sets, strict=True):
        for strategy in dict.fromkeys(r["strategy"] for r in rows if r["set"] == s):
            pts = sorted((runs[r["config"]]["stats"]["mean_tokens"], r["value"], r["config"])
                         for r in rows if r["set"] == s and r["strategy"] == strategy)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=strategy)
            for x, y, c in pts:
                ax.annotate(c, (x, y), fontsize=6, textcoords="offset points", xytext=(2, 2))
        ax.set_title(s)
        ax.set_xlabel("mean tokens per SciFact chunk")
        ax.set_ylabel(next(r["metric"] for r in rows if r["set"] == s))
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=130)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--configs", nargs="+", default=["224/32", "128/16", "160/24"],
                    help="SIZE/OVERLAP in tokens; the first is the baseline of the CIs")
    ap.add_argument("--default", default="224/32", help="the configuration of the normal cache")
    ap.add_argument("--sets", nargs="+", default=["scifact", "hotpot", "wikipedia"])
    ap.add_argument("--scifact-split", default="train")
    ap.add_argument("--strategies", nargs="+", default=["dense", "hybrid", "multihead", "auto"])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "chunking")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    scifact = str(Path(os.environ.get("ASPECTRAG_SHARED_DATA", ROOT.parent / "shared" / "data"))
                  / "scifact")
    runs: dict[str, dict[str, Any]] = {}
    for cfg in args.configs:
        env = config_env(cfg, args.default)
        out = args.out / f"s{cfg.replace('/', '-o')}-{args.scifact_split}.json"
        if not out.exists():
            print(f"[{cfg}] building / evaluating ...", file=sys.stderr, flush=True)
            subprocess.run([sys.executable, str(ROOT / "benchmarks" / "routing_dev.py"),
                            "--sets", *args.sets, "--scifact-split", args.scifact_split,
                            "--strategies", *args.strategies, "--json", str(out)],
                           env=env, check=True)
        results = json.loads(out.read_text())
        stats = chunk_stats(env, scifact) if "scifact" in args.sets else {"mean_tokens": 0.0}
        runs[cfg] = {"results": results, "stats": stats}
    rows = compare(runs)
    lines = [f"chunk size / overlap on development data (SciFact {args.scifact_split}, HotpotQA, "
             "MRAG Wikipedia v1); CIs: paired bootstrap 95% vs " + args.configs[0]]
    lines += [f"  {c}: {runs[c]['stats']}" for c in runs]
    for r in rows:
        d, lo, hi = r["vs_baseline"]
        lines.append(f"{r['set']:14s} {r['strategy']:10s} {r['config']:8s} {r['metric']:18s} "
                     f"{r['value']:.4f}  {d:+.4f} [{lo:+.4f}, {hi:+.4f}]")
    text = "\n".join(lines)
    print(text)
    (args.out / f"summary-{args.scifact_split}.txt").write_text(text + "\n")
    (args.out / f"summary-{args.scifact_split}.json").write_text(json.dumps(
        {"stats": {c: runs[c]["stats"] for c in runs}, "rows": rows}, indent=1))
    plot(rows, runs, args.out / f"chunk_size-{args.scifact_split}.png")


if __name__ == "__main__":
    main()

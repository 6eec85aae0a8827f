"""Multi-query retrieval on MRAG Wikipedia v1 (Besta et al. 2024): single query vs multi-query.

Runs through the product evaluator (``aspectrag.evaluate.mrag`` / ``mrag_strategies``: the
evaluation index built by the ingest pipeline, chunk hits collapsed to articles, relevant =
the articles in ``topics``). For every aspect count it prints the retrieval success ratio and
the weighted score ``(2 RSR + category RSR) / 3`` at k = number of aspects, and the mean over
aspect counts of the weighted score at k = a and averaged over k = a .. a + 10 (``Wavg``).

Strategies, each over bm25 / dense / hybrid:
  single            the question alone;
  llm-fusion        the 4 recorded LLM sub-queries (``fusion`` field, replayed), without the
                    question (the paper's Fusion RAG) and with it (``+q``);
  rules             the rule-based default generator (no LLM), question kept;
  extra ``--pieces`` variants of the rule generator (e.g. ``--pieces paragraphs keywords``).

Then paired-bootstrap 95% CIs of rules(hybrid) - single(hybrid) per aspect count.

    python benchmarks/multiquery_mrag.py [--bases bm25 dense hybrid] [--pieces ...] \\
        [--plot benchmarks/out/multiquery_mrag.png] [--json benchmarks/out/multiquery_mrag.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ASPECTRAG_SHARED_DATA", ROOT.parent / "shared" / "data"))


def row(name: str, run, ds) -> dict:  # type: ignore[no-untyped-def, type-arg]
    """Print one strategy's line; returns its figures."""
    s = run.summary(ds)
    by = s["by_aspects"]
    w_at = float(np.mean([v["weighted"] for v in by.values()]))
    cells = " ".join(f"{v['rsr']:.2f}/{v['weighted']:.2f}" for v in by.values())
    print(
        f"{name:30s} {cells}  {w_at:6.3f} {s['mean_weighted_avg']:6.3f}"
        f" {1000 * run.seconds / len(ds.queries):7.0f}",
        flush=True,
    )
    return {
        "by_aspects": by,
        "mean_weighted_at_a": round(w_at, 4),
        "mean_weighted_avg": s["mean_weighted_avg"],
        "ms_per_query": round(1000 * run.seconds / len(ds.queries), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--bases", nargs="+", default=["bm25", "dense", "hybrid"])
    ap.add_argument(
        "--pieces",
        nargs="+",
        action="append",
        default=[],
        help="an extra rule-generator variant (repeatable)",
    )
    ap.add_argument(
        "--cache-dir",
        type=Path,
        help="evaluation index folder (default: the evaluator's, ~/.cache/aspectrag/mrag)",
    )
    ap.add_argument("--plot", type=Path, help="PNG: weighted score at k = aspects per strategy")
    ap.add_argument("--json", type=Path, help="write all figures here")
    args = ap.parse_args()
    if not (DATA / "mrag").is_dir():
        raise SystemExit(
            f"{DATA / 'mrag'} is absent (set ASPECTRAG_SHARED_DATA); nothing to measure"
        )
    logging.basicConfig(level=logging.WARNING)
    from aspectrag.config import setup_threads
    from aspectrag.evaluate.metrics import paired_bootstrap
    from aspectrag.evaluate.mrag import load_mrag
    from aspectrag.evaluate.mrag_strategies import MragEvaluation
    from aspectrag.retrieve.bm25 import BM25Retriever
    from aspectrag.retrieve.factory import build_retriever
    from aspectrag.retrieve.multiquery import MultiQueryRetriever
    from aspectrag.retrieve.query_gen.rules import DEFAULT_PIECES, RuleBasedQueryGenerator

    setup_threads()
    ds = load_mrag("wikipedia", DATA)
    ev = MragEvaluation(ds, args.cache_dir, progress=sys.stderr.isatty())
    idx = ev.index("main")
    replay = ev.replay()
    feedback = BM25Retriever(idx.store)
    rules = {"rules": RuleBasedQueryGenerator(DEFAULT_PIECES, feedback=feedback)}
    for pieces in args.pieces:
        rules["rules:" + "+".join(pieces)] = RuleBasedQueryGenerator(pieces, feedback=feedback)
    print(
        f"MRAG Wikipedia v1: {len(ds.documents)} articles, {len(ds.queries)} queries; "
        f"rule default = {'+'.join(DEFAULT_PIECES)}"
    )
    print(
        f"{'strategy':30s} "
        + " ".join(f"{'a=' + str(a):>9s}" for a in ds.buckets)
        + "  W@a    Wavg   ms/q"
    )
    print(f"{'':30s} " + " ".join(f"{'RSR/W':>9s}" for _ in ds.buckets))
    results: dict[str, dict] = {}  # type: ignore[type-arg]
    runs = {}
    for b in args.bases:
        base = build_retriever(b, idx.store, ev.embedder)
        strategies = {
            f"single({b})": base,
            f"llm-fusion({b})": MultiQueryRetriever(base, replay, keep_original=False),
            f"llm-fusion+q({b})": MultiQueryRetriever(base, replay),
        }
        for name, gen in rules.items():
            strategies[f"{name}({b})"] = MultiQueryRetriever(base, gen)
        for name, r in strategies.items():
            runs[name] = ev.run(name, retriever=r)
            results[name] = row(name, runs[name], ds)
    if "single(hybrid)" in runs and "rules(hybrid)" in runs:
        print("\nrules(hybrid) - single(hybrid), paired bootstrap 95% CI (10,000 resamples):")
        for metric in ("rsr", "weighted", "weighted_avg"):
            ci = paired_bootstrap(
                runs["rules(hybrid)"].per_query[metric],
                runs["single(hybrid)"].per_query[metric],
                ds.strata,
            )
            results.setdefault("ci_rules_vs_hybrid", {})[metric] = ci
            print(
                f"  {metric:13s} "
                + " ".join(f"{a}:{d:+.3f}[{lo:+.3f},{hi:+.3f}]" for a, (d, lo, hi) in ci.items())
            )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))
    if args.plot:
        plot(results, ds.buckets, args.plot)
        print(f"plot written to {args.plot}")


def plot(results: dict, buckets: list[int], path: Path) -> None:  # type: ignore[type-arg]
    """One panel per base retriever: weighted score at k = aspects per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n, r in results.items() if "by_aspects" in r]
    bases = list(dict.fromkeys(n[n.index("(") + 1 : -1] for n in names))
    kinds = list(dict.fromkeys(n[: n.index("(")] for n in names))
    colours = plt.get_cmap("tab10")
    fig, axes = plt.subplots(
        1, len(bases), figsize=(5 * len(bases), 4.5), sharey=True, squeeze=False
    )
    for ax, base in zip(axes[0], bases, strict=True):
        for i, kind in enumerate(kinds):
            res = results.get(f"{kind}({base})")
            if res is None:
                continue
            ax.plot(
                buckets,
                [res["by_aspects"][str(a)]["weighted"] for a in buckets],
                marker="o",
                color=colours(i),
                label=kind,
                linestyle="-" if kind == "single" else "--",
            )
        ax.set_title(f"base: {base}")
        ax.set_xlabel("aspects (k = aspects)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("weighted score (2 RSR + category RSR) / 3")
    axes[0][-1].legend(fontsize=8)
    fig.suptitle("MRAG Wikipedia v1: single query vs multi-query")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")


if __name__ == "__main__":
    main()

"""Routing and multi-head safety on development (and, on request, test) data.

Strategies are retriever-table names with options, run side by side on:

* SciFact (BEIR; ``--scifact-split train`` is development data, ``test`` only for the final
  report): nDCG@10, paired bootstrap against hybrid;
* HotpotQA (200 hard distractor questions, ``multihop/hotpot.jsonl``): both supporting
  paragraphs in the top 10 (``both@10``), bootstrap against hybrid;
* MRAG v1 (``wikipedia`` is development data; ``legal``, ``chem`` for the report): mean
  weighted score averaged over k = a..a+10, stratified bootstrap against hybrid.

    python benchmarks/routing_dev.py --sets scifact hotpot wikipedia \
        --strategies hybrid multiquery auto "auto:anchor_single=3" "multihead:dense_weight=6"

A strategy is ``NAME[:opt=value,...]`` (values parsed as JSON when they parse). Indexes are the
evaluation caches of ``aspectrag eval beir`` / ``eval mrag`` / benchmarks/multiquery_hotpot.py
(built on first use, under the ``cache_dir`` setting). Prints one table per data set;
``--json`` writes every figure, CI and per-query score (for paired comparisons across runs, e.g.
benchmarks/chunk_size_dev.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ASPECTRAG_SHARED_DATA", ROOT.parent / "shared" / "data"))
sys.path.insert(0, str(ROOT / "benchmarks"))


def parse_strategy(spec: str) -> tuple[str, str, dict[str, Any]]:
    """``(label, retriever name, options)`` of ``NAME[:opt=value,...]``."""
    name, _, rest = spec.partition(":")
    opts: dict[str, Any] = {}
    for part in filter(None, rest.split(",")):
        key, _, val = part.partition("=")
        try:
            opts[key] = json.loads(val)
        except json.JSONDecodeError:
            opts[key] = val
    return spec, name, opts


def ci_text(a: np.ndarray, b: np.ndarray, strata: Any = None) -> tuple[str, list[float]]:
    from aspectrag.evaluate.metrics import paired_bootstrap

    d, lo, hi = paired_bootstrap(a, b, strata, n_boot=2000)["mean"]
    return f"{d:+.4f} [{lo:+.4f}, {hi:+.4f}]", [d, lo, hi]


def run_scifact(split: str, strategies: list[str]) -> dict[str, Any]:
    from aspectrag.evaluate.beir import beir_run, default_eval_index, load_beir
    from aspectrag.evaluate.metrics import per_query_scores
    from aspectrag.index import Index

    folder = DATA / "scifact"
    ds = load_beir(folder, split)
    idx = Index(default_eval_index(folder))
    rep = idx.ingest([str(ds.corpus)], progress=sys.stderr.isatty())  # no-op when built
    if rep.failed:
        raise SystemExit(f"{ds.corpus}: {rep.failed[0][1]}")
    out: dict[str, Any] = {}
    base = None
    print(f"\nSciFact {split}: {len(ds.queries)} queries")
    for spec in strategies:
        label, name, opts = parse_strategy(spec)
        t0 = time.perf_counter()
        run = beir_run(idx.retriever(name, **opts), ds.queries)
        pq = per_query_scores(ds.qrels, run)
        secs = (time.perf_counter() - t0) / len(ds.queries)
        base = pq if base is None else base
        txt, ci = ci_text(pq, base)
        out[label] = {"ndcg@10": float(pq.mean()), "vs_first": ci, "s_per_query": secs,
                      "per_query": pq.tolist()}
        print(f"  {label:48s} nDCG@10 {pq.mean():.4f}  vs first {txt}  {secs * 1e3:6.1f} ms/q",
              flush=True)
    return out


def run_hotpot(strategies: list[str]) -> dict[str, Any]:
    from multiquery_hotpot import build_index, load

    from aspectrag.evaluate.metrics import hits_to_docs

    rows, corpus = load(DATA / "multihop" / "hotpot.jsonl")
    idx = build_index(corpus)
    questions = [r["question"] for r in rows]
    gold = [{t for t, _ in r["supporting_facts"]} for r in rows]
    kinds = [r["type"] for r in rows]
    out: dict[str, Any] = {}
    base = None
    print(f"\nHotpotQA: {len(rows)} questions")
    for spec in strategies:
        label, name, opts = parse_strategy(spec)
        t0 = time.perf_counter()
        ranks = [hits_to_docs(h, 10) for h in idx.retriever(name, **opts).retrieve_batch(
            questions, 30)]
        secs = (time.perf_counter() - t0) / len(rows)
        both = np.array([float(g <= set(r)) for g, r in zip(gold, ranks, strict=True)])
        base = both if base is None else base
        txt, ci = ci_text(both, base)
        by = {k: float(both[[t == k for t in kinds]].mean()) for k in ("bridge", "comparison")}
        out[label] = {"both@10": float(both.mean()), **{f"both@10_{k}": v for k, v in by.items()},
                      "vs_first": ci, "s_per_query": secs, "per_query": both.tolist()}
        print(f"  {label:48s} both@10 {both.mean():.3f} (bridge {by['bridge']:.3f}, comparison "
              f"{by['comparison']:.3f})  vs first {txt}", flush=True)
    return out


def run_mrag(dataset: str, strategies: list[str]) -> dict[str, Any]:
    from aspectrag.evaluate.mrag import load_mrag, run_strategy
    from aspectrag.evaluate.mrag_strategies import MragEvaluation

    ds = load_mrag(dataset, DATA)
    ev = MragEvaluation(ds)
    idx = ev.index("main")
    strata = [q.aspects for q in ds.queries]
    out: dict[str, Any] = {}
    base = None
    print(f"\nMRAG {dataset} v1: {len(ds.queries)} queries")
    for spec in strategies:
        label, name, opts = parse_strategy(spec)
        r = run_strategy(ds, label, idx.retriever(name, **opts))
        wa = r.per_query["weighted_avg"]
        base = wa if base is None else base
        txt, ci = ci_text(wa, base, strata)
        mean = r.summary(ds)["mean_weighted_avg"]
        out[label] = {"mean_weighted_avg": mean, "vs_first": ci, "seconds": r.seconds,
                      "per_query": np.asarray(wa).tolist(), "strata": strata}
        print(f"  {label:48s} mean weighted {mean:.4f}  vs first {txt}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sets", nargs="+", default=["scifact", "hotpot", "wikipedia"],
                    help="scifact | hotpot | wikipedia | legal | chem")
    ap.add_argument("--scifact-split", default="train")
    ap.add_argument("--strategies", nargs="+", default=["hybrid", "multiquery", "auto"],
                    help="first one is the baseline of the CIs")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from aspectrag.cli.common import quiet_libraries
    from aspectrag.config import setup_threads

    setup_threads()
    quiet_libraries()
    results: dict[str, Any] = {}
    for s in args.sets:
        if s == "scifact":
            results[f"scifact-{args.scifact_split}"] = run_scifact(args.scifact_split,
                                                                   args.strategies)
        elif s == "hotpot":
            results["hotpot"] = run_hotpot(args.strategies)
        else:
            results[s] = run_mrag(s, args.strategies)
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

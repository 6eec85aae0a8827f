"""Choose the hybrid fusion weight on held-out *training* queries, never on the test split.

``aspectrag train embedder --beir DATA --split train --dev-fraction F --seed S`` holds out a
seeded fraction F of the training queries (``train/dev.py``: ``split_by_query``). This script
rebuilds that same dev query set and scores full-corpus retrieval on it (nDCG@10, Recall@100,
MRR@10 against ``qrels/train.tsv``) for bm25, dense, reciprocal rank fusion and the convex
combination at several dense weights, on one or more indexes (e.g. the base-model index and an
index built with the adapter trained without the dev queries). The weight with the best dev
nDCG@10 is the one to use on test.

Usage: python benchmarks/lora_dev_hybrid.py --index BASE_IDX [--index IDX --adapter AD ...]
           [--data ../shared/data/scifact] [--dev-fraction 0.1] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aspectrag.config import shared_data_dir

WEIGHTS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def dev_queries(data: Path, fraction: float, seed: int) -> tuple[dict[str, str], dict]:  # type: ignore[type-arg]
    """``(queries, qrels)`` of the dev split of ``qrels/train.tsv`` ({qid: text}, {qid: {doc: grade}})."""
    from aspectrag.evaluate.beir import load_beir
    from aspectrag.train.data import beir_pairs
    from aspectrag.train.dev import split_by_query

    _, dev = split_by_query(beir_pairs(data, "train"), fraction, seed)
    held = {p.query for p in dev}
    ds = load_beir(data, "train")
    queries = {q: t for q, t in ds.queries.items() if t in held}
    return queries, {q: ds.qrels[q] for q in queries}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=shared_data_dir() / "scifact")
    ap.add_argument("--index", type=Path, action="append", required=True)
    ap.add_argument(
        "--adapter", type=Path, action="append", default=[],
        help="adapter of the matching --index (give 'none' for a base-model index)",
    )  # fmt: skip
    ap.add_argument("--dev-fraction", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not (args.data / "corpus.jsonl").is_file():
        sys.exit(f"{args.data}: SciFact (BEIR layout) not found; set ASPECTRAG_SHARED_DATA")
    adapters = list(args.adapter) + [Path("none")] * (len(args.index) - len(args.adapter))
    from aspectrag.cli.common import open_index
    from aspectrag.evaluate.beir import beir_run
    from aspectrag.evaluate.metrics import score_run

    queries, qrels = dev_queries(args.data, args.dev_fraction, args.seed)
    print(f"dev: {len(queries)} held-out training queries of {args.data} "
          f"(fraction {args.dev_fraction}, seed {args.seed}), full corpus")  # fmt: skip
    configs: list[tuple[str, str, dict]] = [("bm25", "bm25", {}), ("dense", "dense", {}),
                                            ("rrf", "hybrid", {"fusion": "rrf"})]  # fmt: skip
    configs += [(f"convex {w}", "hybrid", {"fusion": "convex", "weight": w}) for w in WEIGHTS]
    for index, adapter in zip(args.index, adapters, strict=True):
        idx = open_index(index, None if str(adapter) == "none" else adapter)
        print(f"\nindex {index} (adapter: {adapter})")
        print(f"{'':12s} {'nDCG@10':>8s} {'Recall@100':>10s} {'MRR@10':>8s}")
        best = ("", -1.0)
        for label, name, opts in configs:
            scores = score_run(qrels, beir_run(idx.retriever(name, **opts), queries))
            print(f"{label:12s} {scores['ndcg@10']:8.4f} {scores['recall@100']:10.4f} "
                  f"{scores['mrr@10']:8.4f}", flush=True)  # fmt: skip
            if name == "hybrid" and scores["ndcg@10"] > best[1]:
                best = (label, scores["ndcg@10"])
        print(f"best hybrid on dev: {best[0]} (nDCG@10 {best[1]:.4f})")


if __name__ == "__main__":
    main()

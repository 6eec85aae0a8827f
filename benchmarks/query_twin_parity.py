"""Does the fp32 ONNX query twin answer a torch-built index exactly as torch does? (issue 14)

``aspectrag search`` / ``ask`` encode the queries of a torch-built index with the same model
exported to ONNX in fp32 (``embed.factory.query_twin``), so that they start without importing
torch. This script runs the SciFact evaluation index (the ``aspectrag eval beir`` cache,
torch-built) with queries encoded by torch and by the twin, per retriever: nDCG@10 of each,
the difference, the share of queries whose top 10 documents are identical, and the largest
difference of a query vector (dense and every head space).

    python benchmarks/query_twin_parity.py [--split test] [--retrievers dense hybrid multihead auto]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = (ROOT.parent / "shared/data/scifact").resolve()  # the path the index records


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--split", default="test")
    ap.add_argument("--retrievers", nargs="+", default=["dense", "hybrid", "multihead", "auto"])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    from aspectrag.cli.common import quiet_libraries
    from aspectrag.embed.factory import build_embedder, prepare_query_twin
    from aspectrag.evaluate.beir import beir_run, default_eval_index, load_beir
    from aspectrag.evaluate.metrics import per_query_scores
    from aspectrag.index import Index

    quiet_libraries()
    ds = load_beir(SCIFACT, split=args.split)
    path = default_eval_index(SCIFACT)
    torch_idx = Index(path, readonly=True)
    recorded = torch_idx.store.get_meta("embedder")
    if not prepare_query_twin(recorded, heads=True):
        raise SystemExit(f"{path}: no query twin for embedder {recorded!r} (onnx extra missing, "
                         "ASPECTRAG_QUERY_TWIN=0, or not a torch-built index)")
    twin = build_embedder(recorded=recorded, heads=True, for_queries=True)
    twin_idx = Index(path, readonly=True, embedder=twin, store=torch_idx.store)
    texts = list(ds.queries.values())
    a, b = torch_idx.embedder.encode(texts, kind="query"), twin.encode(texts, kind="query")
    out: dict[str, object] = {"split": args.split, "queries": len(texts),
                              "embedders": [torch_idx.embedder.name, type(twin).__name__],
                              "max_abs_diff": {s: float(np.abs(a[s] - b[s]).max()) for s in a}}
    print(f"SciFact {args.split}, {len(texts)} queries; largest query-vector difference "
          f"{max(out['max_abs_diff'].values()):.2e} (over dense and {len(a) - 1} head spaces)")  # type: ignore[union-attr]
    rows = []
    for name in args.retrievers:
        runs = [beir_run(ix.retriever(name), ds.queries) for ix in (torch_idx, twin_idx)]
        s = [per_query_scores(ds.qrels, r) for r in runs]
        same = np.mean([list(runs[0][q])[:10] == list(runs[1][q])[:10] for q in ds.qrels])
        row = {"retriever": name, "torch": float(s[0].mean()), "twin": float(s[1].mean()),
               "diff": float(s[1].mean() - s[0].mean()), "identical_top10": float(same)}
        rows.append(row)
        print(f"  {name:10s} nDCG@10 torch {row['torch']:.4f}  twin {row['twin']:.4f}  "
              f"diff {row['diff']:+.5f}  identical top 10: {same:.1%}")
    out["rows"] = rows
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

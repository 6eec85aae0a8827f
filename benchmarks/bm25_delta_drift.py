"""Ranking drift of the BM25 delta segment against a full rebuild (issue 13, item 5).

Between merges, chunks added after the base was built are scored with the base's collection
statistics (``store/bm25_index.py``). The worst case is a delta just under the merge
threshold (``store/segments.py``: ``MERGE_FRACTION`` of the base). This script builds, on
SciFact (documents as units, title + abstract), a base over a random ``1 - f`` share of the
corpus and adds the rest as a delta, for several ``f``, and compares nDCG@10 on the SciFact
**train** queries (development data) with a full build over the whole corpus: per-query paired
bootstrap 95% CIs, and the share of queries whose top 10 differs at all.

    python benchmarks/bm25_delta_drift.py [--fractions 0.01 0.05 0.09] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ASPECTRAG_SHARED_DATA", ROOT.parent / "shared" / "data"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--fractions", nargs="+", type=float, default=[0.01, 0.05, 0.09])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    from aspectrag.cli.common import quiet_libraries
    from aspectrag.evaluate.beir import load_beir
    from aspectrag.evaluate.metrics import paired_bootstrap, per_query_scores
    from aspectrag.store.bm25_index import BM25Index

    quiet_libraries()
    ds = load_beir(DATA / "scifact", split="train")
    docs = [json.loads(x) for x in ds.corpus.open(encoding="utf-8")]
    ids = [str(d["_id"]) for d in docs]
    texts = [f"{d.get('title', '')}\n{d.get('text', '')}" for d in docs]
    qids = list(ds.qrels)
    queries = [ds.queries[q] for q in qids]

    def run_of(idx: BM25Index, rowid_to_doc: dict[int, str]) -> dict[str, dict[str, float]]:
        res = idx.search(queries, 10)
        return {q: {rowid_to_doc[int(r)]: float(s) for r, s in zip(rows, sc, strict=True)}
                for q, (rows, sc) in zip(qids, res, strict=True)}

    rowids = np.arange(1, len(docs) + 1, dtype=np.int64)
    full = BM25Index().build(texts, rowids)
    ref_run = run_of(full, dict(zip(rowids.tolist(), ids, strict=True)))
    ref = per_query_scores(ds.qrels, ref_run)
    out: dict[str, object] = {"queries": len(qids), "documents": len(docs),
                              "full_ndcg@10": float(ref.mean()), "rows": []}
    print(f"SciFact train, {len(qids)} queries, {len(docs)} documents: full build nDCG@10 "
          f"{ref.mean():.4f}")
    rng = np.random.default_rng(args.seed)
    for f in args.fractions:
        perm = rng.permutation(len(docs))
        n_delta = int(round(f * len(docs)))
        base_pos, delta_pos = np.sort(perm[n_delta:]), np.sort(perm[:n_delta])
        # delta rows get new, larger row ids, as the store hands them out
        base_rows = rowids[: len(base_pos)]
        delta_rows = rowids[len(base_pos):]
        seg = BM25Index().build([texts[i] for i in base_pos], base_rows)
        seg = seg.with_changes([texts[i] for i in delta_pos], delta_rows,
                               np.zeros(0, np.int64), generation=1)
        to_doc = dict(zip(base_rows.tolist(), [ids[i] for i in base_pos], strict=True))
        to_doc.update(zip(delta_rows.tolist(), [ids[i] for i in delta_pos], strict=True))
        run = run_of(seg, to_doc)
        got = per_query_scores(ds.qrels, run)
        diff, lo, hi = paired_bootstrap(got, ref)["mean"]
        changed = float(np.mean([list(run[q]) != list(ref_run[q]) for q in qids]))
        row = {"delta_fraction_of_corpus": f, "delta_docs": n_delta,
               "delta_over_base": n_delta / len(base_pos), "ndcg@10": float(got.mean()),
               "diff": diff, "ci95": [lo, hi], "queries_with_changed_top10": changed}
        out["rows"].append(row)  # type: ignore[union-attr]
        print(f"  delta {n_delta} docs ({row['delta_over_base']:.1%} of the base): nDCG@10 "
              f"{got.mean():.4f}, diff {diff:+.4f} [{lo:+.4f}, {hi:+.4f}], top 10 changed for "
              f"{changed:.1%} of queries")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

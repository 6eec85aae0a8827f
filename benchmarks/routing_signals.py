"""Per-question signals and anchored-fusion variants of ``auto`` (development data).

Runs the ``auto`` retriever once per data set while recording, per question, the planned
queries and the base (hybrid) run of each; then re-fuses those runs offline under a grid of
single-aspect variants (anchor ``m`` places, PRF weight ``w``) and scores every variant per
question. Also writes each question's cheap signals: route, words, hybrid scores of the first
10 chunks (convex combination, in [0, 1]), and the overlap of the question's and the PRF
query's first 10 documents. Used to choose the single-aspect rule of
:mod:`aspectrag.retrieve.auto` from evidence (issue 15); never run it on SciFact test.

    python benchmarks/routing_signals.py --sets scifact hotpot --json signals.json

Output JSON: ``{set: {"configs": [label...], "scores": {label: [per question]},
"features": [{...} per question]}}``; SciFact scores nDCG@10, HotpotQA both@10.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ASPECTRAG_SHARED_DATA", ROOT.parent / "shared" / "data"))
sys.path.insert(0, str(ROOT / "benchmarks"))

ANCHORS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 15, 1 << 20)
PRF_WEIGHTS = (1.0, 0.5, 0.25)
DOC_ANCHORS = (3, 4, 5, 6, 8)
CLAUSE_ANCHORS = (0, 2, 5, 10, 1 << 20)


def _label(m: int, w: float) -> str:
    return "hybrid" if m >= 1 << 20 else f"m={m},w={w:g}"


def capture(auto: Any, texts: list[str], k: int) -> list[tuple[list[Any], list[Any]]]:
    """``(queries, runs)`` of every text, in order, from one batched ``auto`` pass."""
    got: dict[str, tuple[list[Any], list[Any]]] = {}
    orig = auto.fuse

    def spy(queries: Any, runs: Any, kk: int) -> Any:
        got[queries[0].text] = (list(queries), list(runs))
        return orig(queries, runs, kk)

    auto.fuse = spy
    for i in range(0, len(texts), 64):
        auto.retrieve_batch(texts[i : i + 64], k)
    auto.fuse = orig
    return [got[t] for t in texts]


def features(queries: list[Any], runs: list[Any], route: str) -> dict[str, Any]:
    """Cheap signals of one question (no extra search)."""
    from aspectrag.evaluate.metrics import hits_to_docs

    s = [float(h.score) for h in runs[0][:10]] + [0.0] * 10
    own = hits_to_docs(runs[0], 10)
    docs5 = len({h.chunk.doc_id for h in runs[0][:5]})
    prf = [hits_to_docs(r, 10) for q, r in zip(queries, runs, strict=True) if q.origin == "prf"]
    return {"route": route, "words": len(queries[0].text.split()), "n_queries": len(queries), "docs_in_top5": docs5,
            "scores": s[:10], "prf_overlap10": len(set(own) & set(prf[0])) if prf else None,
            "prf_top1_same": (bool(prf[0]) and bool(own) and prf[0][0] == own[0]) if prf else None}


def variants(auto: Any, caps: list[tuple[list[Any], list[Any]]], k: int
             ) -> tuple[dict[str, list[list[Any]]], list[dict[str, Any]]]:
    """Fused hits of every grid variant per question, and the questions' signals."""
    from aspectrag.retrieve.query_gen.base import SubQuery

    out: dict[str, list[list[Any]]] = {}
    feats = [features(q, r, auto.route(q).route) for q, r in caps]
    keep = auto.anchor_single
    for w in PRF_WEIGHTS:
        for m in ANCHORS:
            if m >= 1 << 20 and w != 1.0:
                continue
            auto.anchor_single = m
            rows = []
            for queries, runs in caps:
                qs = [SubQuery(q.text, q.weight * (w if q.origin == "prf" else 1.0), q.origin)
                      for q in queries]
                if auto.route(qs).route != "single-aspect":
                    qs = list(queries)
                rows.append(auto.fuse(qs, runs, k))
            out[_label(m, w)] = rows
    for dn in DOC_ANCHORS:  # anchor whole documents: the chunks up to the dn-th distinct doc
        rows = []
        for queries, runs in caps:
            auto.anchor_single = chunks_for_docs(runs[0], dn)
            rows.append(auto.fuse(list(queries), runs, k))
        out[f"docs={dn}"] = rows
    auto.anchor_single = keep
    keep_c = auto.anchor_clauses
    for mc in CLAUSE_ANCHORS:
        auto.anchor_clauses = mc
        out[f"clauses={mc}"] = [auto.fuse(list(q), r, k) for q, r in caps]
    auto.anchor_clauses = keep_c
    return out, feats


def chunks_for_docs(run: Any, n_docs: int) -> int:
    """Chunks of ``run`` up to and including its ``n_docs``-th distinct document."""
    seen: set[str] = set()
    for i, h in enumerate(run, start=1):
        seen.add(h.chunk.doc_id)
        if len(seen) == n_docs:
            return i
    return len(run)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sets", nargs="+", default=["scifact", "hotpot"])
    ap.add_argument("--json", type=Path, required=True)
    args = ap.parse_args()
    from aspectrag.cli.common import quiet_libraries
    from aspectrag.config import setup_threads
    from aspectrag.evaluate.metrics import hits_to_docs, per_query_scores, ranking_to_run

    setup_threads()
    quiet_libraries()
    res: dict[str, Any] = {}
    for s in args.sets:
        if s == "scifact":
            from aspectrag.evaluate.beir import default_eval_index, load_beir
            from aspectrag.index import Index

            ds = load_beir(DATA / "scifact", "train")
            idx = Index(default_eval_index(DATA / "scifact"))
            auto = idx.retriever("auto")
            caps = capture(auto, list(ds.queries.values()), 200)
            fused, feats = variants(auto, caps, 200)
            scores = {lab: per_query_scores(ds.qrels, {
                q: ranking_to_run(hits_to_docs(h, 100), 100)
                for q, h in zip(ds.queries, rows, strict=True)}).tolist()
                for lab, rows in fused.items()}
        else:
            from multiquery_hotpot import build_index, load

            rows_, corpus = load(DATA / "multihop" / "hotpot.jsonl")
            auto = build_index(corpus).retriever("auto")
            caps = capture(auto, [r["question"] for r in rows_], 30)
            fused, feats = variants(auto, caps, 30)
            gold = [{t for t, _ in r["supporting_facts"]} for r in rows_]
            scores = {lab: [float(g <= set(hits_to_docs(h, 10))) for g, h in
                            zip(gold, rows, strict=True)] for lab, rows in fused.items()}
        res[s] = {"configs": list(scores), "scores": scores, "features": feats}
        print(s, {lab: round(float(np.mean(v)), 4) for lab, v in scores.items()}, flush=True)
        args.json.write_text(json.dumps(res))


if __name__ == "__main__":
    main()

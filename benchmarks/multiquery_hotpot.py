"""Multi-hop retrieval on HotpotQA: single-query vs rule-based multi-query retrieval.

Data: ``$ASPECTRAG_SHARED_DATA/multihop/hotpot.jsonl`` (200 hard distractor questions, 134
bridge / 66 comparison). Corpus = all their paragraphs (1,971 distinct titles), indexed with the
product ingest pipeline (bundled MiniLM + BM25) in a cache folder. Relevant = the two
supporting paragraphs (``supporting_facts`` titles). Metrics: "both@k" = fraction of questions
whose two supporting paragraphs are both in the top-k paragraphs (k = 5, 10), and recall@k.

    python benchmarks/multiquery_hotpot.py [--bases bm25 dense hybrid] [--pieces clauses keywords]

Prints one row per strategy (overall, bridge, comparison).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ASPECTRAG_SHARED_DATA", ROOT.parent / "shared" / "data"))


def load(path: Path) -> tuple[list[dict], dict[str, str]]:  # type: ignore[type-arg]
    """Questions and the corpus ``{title: paragraph text}`` (first occurrence of a title)."""
    rows = [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]
    corpus: dict[str, str] = {}
    for r in rows:
        for title, sentences in r["context"]:
            corpus.setdefault(title, "".join(sentences))
    return rows, corpus


def build_index(corpus: dict[str, str]):  # type: ignore[no-untyped-def]
    """An :class:`~aspectrag.index.Index` of the paragraphs (BEIR corpus.jsonl, ``_id`` = title)."""
    from aspectrag.index import Index
    from aspectrag.settings import get_settings

    fp = hashlib.sha256(json.dumps(corpus, sort_keys=True).encode()).hexdigest()[:12]
    root = get_settings().cache_dir / f"hotpot-{fp}"
    root.mkdir(parents=True, exist_ok=True)
    path = root / "corpus.jsonl"
    if not path.exists():
        with path.open("w", encoding="utf-8") as fh:
            for title, text in corpus.items():
                fh.write(json.dumps({"_id": title, "title": title, "text": text}) + "\n")
    idx = Index(root / "index")
    rep = idx.ingest([path], progress=sys.stderr.isatty())
    if rep.failed:
        raise SystemExit(f"{path}: {rep.failed[0][1]}")
    return idx


def score(rows: list[dict], rankings: list[list[str]]) -> dict[str, dict[str, float]]:  # type: ignore[type-arg]
    """``{"all"|"bridge"|"comparison": {"both@5", "both@10", "recall@5", "recall@10"}}``."""
    out: dict[str, dict[str, float]] = {}
    for group in ("all", "bridge", "comparison"):
        sel = [
            (r, rk)
            for r, rk in zip(rows, rankings, strict=True)
            if group == "all" or r["type"] == group
        ]
        vals: dict[str, float] = {}
        for k in (5, 10):
            found = [len({t for t, _ in r["supporting_facts"]} & set(rk[:k])) for r, rk in sel]
            need = [len({t for t, _ in r["supporting_facts"]}) for r, _ in sel]
            vals[f"both@{k}"] = float(np.mean([f == n for f, n in zip(found, need, strict=True)]))
            vals[f"recall@{k}"] = float(np.mean([f / n for f, n in zip(found, need, strict=True)]))
        out[group] = vals
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--bases", nargs="+", default=["bm25", "dense", "hybrid"])
    ap.add_argument(
        "--pieces",
        nargs="+",
        action="append",
        help="rule pieces of one multi-query variant (repeatable); default: the "
        "product default and a few alternatives",
    )
    ap.add_argument(
        "--rrf-depth",
        type=int,
        nargs="+",
        default=[None],
        help="MultiQueryRetriever rrf_depth values to compare (default: its default)",
    )
    ap.add_argument("--json", type=Path, help="also write the figures to this file")
    args = ap.parse_args()
    path = DATA / "multihop" / "hotpot.jsonl"
    if not path.exists():
        raise SystemExit(f"{path} is absent (set ASPECTRAG_SHARED_DATA); nothing to measure")
    logging.basicConfig(level=logging.WARNING)
    from aspectrag.config import setup_threads
    from aspectrag.evaluate.metrics import hits_to_docs
    from aspectrag.retrieve.bm25 import BM25Retriever
    from aspectrag.retrieve.multiquery import MultiQueryRetriever
    from aspectrag.retrieve.query_gen.rules import DEFAULT_PIECES, RuleBasedQueryGenerator

    setup_threads()
    rows, corpus = load(path)
    idx = build_index(corpus)
    questions = [r["question"] for r in rows]
    variants = (
        [tuple(p) for p in args.pieces]
        if args.pieces
        else [tuple(DEFAULT_PIECES), ("clauses",), ("keywords",), ("prf",), ("clauses", "prf")]
    )
    results: dict[str, dict[str, dict[str, float]]] = {}
    print(f"HotpotQA: {len(rows)} questions, corpus {len(corpus)} paragraphs")
    print(
        f"{'strategy':38s} {'both@5':>7s} {'both@10':>7s} {'rec@5':>6s} {'rec@10':>6s}"
        f"  {'bridge b@10':>11s} {'compar. b@10':>12s} {'s/query':>8s}"
    )
    for base_name in args.bases:
        base = idx.retriever(base_name)
        strategies = [(base_name, base)]
        for pieces in variants:
            gen = RuleBasedQueryGenerator(pieces, feedback=BM25Retriever(idx.store))
            for d in args.rrf_depth:
                kw = {} if d is None else {"rrf_depth": d}
                tag = "" if d is None else f",d={d}"
                strategies.append(
                    (
                        f"mq[{'+'.join(pieces)}{tag}]({base_name})",
                        MultiQueryRetriever(base, gen, **kw),
                    )
                )
        for name, r in strategies:
            t0 = time.perf_counter()
            rankings = [hits_to_docs(h, 10) for h in r.retrieve_batch(questions, 30)]
            secs = (time.perf_counter() - t0) / len(questions)
            s = results[name] = score(rows, rankings)
            a = s["all"]
            print(
                f"{name:38s} {a['both@5']:7.3f} {a['both@10']:7.3f} {a['recall@5']:6.3f} "
                f"{a['recall@10']:6.3f}  {s['bridge']['both@10']:11.3f} "
                f"{s['comparison']['both@10']:12.3f} {secs:8.3f}",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

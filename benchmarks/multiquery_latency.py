"""Latency of multi-query retrieval (excluding the LLM) versus one query's retrieval.

Target (issue 3): multi-query with N = 3 generated queries (4 searches with the original
question) costs at most 1.5x the time of retrieving the question alone, because the base
searches all queries in one batch (one embedding forward pass, one store call per space).

Index: the HotpotQA paragraphs (built by ``benchmarks/multiquery_hotpot.py``'s helper).
Queries: the 200 HotpotQA questions; their 3 variants are computed beforehand (as an LLM's
would be) with the rule pieces clauses + keywords + prf, padded to exactly 3, and replayed.
Timings alternate single / multi per question after a warm-up; medians are reported, of
wall-clock time and of this process's CPU time (``time.process_time``, all threads): on a
shared, loaded machine the CPU time is the steadier measure of the work done.

    python benchmarks/multiquery_latency.py [--bases bm25 dense hybrid] [--k 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from multiquery_hotpot import DATA, build_index, load  # noqa: E402


def three_variants(gen, question: str) -> list:  # type: ignore[no-untyped-def]
    """Exactly 3 variants of ``question`` (rule pieces; padded with keyword re-orderings)."""
    from aspectrag.retrieve.query_gen.base import SubQuery
    from aspectrag.retrieve.query_gen.rules import content_words

    qs = [q for q in gen.generate(question) if q.text.casefold() != question.casefold()][:3]
    words = content_words(question)
    i = 0
    while len(qs) < 3:
        i += 1
        qs.append(SubQuery(" ".join(words[i:] + words[:i]) or f"{question} ({i})", 1.0, "pad"))
    return qs


class Recorded:
    """A query generator that replays precomputed ``SubQuery`` lists (origins kept)."""

    name = "recorded"

    def __init__(self, table: dict) -> None:  # type: ignore[type-arg]
        self.table = table

    def generate(self, question: str) -> list:  # type: ignore[type-arg]
        return self.table[question]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--bases", nargs="+", default=["bm25", "dense", "hybrid"])
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3, help="timed passes over the questions")
    ap.add_argument("--workers", type=int, nargs="+", default=[1])
    args = ap.parse_args()
    path = DATA / "multihop" / "hotpot.jsonl"
    if not path.exists():
        raise SystemExit(f"{path} is absent (set ASPECTRAG_SHARED_DATA); nothing to measure")
    from aspectrag.config import setup_threads
    from aspectrag.retrieve.bm25 import BM25Retriever
    from aspectrag.retrieve.multiquery import MultiQueryRetriever
    from aspectrag.retrieve.query_gen.rules import RuleBasedQueryGenerator

    setup_threads()
    rows, corpus = load(path)
    idx = build_index(corpus)
    questions = [r["question"] for r in rows]
    gen = RuleBasedQueryGenerator(("clauses", "keywords", "prf"), feedback=BM25Retriever(idx.store))
    recorded = Recorded({q: three_variants(gen, q) for q in questions})
    print(
        f"{len(questions)} HotpotQA questions, corpus {len(corpus)} paragraphs, k={args.k}, "
        f"N=3 variants + the question; median ms per question over {args.repeat} passes"
    )
    print(
        f"{'base':8s} {'workers':>7s} {'single ms':>10s} {'multi ms':>9s} {'ratio':>6s}"
        f"  {'CPU single':>10s} {'CPU multi':>9s} {'ratio':>6s}"
    )
    for base_name in args.bases:
        base = idx.retriever(base_name)
        for workers in args.workers:
            mq = MultiQueryRetriever(base, recorded, workers=workers)
            for q in questions[:10]:  # warm-up: model load, caches, BM25/dense indexes
                base.retrieve(q, args.k)
                mq.retrieve(q, args.k)
            wall: list[tuple[float, float]] = []
            cpu: list[tuple[float, float]] = []
            for _ in range(args.repeat):
                for q in questions:
                    t0, c0 = time.perf_counter(), time.process_time()
                    base.retrieve(q, args.k)
                    t1, c1 = time.perf_counter(), time.process_time()
                    mq.retrieve(q, args.k)
                    t2, c2 = time.perf_counter(), time.process_time()
                    wall.append((t1 - t0, t2 - t1))
                    cpu.append((c1 - c0, c2 - c1))
            cells = []
            for pairs in (wall, cpu):
                s = statistics.median(p[0] for p in pairs) * 1e3
                m = statistics.median(p[1] for p in pairs) * 1e3
                cells.append(f"{s:10.2f} {m:9.2f} {m / s:6.2f}")
            print(f"{base_name:8s} {workers:7d} {cells[0]}  {cells[1]}", flush=True)


if __name__ == "__main__":
    main()

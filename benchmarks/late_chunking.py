"""Late chunking of multi-query sub-queries versus encoding them alone: quality and cost.

Late chunking (Günther et al. 2024, arXiv 2409.04701; ``aspectrag.embed.late``): sub-queries
whose words are a run (``spans``) or an in-order subsequence (``subseq``) of the question's
are mean-pooled from the question's token vectors, one forward pass shared with the question.
Queries are encoded by the ONNX fp32 query twin (``embed.factory.query_twin``), as ``search``
does; documents by the torch embedder that built each index.

1. Span counts: how many rule sub-queries (default pieces) are spans / subsequences.
2. Quality, rule-based multi-query (default pieces), bases dense and hybrid:
   MRAG Wikipedia v1 -- weighted score at k = aspects, mean over aspect counts (W@a);
   HotpotQA (200 questions) -- both supporting paragraphs in the top 10 (both@10);
   late minus separate, paired bootstrap 95% CI (10,000 resamples; MRAG strata = aspects).
3. Cost per HotpotQA question (the ``multiquery_latency.py`` set-up: 3 recorded variants
   from clauses + keywords + prf, padded, plus the question): median wall and CPU ms of
   single / multi separate / multi late, alternating per question.

    python benchmarks/late_chunking.py [--bases dense hybrid] [--repeat 3] [--skip-mrag]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from multiquery_hotpot import DATA, build_index, load  # noqa: E402
from multiquery_latency import Recorded, three_variants  # noqa: E402

MODES = {"separate": None, "late-spans": "spans", "late-subseq": "subsequences"}


def twin(store):  # type: ignore[no-untyped-def]
    """The query twin of an index built by torch (fails loudly when none is ready)."""
    from aspectrag.embed.factory import build_embedder

    emb = build_embedder(recorded=store.get_meta("embedder"), heads=True, for_queries=True)
    if "onnx" not in type(emb).__module__:
        raise SystemExit(f"no ONNX query twin for {store.get_meta('embedder')}")
    return emb


def span_counts(name: str, gen, questions: list[str]) -> None:  # type: ignore[no-untyped-def]
    """Print, per rule piece, the sub-queries that are spans / subsequences of the question."""
    from aspectrag.embed.late import word_ranges

    tot: Counter[str] = Counter()
    sp: Counter[str] = Counter()
    ss: Counter[str] = Counter()
    for q in questions:
        for sq in gen.generate(q):
            tot[sq.origin] += 1
            sp[sq.origin] += word_ranges(q, sq.text, "spans") is not None
            ss[sq.origin] += word_ranges(q, sq.text, "subsequences") is not None
    cells = "; ".join(f"{o} {sp[o]}/{ss[o]}/{n}" for o, n in tot.items())
    n = sum(tot.values())
    print(f"  {name}: spans/subsequences/all = {sum(sp.values())}/{sum(ss.values())}/{n} "
          f"({cells})")


def ci_line(label: str, a: np.ndarray, b: np.ndarray, strata=None) -> str:  # type: ignore[no-untyped-def]
    from aspectrag.evaluate.metrics import paired_bootstrap

    d, lo, hi = paired_bootstrap(a, b, strata)["mean"]
    return f"{label}: {np.mean(a):.4f} vs {np.mean(b):.4f}  diff {d:+.4f} [{lo:+.4f}, {hi:+.4f}]"


def quality_hotpot(idx, emb, rows, bases) -> None:  # type: ignore[no-untyped-def]
    from aspectrag.evaluate.metrics import hits_to_docs
    from aspectrag.retrieve.bm25 import BM25Retriever
    from aspectrag.retrieve.factory import build_retriever
    from aspectrag.retrieve.multiquery import MultiQueryRetriever
    from aspectrag.retrieve.query_gen.rules import RuleBasedQueryGenerator

    questions = [r["question"] for r in rows]
    gen = RuleBasedQueryGenerator(feedback=BM25Retriever(idx.store))
    for b in bases:
        base = build_retriever(b, idx.store, emb)
        per: dict[str, np.ndarray] = {}
        for mode, late in {"single": "single", **MODES}.items():
            r = base if late == "single" else MultiQueryRetriever(base, gen, late_chunking=late)
            t0 = time.perf_counter()
            ranks = [hits_to_docs(h, 10) for h in r.retrieve_batch(questions, 30)]
            secs = (time.perf_counter() - t0) / len(questions)
            per[mode] = np.array([float({t for t, _ in row["supporting_facts"]} <= set(rk))
                                  for row, rk in zip(rows, ranks, strict=True)])
            print(f"  hotpot {b:6s} {mode:12s} both@10 {per[mode].mean():.3f}  "
                  f"{1e3 * secs:6.1f} ms/q (under load)", flush=True)
        for mode in ("late-spans", "late-subseq"):
            print("   " + ci_line(f"{mode} - separate", per[mode], per["separate"]))


def quality_mrag(bases) -> None:  # type: ignore[no-untyped-def]
    from aspectrag.evaluate.mrag import load_mrag
    from aspectrag.evaluate.mrag_strategies import MragEvaluation
    from aspectrag.retrieve.bm25 import BM25Retriever
    from aspectrag.retrieve.factory import build_retriever
    from aspectrag.retrieve.multiquery import MultiQueryRetriever
    from aspectrag.retrieve.query_gen.rules import RuleBasedQueryGenerator

    ds = load_mrag("wikipedia", DATA)
    ev = MragEvaluation(ds, progress=sys.stderr.isatty())
    idx = ev.index("main")
    emb = twin(idx.store)
    gen = RuleBasedQueryGenerator(feedback=BM25Retriever(idx.store))
    span_counts("MRAG Wikipedia v1", gen, [q.text for q in ds.queries])
    for b in bases:
        base = build_retriever(b, idx.store, emb)
        per: dict[str, np.ndarray] = {}
        for mode, late in {"single": "single", **MODES}.items():
            r = base if late == "single" else MultiQueryRetriever(base, gen, late_chunking=late)
            run = ev.run(f"{mode}({b})", retriever=r)
            per[mode] = run.per_query["weighted"]
            w = run.summary(ds)["by_aspects"]
            wa = float(np.mean([v["weighted"] for v in w.values()]))
            print(f"  mrag   {b:6s} {mode:12s} W@a {wa:.3f}  "
                  f"{1e3 * run.seconds / len(ds.queries):6.1f} ms/q (under load)", flush=True)
        for mode in ("late-spans", "late-subseq"):
            print("   " + ci_line(f"{mode} - separate (mean over aspect counts)", per[mode],
                                  per["separate"], ds.strata))


def cost(idx, emb, questions, bases, repeat: int, k: int = 10) -> None:  # type: ignore[no-untyped-def]
    from aspectrag.retrieve.bm25 import BM25Retriever
    from aspectrag.retrieve.factory import build_retriever
    from aspectrag.retrieve.multiquery import MultiQueryRetriever
    from aspectrag.retrieve.query_gen.rules import RuleBasedQueryGenerator

    gen = RuleBasedQueryGenerator(("clauses", "keywords", "prf"), feedback=BM25Retriever(idx.store))
    rec = Recorded({q: three_variants(gen, q) for q in questions})
    span_counts("cost set (3 variants)", rec, questions)
    print(f"  {'base':6s} {'':9s} " + " ".join(f"{m:>22s}" for m in ("single", *MODES)))
    for b in bases:
        base = build_retriever(b, idx.store, emb)
        runs = {"single": base, **{m: MultiQueryRetriever(base, rec, late_chunking=late)
                                   for m, late in MODES.items()}}
        for q in questions[:10]:
            for r in runs.values():
                r.retrieve(q, k)
        wall: dict[str, list[float]] = {m: [] for m in runs}
        cpu: dict[str, list[float]] = {m: [] for m in runs}
        for _ in range(repeat):
            for q in questions:
                for m, r in runs.items():
                    t0, c0 = time.perf_counter(), time.process_time()
                    r.retrieve(q, k)
                    wall[m].append(time.perf_counter() - t0)
                    cpu[m].append(time.process_time() - c0)
        for label, d in (("wall ms", wall), ("CPU ms", cpu)):
            s = statistics.median(d["single"]) * 1e3
            cells = " ".join(f"{statistics.median(v) * 1e3:12.2f} ({statistics.median(v) * 1e3 / s:4.2f}x)"
                             for v in d.values())
            print(f"  {b:6s} {label:9s} {cells}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--bases", nargs="+", default=["dense", "hybrid"])
    ap.add_argument("--repeat", type=int, default=3, help="timed passes over the questions")
    ap.add_argument("--skip-mrag", action="store_true")
    ap.add_argument("--skip-cost", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from aspectrag.config import setup_threads
    from aspectrag.retrieve.bm25 import BM25Retriever
    from aspectrag.retrieve.query_gen.rules import RuleBasedQueryGenerator

    setup_threads()
    rows, corpus = load(DATA / "multihop" / "hotpot.jsonl")
    idx = build_index(corpus)
    emb = twin(idx.store)
    questions = [r["question"] for r in rows]
    print(f"query encoder: {type(emb).__name__} ({emb.name}); timings under load (shared 2 cores)")
    print("1. sub-queries of the rule generator (default pieces) that are pieces of the question")
    span_counts("HotpotQA", RuleBasedQueryGenerator(feedback=BM25Retriever(idx.store)), questions)
    print("2. quality (rule multi-query, default pieces)")
    quality_hotpot(idx, emb, rows, args.bases)
    if not args.skip_mrag:
        quality_mrag(args.bases)
    if not args.skip_cost:
        print(f"3. cost per HotpotQA question, median over {args.repeat} passes x "
              f"{len(questions)} questions (under load); ratio to single")
        cost(idx, emb, questions, args.bases, args.repeat)


if __name__ == "__main__":
    main()

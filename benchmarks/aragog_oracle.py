"""Oracle frontier of sentence extraction on ARAGOG: is token F1 >= 0.25 reachable at all?

For each question the hybrid retriever's top-k (k=5) hits are split into sentences
(``split_sentences``) and, against the ground truth (SQuAD token P/R/F1, ``overlap``), the
script measures per question and averages over the dev half (first 53 questions) and the
held-out half (last 54):

* default: the ExtractiveGenerator default answer (its evidence sentences);
* oracle_f1: greedy sentence subset maximising F1 (add the sentence with the largest F1 gain
  until none gains);
* oracle_at_recall: fewest-token subset reaching the default answer's recall for that question
  (greedy by recall gain per token until recall >= default's), and its F1;
* oracle_at_recall_f1: the same subset, then greedy F1-gaining additions (recall cannot drop);
* best_sentence: the single sentence with the highest F1;
* context: all k chunks concatenated (context recall).

Oracles see the ground truth: they bound what choosing sentences of these hits can reach.

Usage: python benchmarks/aragog_oracle.py [--index DIR] [-k 5] [--json OUT] [--txt OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from aspectrag.config import setup_threads, shared_data_dir
from aspectrag.generate.extractive import ExtractiveGenerator
from aspectrag.generate.sentences import split_sentences
from aspectrag.index import Index

sys.path.insert(0, str(Path(__file__).resolve().parent))
from aragog_answers import evidence_text, normalise_tokens, overlap  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SYSTEMS = ["default", "oracle_f1", "oracle_at_recall", "oracle_at_recall_f1", "best_sentence",
           "context"]


def score(sents: list[str], truth: str) -> tuple[float, float, float, int]:
    text = " ".join(sents)
    return (*overlap(text, truth), len(normalise_tokens(text)))


def greedy_f1(pool: list[str], truth: str, start: list[str]) -> list[str]:
    """Add the sentence with the largest F1 gain until none gains."""
    chosen, rest = list(start), [s for s in pool if s not in start]
    best = score(chosen, truth)[2]
    while rest:
        f, s = max((score([*chosen, s], truth)[2], s) for s in rest)
        if f <= best:
            break
        chosen.append(s)
        rest.remove(s)
        best = f
    return chosen


def greedy_recall(pool: list[str], truth: str, target: float) -> list[str]:
    """Add the sentence with the largest recall gain per token until recall >= target."""
    chosen, rest, rec = [], list(pool), 0.0
    while rest and rec < target - 1e-9:
        gains = [((score([*chosen, s], truth)[1] - rec) / max(1, len(normalise_tokens(s))), s)
                 for s in rest]
        g, s = max(gains)
        if g <= 0:
            break
        chosen.append(s)
        rest.remove(s)
        rec = score(chosen, truth)[1]
    return chosen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=shared_data_dir() / "aragog")
    ap.add_argument("--index", type=Path, default=Path(".aspectrag-bench/aragog"))
    ap.add_argument("-k", type=int, default=5)
    ap.add_argument("--json", type=Path, default=RESULTS / "aragog_oracle.json")
    ap.add_argument("--txt", type=Path, default=RESULTS / "aragog_oracle.txt")
    args = ap.parse_args()
    setup_threads()
    bench = json.loads((args.data / "benchmark.json").read_text())
    pairs = list(zip(bench["questions"], bench["ground_truths"], strict=True))
    idx = Index(args.index)
    idx.ingest([args.data / "papers"], progress=True)
    gen, retriever = ExtractiveGenerator(idx.embedder), idx.retriever("hybrid")
    rows: dict[str, list] = {s: [] for s in SYSTEMS}  # per system: (P, R, F1, tokens) rows
    for q, truth in pairs:
        hits = retriever.retrieve(q, args.k)
        pool = list(dict.fromkeys(s.text for h in hits for s in split_sentences(h.chunk.text)))
        pool = [s for s in pool if normalise_tokens(s)]
        default = score([evidence_text(gen.generate(q, hits).answer)], truth)
        at_recall = greedy_recall(pool, truth, default[1])
        rows["default"].append(default)
        rows["oracle_f1"].append(score(greedy_f1(pool, truth, []), truth))
        rows["oracle_at_recall"].append(score(at_recall, truth))
        rows["oracle_at_recall_f1"].append(score(greedy_f1(pool, truth, at_recall), truth))
        rows["best_sentence"].append(max((score([s], truth) for s in pool), key=lambda r: r[2]))
        rows["context"].append(score([h.chunk.text for h in hits], truth))
    half = len(pairs) // 2
    arr = {s: np.array(r, dtype=float) for s, r in rows.items()}
    lines = [f"ARAGOG sentence-extraction oracles, hybrid k={args.k}, {len(pairs)} questions "
             f"(dev = first {half}, held out = last {len(pairs) - half}); means over questions",
             f"{'part':9s} {'system':20s} {'prec':>6s} {'recall':>6s} {'F1':>6s} {'tokens':>7s}"]
    report: dict = {"k": args.k, "retriever": "hybrid", "dev_questions": half,
                    "held_out_questions": len(pairs) - half, "per_question": {
                        s: [list(r) for r in v] for s, v in rows.items()}}
    for part, sl in (("dev", slice(0, half)), ("held_out", slice(half, None))):
        report[part] = {}
        for s in SYSTEMS:
            p, r, f, t = arr[s][sl].mean(axis=0)
            report[part][s] = {"precision": p, "recall": r, "f1": f, "tokens": t}
            lines.append(f"{part:9s} {s:20s} {p:6.3f} {r:6.3f} {f:6.3f} {t:7.1f}")
        zero = int((arr["default"][sl, 1] == 0).sum())
        reach = float((arr["oracle_at_recall"][sl, 1] >= arr["default"][sl, 1] - 1e-9).mean())
        report[part].update(default_recall_zero=zero, recall_reached_share=reach)
        lines.append(f"{part:9s} default recall 0 on {zero} questions; oracle_at_recall reaches "
                     f"the default's recall on {reach:.0%} of questions")
    text = "\n".join(lines)
    print(text)
    args.txt.parent.mkdir(parents=True, exist_ok=True)
    args.txt.write_text(text + "\n")
    args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

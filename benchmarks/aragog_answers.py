"""ARAGOG answer quality of the extractive default, per retriever.

ARAGOG (``../shared/data/aragog``): 15 arXiv papers as PDF and 107 questions with
ground-truth answers. For each retriever, every question is answered from the top-k chunks
by the extractive answerer; the script prints, averaged over the questions:

* token F1 / precision / recall of the answer against the ground truth (SQuAD v1.1 token
  overlap after its normalisation: lower case, no punctuation or articles), on the answer's
  evidence sentences (the header line and the [n] markers removed);
* context recall: token recall of the ground truth in the concatenated retrieved chunks (an
  upper bound for any extractive answer over those chunks);
* the same F1/recall for a trivial baseline in the same process: the first sentences of the
  top-ranked chunk, as many characters as the extractive answer has ("lead" baseline);
* answer length in tokens and seconds per question.

Usage:
    python benchmarks/aragog_answers.py [--index DIR] [-k 5] [--retrievers bm25,dense,hybrid]
        [--limit N] [--json OUT.json] [--plot OUT.png]

The index is built from the papers on first use (a few minutes on 2 cores) and reused.
"""

from __future__ import annotations

import argparse
import json
import re
import string
import time
from collections import Counter
from pathlib import Path

from aspectrag.config import setup_threads, shared_data_dir
from aspectrag.generate.extractive import ExtractiveGenerator
from aspectrag.generate.sentences import split_sentences
from aspectrag.index import Index


def normalise_tokens(text: str) -> list[str]:
    """SQuAD v1.1 answer normalisation, then whitespace tokens."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return text.split()


def overlap(pred: str, truth: str) -> tuple[float, float, float]:
    """Token precision, recall, F1 of ``pred`` against ``truth`` (multiset overlap)."""
    p, t = normalise_tokens(pred), normalise_tokens(truth)
    common = sum((Counter(p) & Counter(t)).values())
    if not p or not t or common == 0:
        return 0.0, 0.0, 0.0
    prec, rec = common / len(p), common / len(t)
    return prec, rec, 2 * prec * rec / (prec + rec)


def evidence_text(answer: str) -> str:
    """The extractive answer without its header line and citation markers."""
    lines = answer.split("\n")[1:]
    return " ".join(re.sub(r"\s*\[\d+(?:,\s*\d+)*\]", "", ln.removeprefix("- ")) for ln in lines)


def lead_baseline(hits, n_chars: int) -> str:  # type: ignore[no-untyped-def]
    """First sentences of the top chunk, about ``n_chars`` characters."""
    if not hits:
        return ""
    out = ""
    for s in split_sentences(hits[0].chunk.text):
        if out and len(out) + len(s.text) > n_chars:
            break
        out = f"{out} {s.text}".strip()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", type=Path, default=shared_data_dir() / "aragog")
    ap.add_argument("--index", type=Path, default=Path(".aspectrag-bench/aragog"))
    ap.add_argument("-k", type=int, default=5)
    ap.add_argument("--retrievers", default="bm25,dense,hybrid")
    ap.add_argument("--limit", type=int, default=0, help="only the first N questions")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--plot", type=Path, default=None)
    ap.add_argument("--save-hits", type=Path, default=None,
                    help="pickle {retriever: [hits per question]} here (input of aragog_tune.py)")
    args = ap.parse_args()
    if not (args.data / "benchmark.json").is_file():
        raise SystemExit(
            f"{args.data}/benchmark.json not found: set ASPECTRAG_SHARED_DATA or --data"
        )
    setup_threads()
    bench = json.loads((args.data / "benchmark.json").read_text())
    pairs = list(zip(bench["questions"], bench["ground_truths"], strict=True))
    if args.limit:
        pairs = pairs[: args.limit]
    idx = Index(args.index)
    rep = idx.ingest([args.data / "papers"], progress=True)
    print(
        f"index {args.index}: {rep.added} added, {rep.unchanged} unchanged, {len(rep.failed)} failed"
    )
    gen = ExtractiveGenerator(idx.embedder)
    results: dict[str, dict[str, float]] = {}
    saved: dict[str, list] = {}
    for name in args.retrievers.split(","):
        retriever = idx.retriever(name)
        sums: Counter[str] = Counter()
        t0 = time.perf_counter()
        for q, truth in pairs:
            hits = retriever.retrieve(q, args.k)
            saved.setdefault(name, []).append(hits)
            ans = evidence_text(gen.generate(q, hits).answer)
            p, r, f = overlap(ans, truth)
            _, cr, _ = overlap(" ".join(h.chunk.text for h in hits), truth)
            _, lr, lf = overlap(lead_baseline(hits, len(ans)), truth)
            sums.update(
                {
                    "f1": f,
                    "precision": p,
                    "answer_recall": r,
                    "context_recall": cr,
                    "lead_f1": lf,
                    "lead_recall": lr,
                    "answer_tokens": len(normalise_tokens(ans)),
                }
            )
        n = len(pairs)
        results[name] = {key: v / n for key, v in sums.items()}
        results[name]["seconds_per_question"] = (time.perf_counter() - t0) / n
    print(
        f"\nARAGOG, {len(pairs)} questions, k={args.k}, extractive answerer (means over questions)"
    )
    cols = [
        "f1",
        "precision",
        "answer_recall",
        "context_recall",
        "lead_f1",
        "lead_recall",
        "answer_tokens",
        "seconds_per_question",
    ]
    print(f"{'retriever':10s} " + " ".join(f"{c:>14s}" for c in cols))
    for name, m in results.items():
        print(f"{name:10s} " + " ".join(f"{m[c]:14.3f}" for c in cols))
    if args.save_hits:
        import pickle

        args.save_hits.write_bytes(pickle.dumps(saved))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"k": args.k, "questions": len(pairs), "results": results}, indent=1)
        )
    if args.plot:
        plot(results, args.plot, args.k)


def plot(results: dict[str, dict[str, float]], out: Path, k: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    metrics = ["f1", "answer_recall", "context_recall", "lead_f1"]
    x = np.arange(len(metrics))
    width = 0.8 / len(results)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for i, (name, m) in enumerate(results.items()):
        ax.bar(x + i * width, [m[c] for c in metrics], width, label=name)
    ax.set_xticks(x + width * (len(results) - 1) / 2, metrics)
    ax.set_ylabel("mean over questions")
    ax.set_title(f"ARAGOG extractive answers, k={k}")
    ax.legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    print(f"plot: {out}")


if __name__ == "__main__":
    main()

"""Choose the extractive answerer's budget and weights on the ARAGOG development half.

Questions are split deterministically: the first half (0..53) is development, the second half
(54..106) held out. Hits (hybrid, k=5) come from ``--hits`` (a pickle ``{retriever: [hits per
question]}`` written by ``aragog_answers.py --save-hits``); sentence embeddings are cached in
memory, so the grid costs one embedding pass. Prints the best configurations by dev token F1
among those whose dev answer recall is not below the old default's, then old vs chosen on both
halves with paired-bootstrap 95% CIs.

Usage: python benchmarks/aragog_tune.py --hits benchmarks/out/aragog_hits.pkl [--json OUT]
"""

from __future__ import annotations

import argparse
import itertools
import json
import pickle
import sys
from pathlib import Path

import numpy as np

from aspectrag.config import setup_threads, shared_data_dir
from aspectrag.evaluate.metrics import paired_bootstrap
from aspectrag.generate.extractive import ExtractiveGenerator
from aspectrag.index import Index

sys.path.insert(0, str(Path(__file__).resolve().parent))
from aragog_answers import evidence_text, normalise_tokens, overlap  # noqa: E402

OLD = {"budget_tokens": None, "lexical_weight": 0.0, "redundancy_weight": 0.0}


class CachedEmbedder:
    """Memoises ``encode`` per (kind, text) around a real embedder."""

    def __init__(self, inner):  # type: ignore[no-untyped-def]
        self.inner, self.memo = inner, {}

    def encode(self, texts, kind="document"):  # type: ignore[no-untyped-def]
        todo = [t for t in dict.fromkeys(texts) if (kind, t) not in self.memo]
        if todo:
            for t, v in zip(todo, self.inner.encode(todo, kind=kind)["dense"], strict=True):
                self.memo[(kind, t)] = np.asarray(v, np.float32)
        return {"dense": np.stack([self.memo[(kind, t)] for t in texts])}


def per_question(gen, pairs, hits):  # type: ignore[no-untyped-def]
    """(n, 4) array: F1, precision, recall, answer tokens per question."""
    rows = []
    for (q, truth), h in zip(pairs, hits, strict=True):
        ans = evidence_text(gen.generate(q, h).answer)
        p, r, f = overlap(ans, truth)
        rows.append((f, p, r, len(normalise_tokens(ans))))
    return np.array(rows)


def grid() -> list[dict]:
    """The configurations tried on the development half."""
    return [{"budget_tokens": b, "lexical_weight": lw, "redundancy_weight": rw,
             "max_sentences": ms, "margin": 0.25}
            for b, lw, rw, ms in itertools.product([25, 35, 45, 60], [0.2, 0.4], [0.3],
                                                   [3, 4])]


def summary(rows: np.ndarray) -> dict[str, float]:
    return {"f1": float(rows[:, 0].mean()), "precision": float(rows[:, 1].mean()),
            "answer_recall": float(rows[:, 2].mean()), "answer_tokens": float(rows[:, 3].mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--hits", type=Path, required=True)
    ap.add_argument("--index", type=Path, default=Path(".aspectrag-bench/aragog"))
    ap.add_argument("--retriever", default="hybrid")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    setup_threads()
    bench = json.loads((shared_data_dir() / "aragog" / "benchmark.json").read_text())
    pairs = list(zip(bench["questions"], bench["ground_truths"], strict=True))
    hits = pickle.loads(args.hits.read_bytes())[args.retriever]
    half = len(pairs) // 2
    emb = CachedEmbedder(Index(args.index).embedder)
    old = per_question(ExtractiveGenerator(emb, **OLD), pairs, hits)
    new_default = per_question(ExtractiveGenerator(emb), pairs, hits)
    tried = []
    for cfg in grid():
        rows = per_question(ExtractiveGenerator(emb, **cfg), pairs, hits)
        tried.append((cfg, rows))
        d = summary(rows[:half])
        print("dev", cfg, {k: round(v, 3) for k, v in d.items()}, flush=True)
    # chosen on dev: best F1 among configurations whose dev recall is not below the old one's
    ok = [t for t in tried if t[1][:half, 2].mean() >= old[:half, 2].mean()] or tried
    cfg, rows = max(ok, key=lambda t: t[1][:half, 0].mean())
    report: dict = {"retriever": args.retriever, "k": 5, "dev_questions": half,
                    "held_out_questions": len(pairs) - half, "old_settings": OLD,
                    "chosen_on_dev": cfg, "grid": [{**c, **summary(r[:half])} for c, r in tried]}
    for part, sl in (("dev", slice(0, half)), ("held_out", slice(half, None))):
        rec = {"old": summary(old[sl]), "new": summary(rows[sl]),
               "new_default": summary(new_default[sl])}
        for j, m in enumerate(["f1", "precision", "answer_recall"]):
            diff, lo, hi = paired_bootstrap(rows[sl, j], old[sl, j])["mean"]
            rec[f"{m}_diff_ci95"] = [diff, lo, hi]
        report[part] = rec
    print(json.dumps({k: report[k] for k in ("chosen_on_dev", "dev", "held_out")}, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

"""Extra cost of the multi-head embedder over plain embedding (target: <= 10%).

Same process, same texts (SciFact abstracts, title + text, truncated at 256 tokens like
chunks), same batch size; the two embedders share one loaded model and alternate, the best of
``--rounds`` rounds is kept for each. Also times an ingest of the same documents into a fresh
SQLite index with and without per-head vectors (12 more vector rows per chunk).

    python benchmarks/multihead_cost.py [--texts 256] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from aspectrag.config import setup_threads, shared_data_dir
from aspectrag.embed.hf import HFEmbedder
from aspectrag.embed.multihead import MultiHeadEmbedder


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--texts", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ingest-docs", type=int, default=300)
    args = ap.parse_args()
    setup_threads()
    corpus = (
        Path(os.environ.get("ASPECTRAG_SHARED_DATA", shared_data_dir())) / "scifact/corpus.jsonl"
    )
    if not corpus.exists():
        raise SystemExit(f"{corpus}: missing (set ASPECTRAG_SHARED_DATA)")
    docs = [json.loads(line) for line in corpus.open()][: max(args.texts, args.ingest_docs)]
    texts = [f"{d['title']}\n{d['text']}" for d in docs[: args.texts]]
    plain = HFEmbedder(batch_size=32)
    multi = MultiHeadEmbedder(batch_size=32)
    vars(multi)["model"], vars(multi)["tokenizer"] = plain.model, plain.tokenizer
    plain.encode(texts[:32])
    multi.encode(texts[:32])
    best = {"plain": float("inf"), "multihead": float("inf")}
    for _ in range(args.rounds):
        for name, emb in (("plain", plain), ("multihead", multi)):
            t0 = time.perf_counter()
            emb.encode(texts)
            best[name] = min(best[name], time.perf_counter() - t0)
    print(
        f"encode {len(texts)} texts (load average {os.getloadavg()[0]:.1f}): "
        f"plain {best['plain']:.2f} s, multi-head {best['multihead']:.2f} s, "
        f"extra {100 * (best['multihead'] / best['plain'] - 1):+.1f}%"
    )

    from aspectrag.ingest.pipeline import ingest
    from aspectrag.store.sqlite import SQLiteStore

    with tempfile.TemporaryDirectory() as tmp:
        sub = Path(tmp) / "corpus.jsonl"
        with sub.open("w") as fh:
            for d in docs[: args.ingest_docs]:
                fh.write(json.dumps(d) + "\n")
        times = {}
        for name, emb in (("plain", plain), ("multihead", multi)):
            store = SQLiteStore(Path(tmp) / name)
            rep = ingest(store, emb, [str(sub)], progress=False)
            times[name] = (rep.seconds, rep.embed_seconds, rep.chunks)
            size = sum(f.stat().st_size for f in (Path(tmp) / name).rglob("*") if f.is_file())
            times[name] += (size,)
        (tp, ep, n, sp), (tm, em, _, sm) = times["plain"], times["multihead"]
        print(
            f"ingest {args.ingest_docs} docs / {n} chunks: plain {tp:.1f} s (embedding "
            f"{ep:.1f} s), multi-head {tm:.1f} s (embedding {em:.1f} s): extra "
            f"{100 * (tm / tp - 1):+.1f}% overall, {tm - em - (tp - ep):+.2f} s outside "
            f"embedding; index folder {sp / 1e6:.1f} MB vs {sm / 1e6:.1f} MB"
        )


if __name__ == "__main__":
    main()

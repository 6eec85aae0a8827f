"""Extra cost of the multi-head embedder over plain embedding (target: <= 10%).

Same process, same texts (SciFact abstracts, title + text, truncated at 256 tokens like
chunks), same batch size; the two embedders share one loaded model and alternate for
``--rounds`` rounds (CPU time; the paired ratio's median is printed). On a shared machine the
round-to-round noise exceeds the effect, so the multi-head additions (hook capture, per-head
pooling, packing) are also timed in isolation against the forward passes. Finally an ingest of
the same documents into a fresh SQLite index with and without per-head vectors (12 more
vector rows per chunk) gives the end-to-end difference and the index sizes.

    python benchmarks/multihead_cost.py [--texts 256] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from aspectrag.config import setup_threads, shared_data_dir
from aspectrag.embed.hf import HFEmbedder
from aspectrag.multihead.embedder import MultiHeadEmbedder


def extra_work(emb: MultiHeadEmbedder, texts: list[str]) -> tuple[float, float]:
    """CPU seconds of (the multi-head additions, the plain forward passes) over ``texts``:
    the forward runs once with the hook; pooling and packing are then timed on the captured
    tensors, 10 times to get above the timer resolution."""
    import torch

    from aspectrag.embed.pooling import pool_tokens
    from aspectrag.multihead.layout import pack_heads
    from aspectrag.multihead.model import locate_attention_output

    module, _ = locate_attention_output(emb.model, emb.layer)
    captured = []
    handle = module.register_forward_pre_hook(lambda _m, a: captured.append(a[0]))
    forward = extra = 0.0
    try:
        with torch.inference_mode():
            for i in range(0, len(texts), emb.batch_size):
                enc = emb.tokenize(texts[i : i + emb.batch_size])
                c0 = time.process_time()
                emb.model(**enc)
                forward += time.process_time() - c0
                ctx, mask = captured.pop(), enc["attention_mask"]
                c0 = time.process_time()
                for _ in range(10):
                    v = pool_tokens(ctx, mask, emb.pooling).float()
                    pack_heads(v.reshape(len(v), emb.num_heads, emb.head_dim).numpy())
                extra += (time.process_time() - c0) / 10
    finally:
        handle.remove()
    return extra, forward


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--texts", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=5)
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
    cpu: dict[str, list[float]] = {"plain": [], "multihead": []}
    for _ in range(args.rounds):
        for name, emb in (("plain", plain), ("multihead", multi)):
            c0 = time.process_time()
            emb.encode(texts)
            cpu[name].append(time.process_time() - c0)
    ratios = [m / p for p, m in zip(cpu["plain"], cpu["multihead"], strict=True)]
    print(
        f"encode {len(texts)} texts, CPU s per round (load average {os.getloadavg()[0]:.1f}): "
        f"plain {[round(x, 1) for x in cpu['plain']]}, multi-head "
        f"{[round(x, 1) for x in cpu['multihead']]}; paired ratio median "
        f"{statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})"
    )
    # the extra work itself, timed in isolation: hook capture + per-head pooling + packing
    extra_s, forward_s = extra_work(multi, texts)
    print(
        f"extra work of the multi-head path: {1000 * extra_s:.1f} ms vs forward passes "
        f"{1000 * forward_s:.0f} ms = {100 * extra_s / forward_s:.2f}% (CPU time)"
    )

    from aspectrag.ingest.pipeline import ingest
    from aspectrag.multihead.stats import HeadStatsTracker
    from aspectrag.store.sqlite import SQLiteStore

    with tempfile.TemporaryDirectory() as tmp:
        sub = Path(tmp) / "corpus.jsonl"
        with sub.open("w") as fh:
            for d in docs[: args.ingest_docs]:
                fh.write(json.dumps(d) + "\n")
        times = {}
        for name, emb in (("plain", plain), ("multihead", multi)):
            store = SQLiteStore(Path(tmp) / name)
            rep = ingest(store, emb, [str(sub)], progress=False,
                         hooks=[HeadStatsTracker(store, emb)])
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

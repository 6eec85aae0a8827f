"""Search latency of multi-head retrieval vs dense at 10k chunks, per number of head groups G.

Target (issue 4): multi-head search adds <= 2 ms per query over dense at 10k chunks.

The store is a real SQLiteStore with 10,000 chunks (1,000 documents x 10) whose vectors are
random but shaped like the bundled MiniLM's (dense 384; G head spaces of 32 + 1 floats). Query
encoding is excluded from the timed part (both retrievers encode a query with the same single
forward pass; the per-head pooling adds microseconds, see ``multihead_cost.py``): the query
vectors are precomputed and the retrievers' encoders replaced by lookups. Timed: the whole
``retrieve(query, k)`` call (store searches, voting, chunk lookup, Hit construction).

    python benchmarks/multihead_latency.py [--chunks 10000] [--queries 200] [--k 10]

Prints one line per G with ms/query (median of 5 rounds) for dense and multi-head, the
difference, and the bytes per chunk of the head spaces.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from aspectrag.config import setup_threads
from aspectrag.multihead.layout import head_space, pack_heads
from aspectrag.multihead.retriever import MultiHeadRetriever
from aspectrag.retrieve.dense import DenseRetriever
from aspectrag.store.sqlite import SQLiteStore
from aspectrag.types import Chunk, Document

D, H, DH = 384, 12, 32


class _FixedEncoder:
    """Stands in for the embedder: returns precomputed query vectors by text."""

    def __init__(self, dense: dict[str, np.ndarray], heads: dict[str, np.ndarray], g: int) -> None:
        self.dense, self.heads, self.groups, self.num_heads = dense, heads, g, H
        self.name, self.dim, self.max_tokens = "bench", D, 256

    def encode(self, texts, *, kind="query", show_progress=False):  # type: ignore[no-untyped-def]
        return {"dense": np.stack([self.dense[t] for t in texts])}

    def encode_heads(self, texts, *, show_progress=False):  # type: ignore[no-untyped-def]
        return (np.stack([self.dense[t] for t in texts]), np.stack([self.heads[t] for t in texts]))


def build_store(folder: Path, n_chunks: int, groups: int, rng: np.random.Generator) -> SQLiteStore:
    store = SQLiteStore(folder)
    per_doc = 10
    with store.writer() as w:
        for d in range(n_chunks // per_doc):
            doc = Document(
                f"doc{d}", f"/bench/doc{d}.txt", f"Doc {d}", "x" * 100, fingerprint=str(d)
            )
            chunks = [
                Chunk(f"doc{d}#{i}", doc.doc_id, doc.source, doc.title, i, f"chunk {i}", 0, 10)
                for i in range(per_doc)
            ]
            dense = rng.normal(size=(per_doc, D)).astype(np.float32)
            dense /= np.linalg.norm(dense, axis=1, keepdims=True)
            heads = pack_heads(rng.normal(size=(per_doc, groups, DH)) + 0.5)
            vectors = {"dense": dense} | {head_space(g): heads[:, g] for g in range(groups)}
            w.upsert(doc, chunks, vectors)
    store.refresh()
    return store


def timed(fn, queries: list[str], k: int, rounds: int = 7) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Best (min) over rounds of the mean ms per query: ``(wall, cpu)``. CPU time (this process,
    all threads) is what a query costs without the other processes of a shared machine;
    wall time includes waiting for a core."""
    for q in queries[:10]:
        fn(q, k)
    wall, cpu = [], []
    for _ in range(rounds):
        t0, c0 = time.perf_counter(), time.process_time()
        for q in queries:
            fn(q, k)
        wall.append(1000 * (time.perf_counter() - t0) / len(queries))
        cpu.append(1000 * (time.process_time() - c0) / len(queries))
    return min(wall), min(cpu)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunks", type=int, default=10_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--groups", type=int, nargs="*", default=[1, 2, 3, 4, 6, 12])
    args = ap.parse_args()
    setup_threads()
    rng = np.random.default_rng(0)
    queries = [f"query {i}" for i in range(args.queries)]
    qdense = rng.normal(size=(len(queries), D)).astype(np.float32)
    qdense /= np.linalg.norm(qdense, axis=1, keepdims=True)
    print(
        f"{args.chunks} chunks, {args.queries} queries, k={args.k}; ms/query, best of 7 "
        f"rounds; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    print(
        f"{'G':>3} {'dense wall/cpu':>15} {'multihead wall/cpu':>19} {'extra wall/cpu':>15} "
        f"{'head B/chunk':>13}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for g in args.groups:
            store = build_store(Path(tmp) / f"g{g}", args.chunks, g, rng)
            qheads = rng.normal(size=(len(queries), g, DH)).astype(np.float32) + 0.5
            enc = _FixedEncoder(
                dict(zip(queries, qdense, strict=True)), dict(zip(queries, qheads, strict=True)), g
            )
            dense = DenseRetriever(store, enc)  # type: ignore[arg-type]
            mh = MultiHeadRetriever(store, _as_mh(enc))
            mh.embedder = enc  # type: ignore[assignment]
            mh.retrieve("query 0", args.k)  # loads the head statistics once
            dw, dc = timed(dense.retrieve, queries, args.k)
            mw, mc = timed(mh.retrieve, queries, args.k)
            print(
                f"{g:>3} {dw:>7.2f} / {dc:<5.2f} {mw:>10.2f} / {mc:<6.2f} "
                f"{mw - dw:>+7.2f} / {mc - dc:<+5.2f} {g * (DH + 1) * 4:>13}",
                flush=True,
            )
            store.close()


def _as_mh(enc: _FixedEncoder):  # type: ignore[no-untyped-def]
    """A MultiHeadEmbedder shell for the constructor (its model is never loaded)."""
    from aspectrag.multihead.embedder import MultiHeadEmbedder

    class Shell(MultiHeadEmbedder):
        num_heads = H  # type: ignore[assignment]
        head_dim = DH  # type: ignore[assignment]
        pooling = "cls"  # type: ignore[assignment]

        def apply_config(self, cfg) -> None:  # type: ignore[no-untyped-def]
            pass

    return Shell()


if __name__ == "__main__":
    main()

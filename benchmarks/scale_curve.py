"""Scale curve of the embedded SQLite index at 10k / 100k / 1M chunks (issue 13's acceptance).

Per size, two child processes (so that each one's peak RSS is its own, read with ``os.wait4``
and from ``/proc/self/status`` ``VmHWM`` after every phase):

- **build**: real text (SciFact abstracts split by the pipeline's own splitter with the bundled
  tokenizer, repeated with distinct sources: ``incremental_add.write_corpus`` + the pipeline's
  ``read_source``) written straight through the store writer (``SQLiteStore.writer().upsert``)
  in transactions of ``--batch`` chunks, vectors synthetic and drawn before the timer
  (so "ingest chunks/s" excludes embedding), then ``store.refresh()`` (BM25 built from all
  chunks, one vector matrix per space read from SQLite and saved under ``derived/``); bytes on
  disk per chunk of the whole index folder.
- **query**: opens the index as a fresh process would, times loading the derived indexes and
  building the FAISS HNSW graphs (dense, then each head, one at a time) that the store builds
  on first use at >= ``ann_threshold`` (50k) chunks, then warm per-query latency of the real
  retrievers (``DenseRetriever``, ``HybridRetriever`` convex depth 100, ``MultiHeadRetriever``
  12 heads + dense voter, unweighted votes, no centring) on SciFact query texts with synthetic
  query vectors (a stand-in embedder returns them, so no model time is in the figures), and
  recall@10 of the store's search (HNSW above the threshold) against exact inner-product
  search over the vectors as stored in SQLite (float32 for dense, so a float16 graph's rounding
  counts against it). Peak RSS "serving" is the high-water mark after loading and every
  retriever's queries, before the benchmark's own ground truth and probes.

Vectors: a Gaussian mixture per space (``--centres`` random unit centres; each vector is its
centre plus isotropic noise, cosine ~``--spread-cos`` to it, then normalised), dense 384-d and
12 head spaces in the multi-head store layout ``[v/|v|, 1/|v|]`` (33-d). Uniform random unit
vectors (as ``incremental_add.SyntheticEmbedder`` draws) are the worst case for HNSW (no
neighbourhood structure); their recall is also measured (``--uniform-recall``, on a separate
``DenseIndex`` up to 200k). Neither is real embedding data: the recall figures bracket, not
measure, recall on real MiniLM vectors.

    python benchmarks/scale_curve.py --sizes 10000 100000 1000000 [--head-hnsw N] [--numba-min-docs N]

BM25 scores with bm25s' numba backend from ``--numba-min-docs`` chunks (default 100k), as the
HTTP service does; ``--numba-min-docs 0`` measures the command line's numpy backend.
Results: benchmarks/results/scale/scale_curve.json, .txt and .png.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from incremental_add import DATA, SyntheticEmbedder, write_corpus  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "scale"
N_HEADS, HEAD_DIM, DENSE_DIM = 12, 32, 384


def mem_mb() -> dict[str, float]:
    """``VmHWM`` (peak RSS so far) and ``VmRSS`` of this process, MiB (Linux ``/proc``)."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, val = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            out[key] = int(val.split()[0]) / 1024
    return out


class Mixture:
    """Unit vectors ``(n, d)`` float32 from a Gaussian mixture: ``c_k + s g`` normalised, with
    ``centres`` random unit ``c_k`` and ``s`` set so that the cosine to the centre is ~``cos``."""

    def __init__(self, d: int, centres: int, cos: float, seed: int) -> None:
        c = np.random.default_rng(seed).standard_normal((centres, d))
        self.centres = c / np.linalg.norm(c, axis=1, keepdims=True)
        self.sigma = float(np.sqrt((1 / cos**2 - 1) / d))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        x = self.centres[rng.integers(len(self.centres), size=n)]
        x = x + self.sigma * rng.standard_normal(x.shape)
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def mixtures(args: argparse.Namespace) -> dict[str, Mixture]:
    spaces = {"dense": DENSE_DIM} | {f"head{h}": HEAD_DIM for h in range(N_HEADS)}
    return {s: Mixture(d, args.centres, args.spread_cos, 1000 + i)
            for i, (s, d) in enumerate(spaces.items())}


def chunk_vectors(mix: dict[str, Mixture], rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Stored vectors of ``n`` chunks: ``dense`` (n, 384) unit; ``head*`` (n, 33) in the
    multi-head layout ``[v/|v|, 1/|v|]`` with ``1/|v|`` log-normal, median 0.6, p5-p95
    ~0.40-0.89: what the bundled multi-head embedder gives on SciFact abstracts (300 measured:
    median 0.60, p5 0.395, p95 0.885)."""
    out = {"dense": mix["dense"].sample(rng, n)}
    for h in range(N_HEADS):
        inv = (0.6 * np.exp(rng.normal(0.0, 0.24, size=(n, 1)))).astype(np.float32)  # 1 / |v|
        out[f"head{h}"] = np.hstack([mix[f"head{h}"].sample(rng, n), inv])
    return out


def base_documents(work: Path) -> list[tuple[Any, list[Any]]]:
    """SciFact documents and their chunks as the pipeline makes them (BEIR loader, recursive
    splitter counting the bundled tokenizer's tokens)."""
    from aspectrag.ingest.pipeline import (
        DEFAULT_MAX_FILE_BYTES,
        SourceTally,
        make_splitter,
        read_source,
    )

    docs = [json.loads(x) for x in (DATA / "scifact" / "corpus.jsonl").open(encoding="utf-8")]
    docs = [d for d in docs if d.get("text") or d.get("title")]
    f = write_corpus(work / "corpus", docs, 1, "c")[0]
    splitter = make_splitter(SyntheticEmbedder())
    return [(d, c) for d, c, _ in read_source(str(f), splitter, lambda s: None, set(),
                                               DEFAULT_MAX_FILE_BYTES, (), SourceTally())]


def copies(base: list[tuple[Any, list[Any]]], n_chunks: int) -> Iterator[tuple[Any, list[Any]]]:
    """Documents of copy 0, 1, ... of ``base`` with distinct sources, until ``n_chunks`` chunks."""
    from aspectrag.store.base import chunk_key

    total, c = 0, 0
    while True:
        for doc, chunks in base:
            src = f"scale/c{c}/corpus.jsonl#{doc.doc_id}"
            d = dataclasses.replace(doc, source=src, doc_id=f"c{c}-{doc.doc_id}")
            yield d, [dataclasses.replace(ch, chunk_id=chunk_key(src, ch.index), source=src,
                                          doc_id=d.doc_id) for ch in chunks]
            total += len(chunks)
            if total >= n_chunks:
                return
        c += 1


def folder_bytes(path: Path) -> dict[str, int]:
    """Bytes of every file under ``path``, by top-level entry (``derived/...`` one level more)."""
    out: dict[str, int] = {}
    for f in path.rglob("*"):
        if f.is_file():
            rel = f.relative_to(path).parts
            key = "/".join(rel[:2]) if rel[0] == "derived" else rel[0]
            out[key] = out.get(key, 0) + f.stat().st_size
    return out


def sqlite_pages(db: Path) -> dict[str, dict[str, int]]:
    """Pages of every table / index of the SQLite file by page type (SQLite's ``dbstat``):
    ``{name: {"<type>_pages": n, "bytes": .., "payload": ..}}`` (leaf/internal/overflow)."""
    import sqlite3

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    out: dict[str, dict[str, int]] = {}
    for name, kind, pages, size, payload in conn.execute(
            "SELECT name, pagetype, COUNT(*), SUM(pgsize), SUM(payload) FROM dbstat "
            "GROUP BY name, pagetype"):
        d = out.setdefault(name, {"bytes": 0, "payload": 0})
        d[f"{kind}_pages"] = pages
        d["bytes"] += size
        d["payload"] += payload
    conn.close()
    return out


def child_build(args: argparse.Namespace, save) -> None:  # type: ignore[no-untyped-def]
    from aspectrag.store.base import SpaceSpec
    from aspectrag.store.sqlite import SQLiteStore

    res: dict[str, Any] = {}
    t0 = time.perf_counter()
    base = base_documents(args.index.parent / "corpus-tmp")
    shutil.rmtree(args.index.parent / "corpus-tmp")
    res["split_seconds_one_copy"] = time.perf_counter() - t0
    res["base_docs"], res["base_chunks"] = len(base), sum(len(c) for _, c in base)
    mix, rng = mixtures(args), np.random.default_rng(7)
    store = SQLiteStore(args.index)
    specs = [SpaceSpec("dense", DENSE_DIM)] + [SpaceSpec(f"head{h}", HEAD_DIM + 1)
                                                for h in range(N_HEADS)]
    write_s = vec_s = 0.0
    n = commits = 0
    batch: list[tuple[Any, list[Any]]] = []

    def commit() -> None:
        nonlocal write_s, vec_s, n, commits
        m = sum(len(c) for _, c in batch)
        t = time.perf_counter()
        vecs = chunk_vectors(mix, rng, m)
        vec_s += time.perf_counter() - t
        t = time.perf_counter()
        with store.writer() as w:
            if commits == 0:
                w.declare_spaces(specs)
                w.set_meta("embedder", SyntheticEmbedder.name)
            off = 0
            for doc, chunks in batch:
                w.upsert(doc, chunks, {s: v[off : off + len(chunks)] for s, v in vecs.items()})
                off += len(chunks)
        write_s += time.perf_counter() - t
        n, commits = n + m, commits + 1
        batch.clear()
        print(f"  [{args.n}] written {n} chunks, {n / write_s:.0f} chunks/s", file=sys.stderr,
              flush=True)

    for item in copies(base, args.n):
        batch.append(item)
        if sum(len(c) for _, c in batch) >= args.batch:
            commit()
    if batch:
        commit()
    res.update(chunks=n, commits=commits, write_seconds=write_s, vector_draw_seconds=vec_s,
               ingest_chunks_per_s=n / write_s, mem_after_write=mem_mb())
    save(res)
    t = time.perf_counter()
    store.refresh()
    res["refresh_seconds"] = time.perf_counter() - t
    res["mem_after_refresh"] = mem_mb()
    store.close()
    sizes = folder_bytes(args.index)
    res.update(disk_bytes=sum(sizes.values()), disk_by_part=sizes,
               bytes_per_chunk=sum(sizes.values()) / n)
    if n <= 200_000:  # dbstat reads every page: seconds at 100k, minutes at 1M
        res["sqlite_pages"] = sqlite_pages(args.index / "index.sqlite")
    save(res)


class FixedQueryEmbedder:
    """Embedder stand-in for the retrievers: the pre-drawn synthetic vectors of known query
    texts (``encode`` -> ``{"dense": (q, 384)}``, ``encode_heads`` -> dense and (q, 12, 32))."""

    name = SyntheticEmbedder.name
    dim = DENSE_DIM

    def __init__(self, texts: list[str], dense: np.ndarray, heads: np.ndarray) -> None:
        self.row = {t: i for i, t in enumerate(texts)}
        self.dense, self.heads = dense, heads

    def encode(self, texts, *, kind: str = "query", show_progress: bool = False):  # type: ignore[no-untyped-def]
        return {"dense": self.dense[[self.row[t] for t in texts]]}

    def encode_heads(self, texts):  # type: ignore[no-untyped-def]
        i = [self.row[t] for t in texts]
        return self.dense[i], self.heads[i]


def latency(fn, queries: list[str], warmup: int = 10) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Warm per-query wall time of ``fn(query)``: p50 / p99 / mean in ms over ``queries``."""
    for q in queries[:warmup]:
        fn(q)
    t = []
    for q in queries:
        t0 = time.perf_counter()
        fn(q)
        t.append(time.perf_counter() - t0)
    ms = np.array(t) * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean()), "n": len(ms)}


def exact_top10(blocks: Iterator[tuple[np.ndarray, np.ndarray]], q: np.ndarray) -> np.ndarray:
    """Exact top-10 row ids ``(m, 10)`` by inner product of queries ``q`` (m, d) float32 over
    ``(row ids (b,), vectors (b, d))`` blocks, merged block by block (memory: one block)."""
    best_ids = np.full((len(q), 0), -1, np.int64)
    best = np.zeros((len(q), 0), np.float32)
    for ids, vecs in blocks:
        s = q @ np.asarray(vecs, dtype=np.float32).T
        ids_all = np.concatenate([best_ids, np.broadcast_to(ids, s.shape)], axis=1)
        s_all = np.concatenate([best, s], axis=1)
        top = np.argpartition(-s_all, min(9, s_all.shape[1] - 1), axis=1)[:, :10]
        best_ids = np.take_along_axis(ids_all, top, axis=1)
        best = np.take_along_axis(s_all, top, axis=1)
    return best_ids


def stored_blocks(store, space: str, size: int = 50_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:  # type: ignore[no-untyped-def]
    """The vectors of ``space`` as written to SQLite (float32 for dense: the truth a float16
    HNSW graph is measured against), ``size`` rows at a time."""
    from aspectrag.store.vector_codec import decode

    dtype = store.vector_dtype(space)
    cur = store._conn().execute(
        "SELECT chunk, vec FROM vectors WHERE space=? ORDER BY chunk", (space,))
    while rows := cur.fetchmany(size):
        yield (np.array([r[0] for r in rows], np.int64),
               np.stack([decode(r[1], dtype) for r in rows]))


def recall_at_10(store, space: str, q: np.ndarray) -> float:  # type: ignore[no-untyped-def]
    """Mean recall@10 of the store's search of ``space`` (its ``DenseIndex``: HNSW at >=
    ``ann_threshold`` rows, as ``vector_search`` uses it) against exact top-10 by inner product
    over the stored vectors (``q``: (m, d) float32), computed block by block so that the ground
    truth adds little to the process's memory."""
    idx = store.dense_index(space)
    got = idx.search(q, 10)
    if idx._hnsw is None:  # exact search over the decoded stored rows: the same numbers
        v = idx.vectors
        blocks = ((idx.rowids[a : a + 50_000], v[a : a + 50_000]) for a in range(0, len(v), 50_000))
    else:
        blocks = stored_blocks(store, space)
    truth = exact_top10(blocks, q)
    return float(np.mean([len(set(g[0].tolist()) & set(t.tolist())) / 10
                          for g, t in zip(got, truth, strict=True)]))


def equal_norm_recall(x: np.ndarray, q: np.ndarray) -> dict[str, float]:
    """Recall@10 and build seconds of the proposed fix for head spaces: HNSW (the store's
    parameters) over ``x`` (n, d) augmented with ``sqrt(R^2 - |x|^2)`` (R = max norm) so that
    every row has norm R and inner-product order equals Euclidean order (Bachrach et al. 2014,
    the MIPS-to-NN reduction); queries ``q`` (m, d) get a 0 there, so scores are unchanged."""
    import faiss

    nr = np.linalg.norm(x, axis=1, keepdims=True)
    xa = np.hstack([x, np.sqrt(np.maximum(nr.max() ** 2 - nr**2, 0))]).astype(np.float32)
    qa = np.hstack([q, np.zeros((len(q), 1), np.float32)])
    idx = faiss.IndexHNSWFlat(xa.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
    idx.hnsw.efConstruction = 80
    t = time.perf_counter()
    idx.add(xa)
    build = time.perf_counter() - t
    idx.hnsw.efSearch = 128
    _, got = idx.search(qa, 10)
    exact = np.argpartition(-(q @ x.T), 9, axis=1)[:, :10]
    rec = [len(set(g.tolist()) & set(e.tolist())) / 10 for g, e in zip(got, exact, strict=True)]
    return {"recall_at_10": float(np.mean(rec)), "hnsw_build_seconds": build}


def uniform_recall(n: int, threshold: int) -> dict[str, float]:
    """Recall@10 of the store's ``DenseIndex`` (HNSW at n >= threshold) on ``n`` uniform random
    unit 384-d vectors with 200 uniform queries, against exact search; and the build seconds."""
    from aspectrag.store.dense_index import DenseIndex

    rng = np.random.default_rng(3)
    x = rng.standard_normal((n, DENSE_DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = rng.standard_normal((200, DENSE_DIM)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    idx = DenseIndex(x, np.arange(n), threshold)
    t = time.perf_counter()
    idx._ensure_hnsw()
    build = time.perf_counter() - t
    got = idx.search(q, 10)
    exact = np.argpartition(-(q @ x.T), 9, axis=1)[:, :10]
    rec = [len(set(g[0].tolist()) & set(e.tolist())) / 10 for g, e in zip(got, exact, strict=True)]
    return {"recall_at_10": float(np.mean(rec)), "hnsw_build_seconds": build}


def child_query(args: argparse.Namespace, save) -> None:  # type: ignore[no-untyped-def]
    from aspectrag.multihead import retriever as mh
    from aspectrag.multihead.layout import head_queries
    from aspectrag.retrieve.dense import DenseRetriever
    from aspectrag.retrieve.hybrid import HybridRetriever
    from aspectrag.store.sqlite import SQLiteStore

    texts = [json.loads(x)["text"] for x in (DATA / "scifact" / "queries.jsonl").open()]
    texts = list(dict.fromkeys(texts))[: args.queries]
    mix, rng = mixtures(args), np.random.default_rng(11)
    dense = mix["dense"].sample(rng, len(texts))
    heads = np.stack([mix[f"head{h}"].sample(rng, len(texts)) for h in range(N_HEADS)], axis=1)
    emb = FixedQueryEmbedder(texts, dense, heads)
    if args.numba_min_docs:  # BM25 scoring as the HTTP service does (``service/engine.py``)
        from aspectrag.store import bm25_index

        bm25_index.NUMBA_MIN_DOCS = args.numba_min_docs
    store = SQLiteStore(args.index, readonly=True)
    res: dict[str, Any] = {"chunks": store.stats()["chunks"], "queries": len(texts),
                           "mem_open": mem_mb(), "bm25_numba_min_docs": args.numba_min_docs}
    t = time.perf_counter()
    store.refresh()  # load BM25 and every space's vectors from derived/ (as the service does)
    res["load_derived_seconds"] = time.perf_counter() - t
    res["mem_after_load"] = mem_mb()
    big = res["chunks"] >= store.ann_threshold
    t = time.perf_counter()
    store.dense_index("dense")._ensure_hnsw()
    res["hnsw_build_seconds"] = {"dense": time.perf_counter() - t}
    res["mem_after_dense_hnsw"] = mem_mb()
    dense_r = DenseRetriever(store, emb)
    hybrid_r = HybridRetriever(store, emb)
    res["latency"] = {
        "bm25_depth100": latency(lambda q: store.keyword_search([q], 100), texts),
        "dense": latency(lambda q: dense_r.retrieve(q, 10), texts),
        "hybrid": latency(lambda q: hybrid_r.retrieve(q, 10), texts)}
    save(res)
    limit = N_HEADS if args.head_hnsw is None else args.head_hnsw
    for h in range(N_HEADS if big else 0):
        if h >= limit:
            break
        t = time.perf_counter()
        store.dense_index(f"head{h}")._ensure_hnsw()
        res["hnsw_build_seconds"][f"head{h}"] = time.perf_counter() - t
        res[f"mem_after_head{h}_hnsw"] = mem_mb()
        save(res)
    if not big or limit >= N_HEADS:
        with mock.patch.object(mh, "query_embedder", lambda e, s: e):
            multi_r = mh.MultiHeadRetriever(store, emb, centre=False, votes="unweighted")
        res["latency"]["multihead"] = latency(lambda q: multi_r.retrieve(q, 10), texts)
    res["mem_serving"] = mem_mb()  # peak of loading + every retriever's queries
    save(res)
    res["recall_at_10"] = {"dense": recall_at_10(store, "dense", dense), "ann": big,
                           "dense_ann_dtype": store.ann_dtype}
    if not big or limit >= N_HEADS:
        qv = head_queries(heads)
        res["recall_at_10"]["heads_mean"] = float(np.mean(
            [recall_at_10(store, f"head{h}", np.ascontiguousarray(qv[:, h])) for h in range(N_HEADS)]))
    res["mem_final"] = mem_mb()
    save(res)
    if big and not args.no_equal_norm:
        qv = head_queries(heads)
        res["head0_equal_norm_hnsw"] = equal_norm_recall(store.dense_index("head0").vectors,
                                                         np.ascontiguousarray(qv[:, 0]))
        save(res)
    if args.uniform_recall and big and res["chunks"] <= 200_000:
        res["uniform_recall_dense"] = uniform_recall(res["chunks"], store.ann_threshold)
        save(res)


def run_child(role: str, n: int, args: argparse.Namespace) -> dict[str, Any]:
    """Run one child (``role`` build / query) for size ``n``; its JSON plus ``os.wait4``'s
    max RSS and exit status."""
    out = args.work / f"{role}-{n}.json"
    cmd = [sys.executable, __file__, "--child", role, "--n", str(n), "--index",
           str(args.work / f"idx-{n}"), "--out", str(out), "--batch", str(args.batch),
           "--queries", str(args.queries), "--centres", str(args.centres),
           "--spread-cos", str(args.spread_cos)]
    cmd += ["--head-hnsw", str(args.head_hnsw)] if args.head_hnsw is not None else []
    cmd += ["--uniform-recall"] if args.uniform_recall else []
    cmd += ["--no-equal-norm"] if args.no_equal_norm else []
    cmd += ["--numba-min-docs", str(args.numba_min_docs)]
    t = time.perf_counter()
    p = subprocess.Popen(cmd)
    _, status, ru = os.wait4(p.pid, 0)
    res = json.loads(out.read_text()) if out.exists() else {}
    res.update(exit_status=os.waitstatus_to_exitcode(status), wall_seconds=time.perf_counter() - t,
               child_maxrss_mb=ru.ru_maxrss / 1024)
    return res


def summary(results: dict[str, Any]) -> str:
    lines = [f"scale curve ({results['load']}; 1 thread per process; vectors: {results['vectors']})"]
    for n, r in results["sizes"].items():
        b, q = r.get("build", {}), r.get("query", {})
        lines.append(
            f"{n} chunks: ingest {b.get('ingest_chunks_per_s', 0):.0f} chunks/s excl. embedding "
            f"(writer), refresh {b.get('refresh_seconds', 0):.0f} s, "
            f"{b.get('bytes_per_chunk', 0):.0f} B/chunk on disk, peak RSS build "
            f"{b.get('child_maxrss_mb', 0):.0f} MiB / query process serving (load + queries) "
            f"{q.get('mem_serving', {}).get('VmHWM', float('nan')):.0f} MiB, with the recall "
            f"ground truth {q.get('mem_final', {}).get('VmHWM', float('nan')):.0f} MiB, with "
            f"the equal-norm / uniform probes {q.get('child_maxrss_mb', 0):.0f} MiB)")
        lat = q.get("latency", {})
        lines.append("  warm p50/p99 ms: " + ", ".join(
            f"{k} {v['p50_ms']:.1f}/{v['p99_ms']:.1f}" for k, v in lat.items()))
        lines.append(f"  recall@10 {q.get('recall_at_10')}; uniform-random dense "
                     f"{q.get('uniform_recall_dense')}; head0 with the equal-norm fix "
                     f"{q.get('head0_equal_norm_hnsw')}")
        lines.append("  HNSW build s: " + ", ".join(
            f"{k} {v:.0f}" for k, v in q.get("hnsw_build_seconds", {}).items()))
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [int(n) for n in results["sizes"]]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    for name in ("dense", "hybrid", "multihead", "bm25_depth100"):
        pts = [(n, r["query"]["latency"][name]["p50_ms"]) for n, r in zip(
            sizes, results["sizes"].values(), strict=True) if name in r.get("query", {}).get("latency", {})]
        if pts:
            a.plot(*zip(*pts, strict=True), marker="o", label=name)
    a.axhline(20, ls=":", c="grey")
    a.set(xscale="log", yscale="log", xlabel="chunks", ylabel="warm p50 ms", title="query latency")
    a.legend()
    b.plot(sizes, [r.get("build", {}).get("child_maxrss_mb", np.nan) / 1024
                   for r in results["sizes"].values()], marker="o", label="ingest + refresh")
    b.plot(sizes, [r.get("query", {}).get("mem_serving", {}).get("VmHWM", np.nan) / 1024
                   for r in results["sizes"].values()], marker="o", label="serving (all HNSW)")
    b.axhline(4, ls=":", c="grey")
    b.set(xscale="log", xlabel="chunks", ylabel="GiB", title="peak RSS")
    b.legend()
    fig.suptitle(f"embedded SQLite index ({results['load']})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", nargs="+", type=int, default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--batch", type=int, default=50_000, help="chunks per write transaction")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--centres", type=int, default=1000)
    ap.add_argument("--spread-cos", type=float, default=0.6)
    ap.add_argument("--head-hnsw", type=int, help="build at most N head HNSW graphs (time)")
    ap.add_argument("--uniform-recall", action="store_true")
    ap.add_argument("--no-equal-norm", action="store_true",
                    help="skip the head0 equal-norm HNSW probe (minutes at 1M)")
    ap.add_argument("--numba-min-docs", type=int, default=100_000,
                    help="score BM25 with bm25s' numba backend from this many chunks, as the "
                         "HTTP service does (0: numpy always, as the command line does)")
    ap.add_argument("--load", default="under load", help="label: quiet / under load")
    ap.add_argument("--work", type=Path, default=Path("/tmp/scale_curve"))
    ap.add_argument("--keep", action="store_true", help="keep the indexes in --work")
    ap.add_argument("--tag", default="scale_curve", help="result file name stem")
    ap.add_argument("--child", choices=["build", "query"], help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--index", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--combine", nargs="+", type=Path,
                    help="merge these result JSONs (sizes) into --tag's files, run nothing")
    args = ap.parse_args()
    if args.combine:
        parts = [json.loads(p.read_text()) for p in args.combine]
        merged = {**parts[0], "sizes": {k: v for p in parts for k, v in p["sizes"].items()}}
        merged["sizes"] = dict(sorted(merged["sizes"].items(), key=lambda kv: int(kv[0])))
        write_results(merged, args.tag)
        return
    from aspectrag.cli.common import quiet_libraries
    from aspectrag.config import setup_threads

    setup_threads()
    quiet_libraries()
    if args.child:
        def save(res: dict[str, Any]) -> None:
            args.out.write_text(json.dumps(res, indent=1))
        (child_build if args.child == "build" else child_query)(args, save)
        return
    args.work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"load": args.load, "vectors": (
        f"Gaussian mixture, {args.centres} centres per space, cos~{args.spread_cos} to centre"),
        "sizes": {}}
    for n in args.sizes:
        r = results["sizes"][str(n)] = {"build": run_child("build", n, args)}
        r["query"] = run_child("query", n, args)
        if not args.keep:
            shutil.rmtree(args.work / f"idx-{n}", ignore_errors=True)
        write_results(results, args.tag)


def write_results(results: dict[str, Any], tag: str) -> None:
    """``<tag>.json`` / ``.txt`` (the summary, also printed) / ``.png`` under ``RESULTS``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{tag}.json").write_text(json.dumps(results, indent=1))
    text = summary(results)
    (RESULTS / f"{tag}.txt").write_text(text + "\n")
    print(text, flush=True)
    plot(results, RESULTS / f"{tag}.png")


if __name__ == "__main__":
    main()

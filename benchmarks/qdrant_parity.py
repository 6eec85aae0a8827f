"""Parity of the Qdrant store with the SQLite store (issue 13, acceptance "Parity"), and the
Qdrant hybrid choice (item 1: server-side fusion through the Query API or client-side convex
combination).

The SQLite evaluation indexes (SciFact: the ``aspectrag eval beir`` cache folder; MRAG
Wikipedia v1: the ``aspectrag eval mrag`` cache, index variant ``main``) are built if absent
(an ingest that is already complete does nothing; one in progress is waited for) and copied,
chunks and stored vectors of every space, into a ``qdrant+local://`` collection with
``aspectrag.store.copy.copy_store`` (no re-embedding; reused while the SQLite index is
unchanged). Then, on both stores:

- SciFact test nDCG@10 of bm25 / dense / hybrid (the product retrievers, the ``eval beir``
  path: 200 chunks per query collapsed to documents), with the per-query paired bootstrap
  (Qdrant - SQLite, 95% CI);
- MRAG Wikipedia v1 mean weighted (``mean_weighted_avg``) of ``standard`` (dense) and ``mrag``
  (multihead-heads), paired bootstrap stratified by aspect count;
- BM25 diagnostics (test queries): identical top-10 lists, score ratios on shared hits, the
  collection statistics both use (N, avgdl, chunks without a searchable token, hash
  collisions of the 32-bit term ids);
- the hybrid variants on the Qdrant store, SciFact train (dev) and test: client-side convex
  combination (the product's default) and RRF (c = 60), and server-side Query API fusion: a
  ``sparse bm25`` and a ``dense`` prefetch (limit ``max(100, k)`` each, as the client side) fused
  by ``RrfQuery(k=60)``, ``FusionQuery(RRF)`` (Qdrant's default k = 2) or ``FusionQuery(DBSF)``;
  choice by dev quality;
- latency per query of the hybrid variants on the Qdrant store (``--latency`` queries, one at a
  time, query vectors cached). Marked "under load" unless ``--quiet-machine`` is given.

The server-side variants are sent without the visibility filter of ``QdrantStore`` on the
freshly copied collection (``check`` finds no unfinished or superseded versions, so every
point is visible and the filter selects all): local mode evaluates a filter in Python point by
point (about 0.5 s per prefetch at 10k points). The latency table times them with and without
the filter.

Usage (heavy: ingest if absent, about 3,000 searches):
    /work/bin/heavy python benchmarks/qdrant_parity.py [--data ../shared/data] [--latency 50]
        [--n-boot 10000] [--skip-mrag] [--quiet-machine]
Writes benchmarks/results/qdrant_parity.{txt,json}.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import re
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aspectrag.config import setup_threads, shared_data_dir
from aspectrag.evaluate.beir import beir_run, default_eval_index, load_beir
from aspectrag.evaluate.metrics import paired_bootstrap, per_query_scores
from aspectrag.retrieve.factory import build_retriever
from aspectrag.retrieve.hits import to_hits
from aspectrag.settings import get_settings
from aspectrag.store.copy import copy_store
from aspectrag.store.factory import build_store
from aspectrag.types import Hit

TOL = 0.005
OUT = Path(__file__).resolve().parent / "results"
HYBRIDS = ("convex", "rrf-client", "server-rrf60", "server-rrf", "server-dbsf")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class MemoEmbedder:
    """An embedder wrapper that encodes each (text, kind) once (both stores and every
    retriever search the same query vectors; timings then exclude query encoding)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._memo: dict[tuple[str, str], dict[str, np.ndarray]] = {}

    def encode(self, texts: Sequence[str], kind: str = "document", **kw: Any) -> dict[str, np.ndarray]:
        missing = [t for t in dict.fromkeys(texts) if (kind, t) not in self._memo]
        if missing:
            got = self.inner.encode(list(missing), kind=kind, **kw)
            for j, t in enumerate(missing):
                self._memo[(kind, t)] = {s: np.asarray(v[j]) for s, v in got.items()}
        spaces = self._memo[(kind, texts[0])].keys()
        return {s: np.stack([self._memo[(kind, t)][s] for t in texts]) for s in spaces}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class ServerFusionRetriever:
    """Hybrid through the Query API: a sparse ``bm25`` and a ``dense`` prefetch fused on the
    Qdrant side (``fusion``: ``rrf60`` = ``RrfQuery(k=60)``, ``rrf`` = ``FusionQuery(RRF)``,
    Qdrant's k = 2, ``dbsf`` = ``FusionQuery(DBSF)``). ``filtered``: send the store's
    visibility filter in each prefetch (module doc)."""

    def __init__(self, store: Any, embedder: Any, fusion: str, *, depth: int = 100,
                 filtered: bool = False) -> None:
        self.store, self.embedder, self.fusion = store, embedder, fusion
        self.depth, self.filtered = depth, filtered
        self.name = f"server-{fusion}"

    def _fusion_query(self) -> Any:
        from qdrant_client import models

        if self.fusion == "rrf60":
            return models.RrfQuery(rrf=models.Rrf(k=60))
        return models.FusionQuery(fusion=models.Fusion.RRF if self.fusion == "rrf"
                                  else models.Fusion.DBSF)

    def retrieve_batch(self, queries: Sequence[str], k: int = 10,
                       sources: Sequence[str] | None = None) -> list[list[Hit]]:
        from qdrant_client import models

        from aspectrag.store.qdrant_model import SPARSE, visible

        st = self.store
        depth = max(self.depth, k)
        dense = self.embedder.encode(list(queries), kind="query")["dense"]
        sparse = st.weigher.queries(list(queries))
        flt = visible(int(st.read_state()["committed"])) if self.filtered else None
        reqs = []
        for (idx, val), vec in zip(sparse, dense, strict=True):
            pre = [models.Prefetch(query=vec.tolist(), using="dense", limit=depth, filter=flt)]
            if idx:
                pre.insert(0, models.Prefetch(query=models.SparseVector(indices=idx, values=val),
                                              using=SPARSE, limit=depth, filter=flt))
            reqs.append(models.QueryRequest(prefetch=pre, query=self._fusion_query(), limit=k,
                                            filter=flt, with_payload=["chunk_id"]))
        out = []
        for r in st.client.query_batch_points(st.collection, reqs):
            out.append(to_hits(st, [(p.payload["chunk_id"], float(p.score)) for p in r.points], k))
        return out

    def retrieve(self, query: str, k: int = 10, sources: Sequence[str] | None = None) -> list[Hit]:
        return self.retrieve_batch([query], k, sources)[0]


def qdrant_copy(sqlite_store: Any, name: str) -> tuple[Any, dict[str, Any]]:
    """The ``qdrant+local://<cache>/qdrant-parity/<name>`` copy of ``sqlite_store`` (made with
    ``copy_store``, or reused while the SQLite index's generation and size are unchanged)."""
    folder = get_settings().cache_dir / "qdrant-parity"
    q = build_store(f"qdrant+local://{folder}/{name}")
    stamp = {"from": str(sqlite_store.location), "generation": sqlite_store.generation,
             "stats": sqlite_store.stats()}
    side = q.side_path("copied_from.json")
    assert side is not None
    if side.exists() and json.loads(side.read_text()).get("stamp") == stamp \
            and q.stats() == stamp["stats"]:
        info = json.loads(side.read_text())
        log(f"{name}: reusing the Qdrant copy ({info['seconds']:.0f} s to make)")
        return q, {**info, "reused": True}
    for coll in (q.collection, q.meta_collection):
        if q.client.collection_exists(coll):
            q.client.delete_collection(coll)
    log(f"{name}: copying {stamp['stats']} into {q.location}")
    t = time.perf_counter()
    rep = copy_store(sqlite_store, q)
    info = {"stamp": stamp, "seconds": round(time.perf_counter() - t, 1),
            "documents": rep.documents, "chunks": rep.chunks, "vector_rows": rep.vectors,
            "meta_keys": rep.meta_keys}
    side.parent.mkdir(parents=True, exist_ok=True)
    side.write_text(json.dumps(info))
    log(f"{name}: copied in {info['seconds']} s")
    return q, {**info, "reused": False}


def boot(a: np.ndarray, b: np.ndarray, n_boot: int, strata: Sequence[int] | None = None
         ) -> dict[str, float]:
    d, lo, hi = paired_bootstrap(a, b, strata, n_boot=n_boot)["mean"]
    return {"diff": round(d, 4), "lo": round(lo, 4), "hi": round(hi, 4)}


def ndcg(retriever: Any, ds: Any) -> np.ndarray:
    return per_query_scores(ds.qrels, beir_run(retriever, ds.queries))


def bm25_diagnostics(sq: Any, qd: Any, queries: Sequence[str]) -> dict[str, Any]:
    """How the two BM25 implementations differ on ``queries`` and in their statistics."""
    from aspectrag.store.qdrant_terms import term_index

    a, b = sq.keyword_search(queries, 100), qd.keyword_search(queries, 100)
    same10 = sum([s.chunk_id for s in x[:10]] == [s.chunk_id for s in y[:10]]
                 for x, y in zip(a, b, strict=True))
    set10 = sum({s.chunk_id for s in x[:10]} == {s.chunk_id for s in y[:10]}
                for x, y in zip(a, b, strict=True))
    jac = [len({s.chunk_id for s in x} & {s.chunk_id for s in y})
           / max(1, len({s.chunk_id for s in x} | {s.chunk_id for s in y}))
           for x, y in zip(a, b, strict=True)]
    ratios = []
    for x, y in zip(a, b, strict=True):
        ys = {s.chunk_id: s.score for s in y}
        ratios += [ys[s.chunk_id] / s.score for s in x[:10] if s.chunk_id in ys and s.score > 0]
    toks = qd.weigher.tokens([c.index_text() for c in sq.iter_chunks()])
    vocab = {t for ts in toks for t in ts}
    ids = {term_index(t) for t in vocab}
    lengths = [len(t) for t in toks]
    first = [(x[0].chunk_id if x else None) == (y[0].chunk_id if y else None)
             for x, y in zip(a, b, strict=True)]
    return {
        "queries": len(queries), "identical_top10_lists": same10, "identical_top10_sets": set10,
        "identical_first_hit": int(sum(first)), "mean_jaccard_top100": round(float(np.mean(jac)), 4),
        "score_ratio_qdrant_over_sqlite": {
            "median": round(float(np.median(ratios)), 6),
            "max_abs_dev": round(float(np.max(np.abs(np.asarray(ratios) - 1))), 6)},
        "chunks": len(toks), "chunks_without_tokens": int(sum(n == 0 for n in lengths)),
        "avgdl_bm25s_recomputed": round(float(np.mean(lengths)), 4),
        "avgdl_qdrant_state": qd.read_state()["avgdl"],
        "vocabulary": len(vocab), "term_ids": len(ids), "colliding_terms": len(vocab) - len(ids),
    }


def latency(named: dict[str, Any], queries: Sequence[str], k: int = 10) -> dict[str, dict]:
    """Median / p95 ms per query of each retriever, one query at a time (vectors cached)."""
    out = {}
    for name, r in named.items():
        r.retrieve_batch(list(queries[:2]), k)  # warm
        ms = []
        for q in queries:
            t = time.perf_counter()
            r.retrieve_batch([q], k)
            ms.append((time.perf_counter() - t) * 1000)
        ms.sort()
        out[name] = {"median_ms": round(statistics.median(ms), 1),
                     "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 1), "queries": len(ms)}
        log(f"latency {name}: {out[name]}")
    return out


def hybrid_variants(qd: Any, emb: Any) -> dict[str, Any]:
    return {
        "convex": build_retriever("hybrid", qd, emb),
        "rrf-client": build_retriever("hybrid", qd, emb, fusion="rrf"),
        "server-rrf60": ServerFusionRetriever(qd, emb, "rrf60"),
        "server-rrf": ServerFusionRetriever(qd, emb, "rrf"),
        "server-dbsf": ServerFusionRetriever(qd, emb, "dbsf"),
    }


def scifact(args: argparse.Namespace) -> dict[str, Any]:
    from aspectrag.index import Index

    root = args.data / "scifact"
    test, train = load_beir(root, "test"), load_beir(root, "train")
    path = default_eval_index(root)
    idx = Index(path)
    log(f"SciFact: SQLite index {path} (ingest: nothing to do when complete)")
    rep = idx.ingest([str(test.corpus)])
    log(f"SciFact: {rep.chunks} chunks written, stats {idx.store.stats()}")
    sq = idx.store
    emb = MemoEmbedder(idx.embedder)
    qd, copy = qdrant_copy(sq, "scifact_" + re.sub(r"[^A-Za-z0-9_-]", "_", path.name))
    chk = qd.check()
    stale = [n for n in chk.notes if "unfinished or superseded" in n]
    assert chk.ok and not stale, (chk.problems, stale)
    emb.encode(list(test.queries.values()) + list(train.queries.values()), kind="query")
    res: dict[str, Any] = {"index": str(path), "qdrant": qd.location, "copy": copy,
                           "check": chk.notes, "test": {}, "train": {}}
    pq: dict[str, dict[str, np.ndarray]] = {"test": {}, "train": {}}
    for name in ("bm25", "dense", "hybrid"):
        for kind, store in (("sqlite", sq), ("qdrant", qd)):
            t = time.perf_counter()
            pq["test"][f"{kind}:{name}"] = ndcg(build_retriever(name, store, emb), test)
            log(f"test {kind} {name}: nDCG@10 {pq['test'][f'{kind}:{name}'].mean():.4f} "
                f"({time.perf_counter() - t:.0f} s)")
        a, b = pq["test"][f"qdrant:{name}"], pq["test"][f"sqlite:{name}"]
        res["test"][name] = {"sqlite": round(float(b.mean()), 4),
                             "qdrant": round(float(a.mean()), 4),
                             "qdrant_minus_sqlite": boot(a, b, args.n_boot),
                             "within_tol": bool(abs(a.mean() - b.mean()) <= TOL),
                             "queries_differing": int(np.sum(np.abs(a - b) > 1e-9))}
    res["bm25_diagnostics"] = bm25_diagnostics(sq, qd, list(test.queries.values()))
    log(f"bm25 diagnostics: {res['bm25_diagnostics']}")
    variants = hybrid_variants(qd, emb)
    for split, ds in (("train", train), ("test", test)):
        for name, r in variants.items():
            if split == "test" and name == "convex":
                pq[split][name] = pq["test"]["qdrant:hybrid"]
            else:
                t = time.perf_counter()
                pq[split][name] = ndcg(r, ds)
                log(f"{split} {name}: nDCG@10 {pq[split][name].mean():.4f} "
                    f"({time.perf_counter() - t:.0f} s)")
        if split == "train":
            pq[split]["sqlite:hybrid"] = ndcg(build_retriever("hybrid", sq, emb), ds)
        res[split]["hybrid_variants"] = {
            name: {"ndcg@10": round(float(pq[split][name].mean()), 4),
                   "minus_convex": boot(pq[split][name], pq[split]["convex"], args.n_boot)}
            for name in HYBRIDS}
    res["train"]["sqlite_hybrid"] = round(float(pq["train"]["sqlite:hybrid"].mean()), 4)
    dev = res["train"]["hybrid_variants"]
    res["hybrid_choice"] = max(HYBRIDS, key=lambda n: dev[n]["ndcg@10"])
    qs = list(test.queries.values())[: args.latency]
    timed = {**variants,
             "server-rrf60 (filtered)": ServerFusionRetriever(qd, emb, "rrf60", filtered=True),
             "server-dbsf (filtered)": ServerFusionRetriever(qd, emb, "dbsf", filtered=True),
             "sqlite convex": build_retriever("hybrid", sq, emb)}
    res["latency"] = {"under_load": not args.quiet_machine, "k": 10,
                      "per_query": latency(timed, qs)}
    return res


def mrag(args: argparse.Namespace) -> dict[str, Any]:
    from aspectrag.evaluate.mrag import load_mrag, run_strategy
    from aspectrag.evaluate.mrag_strategies import MragEvaluation, strategy

    ds = load_mrag("wikipedia", args.data)
    ev = MragEvaluation(ds)
    idx = ev.index("main")
    sq = idx.store
    qd, copy = qdrant_copy(sq, "mrag_" + re.sub(r"[^A-Za-z0-9_-]", "_", ev.root.name)[:60])
    ev.warm()
    res: dict[str, Any] = {"index": str(ev.root / "main"), "qdrant": qd.location, "copy": copy,
                           "queries": len(ds.queries), "strategies": {}}
    for name in ("standard", "mrag"):
        st = strategy(name)
        runs = {}
        for kind, store in (("sqlite", sq), ("qdrant", qd)):
            r = build_retriever(st.retriever, store, ev.embedder, **dict(st.options))
            t = time.perf_counter()
            runs[kind] = run_strategy(ds, name, r)
            log(f"MRAG {kind} {name}: mean weighted "
                f"{runs[kind].summary(ds)['mean_weighted_avg']:.4f} "
                f"({time.perf_counter() - t:.0f} s)")
        a, b = runs["qdrant"].per_query["weighted_avg"], runs["sqlite"].per_query["weighted_avg"]
        ms, mq = (runs[k].summary(ds)["mean_weighted_avg"] for k in ("sqlite", "qdrant"))
        res["strategies"][name] = {
            "sqlite": ms, "qdrant": mq, "qdrant_minus_sqlite": boot(a, b, args.n_boot, ds.strata),
            "within_tol": bool(abs(mq - ms) <= TOL),
            "identical_rankings": int(sum(x == y for x, y in zip(
                runs["qdrant"].rankings, runs["sqlite"].rankings, strict=True)))}
    return res


def table(res: dict[str, Any]) -> str:
    lines = [f"Qdrant store parity (qdrant-client {res['qdrant_client']}, local mode) vs SQLite",
             f"tolerance {TOL}; CIs: paired bootstrap 95%, {res['n_boot']} replicates", ""]
    sf = res.get("scifact")
    if sf:
        lines += ["SciFact test nDCG@10 (300 queries)",
                  f"{'retriever':<10}{'SQLite':>8}{'Qdrant':>8}  {'Qdrant-SQLite [95% CI]':<28}"
                  f"{'ok':<4}{'queries differing':>18}"]
        for n, v in sf["test"].items():
            if n == "hybrid_variants":
                continue
            d = v["qdrant_minus_sqlite"]
            lines.append(f"{n:<10}{v['sqlite']:>8.4f}{v['qdrant']:>8.4f}  "
                         f"{d['diff']:+.4f} [{d['lo']:+.4f}, {d['hi']:+.4f}]{'':<6}"
                         f"{'yes' if v['within_tol'] else 'NO':<4}{v['queries_differing']:>18}")
        dg = sf["bm25_diagnostics"]
        lines += ["", "BM25 diagnostics (test queries, k = 100)",
                  f"  identical top-10 lists {dg['identical_top10_lists']}/{dg['queries']}, sets "
                  f"{dg['identical_top10_sets']}, first hit {dg['identical_first_hit']}; mean "
                  f"Jaccard@100 {dg['mean_jaccard_top100']}",
                  f"  score ratio Qdrant/SQLite on shared top-10 hits: median "
                  f"{dg['score_ratio_qdrant_over_sqlite']['median']}, max |ratio-1| "
                  f"{dg['score_ratio_qdrant_over_sqlite']['max_abs_dev']}",
                  f"  chunks {dg['chunks']} (without a searchable token: "
                  f"{dg['chunks_without_tokens']}); avgdl recomputed {dg['avgdl_bm25s_recomputed']}"
                  f", Qdrant state {dg['avgdl_qdrant_state']}; vocabulary {dg['vocabulary']}, "
                  f"term ids {dg['term_ids']} ({dg['colliding_terms']} colliding)",
                  "", "Hybrid on the Qdrant store: nDCG@10 (minus client-side convex [95% CI])",
                  f"{'variant':<14}{'train (dev, 809)':>30}{'test (300)':>30}"]
        for n in HYBRIDS:
            cells = []
            for split in ("train", "test"):
                v = sf[split]["hybrid_variants"][n]
                d = v["minus_convex"]
                cells.append(f"{v['ndcg@10']:.4f} ({d['diff']:+.4f} [{d['lo']:+.4f}, "
                             f"{d['hi']:+.4f}])")
            lines.append(f"{n:<14}{cells[0]:>30}{cells[1]:>30}")
        lines += [f"SQLite hybrid (convex) on train: {sf['train']['sqlite_hybrid']:.4f}",
                  f"chosen by dev quality: {sf['hybrid_choice']}", "",
                  f"Hybrid latency, k = 10, one query at a time, query vectors cached"
                  f"{' (MEASURED UNDER LOAD)' if sf['latency']['under_load'] else ''}"]
        for n, v in sf["latency"]["per_query"].items():
            lines.append(f"  {n:<26} median {v['median_ms']:8.1f} ms  p95 {v['p95_ms']:8.1f} ms")
    mr = res.get("mrag")
    if mr:
        lines += ["", f"MRAG Wikipedia v1 mean weighted ({mr['queries']} queries; CI stratified "
                  "by aspect count)",
                  f"{'strategy':<10}{'SQLite':>8}{'Qdrant':>8}  {'Qdrant-SQLite [95% CI]':<28}"
                  f"{'ok':<4}{'identical rankings':>19}"]
        for n, v in mr["strategies"].items():
            d = v["qdrant_minus_sqlite"]
            lines.append(f"{n:<10}{v['sqlite']:>8.4f}{v['qdrant']:>8.4f}  "
                         f"{d['diff']:+.4f} [{d['lo']:+.4f}, {d['hi']:+.4f}]{'':<6}"
                         f"{'yes' if v['within_tol'] else 'NO':<4}"
                         f"{v['identical_rankings']:>12}/{mr['queries']}")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=shared_data_dir())
    ap.add_argument("--n-boot", type=int, default=10_000)
    ap.add_argument("--latency", type=int, default=50, help="test queries timed per variant")
    ap.add_argument("--skip-mrag", action="store_true")
    ap.add_argument("--skip-scifact", action="store_true")
    ap.add_argument("--quiet-machine", action="store_true",
                    help="the machine is quiet: latency figures are not marked under load")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    setup_threads()
    res: dict[str, Any] = {"qdrant_client": importlib.metadata.version("qdrant-client"),
                           "n_boot": args.n_boot, "tolerance": TOL,
                           "command": "python benchmarks/qdrant_parity.py " + " ".join(sys.argv[1:])}
    if not args.skip_scifact:
        res["scifact"] = scifact(args)
    if not args.skip_mrag:
        res["mrag"] = mrag(args)
    text = table(res)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "qdrant_parity.txt").write_text(text)
    (args.out / "qdrant_parity.json").write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()

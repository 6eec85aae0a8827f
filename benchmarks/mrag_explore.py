"""Exploration of Multi-Head RAG variants on the MRAG data sets, in memory (numpy).

Not the shipped retriever (that one goes through the Store: ``aspectrag eval mrag``): this
script caches raw per-head vectors of several layers and poolings once, then scores many
voting variants quickly against the standard embedding with paired bootstrap CIs.

    python benchmarks/mrag_explore.py wikipedia [--level doc|chunk] [--variants NAME ...]

Prints one line per variant: mean weighted_avg, its difference to standard with a 95% CI,
and the RSR difference per aspect bucket (at k = aspects).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from aspectrag.evaluate.metrics import paired_bootstrap
from aspectrag.evaluate.mrag import (
    K_MAX,
    MragDataset,
    load_mrag,
    per_query_scores,
    score_rankings,
    summarise,
)
from aspectrag.multihead.embedder import MultiHeadEmbedder

CACHE = Path.home() / ".cache" / "aspectrag" / "mrag-explore"
LAYERS = (-1, -2, -3)
POOLINGS = ("mean", "cls", "last")


def units_text(ds: MragDataset, level: str, emb: MultiHeadEmbedder) -> tuple[list[str], list[str]]:
    """Texts to embed and the doc_id of each (doc level: title + text, truncated by the
    model; chunk level: the product splitter's chunks with their title header)."""
    if level == "doc":
        return [f"{d.title}\n{d.text}" for d in ds.documents], [d.doc_id for d in ds.documents]
    from aspectrag.ingest.pipeline import make_splitter

    splitter = make_splitter(emb)
    texts, owners = [], []
    for d in ds.documents:
        for c in splitter.split(d):
            texts.append(c.index_text())
            owners.append(d.doc_id)
    return texts, owners


def encode_cached(ds: MragDataset, level: str) -> dict[str, np.ndarray]:
    """Cached raw vectors: ``dense_d``, ``dense_q``, ``dense_f`` and ``h{layer}{pool}_{d,q,f}``
    (documents/chunks, queries, fusion sub-queries), plus ``owner`` (doc index per row)."""
    path = CACHE / f"{ds.name}-{level}-{ds.fingerprint()}.npz"
    if path.exists():
        with np.load(path) as z:
            return dict(z)
    CACHE.mkdir(parents=True, exist_ok=True)
    emb = MultiHeadEmbedder(batch_size=16)
    texts, owners = units_text(ds, level, emb)
    doc_index = {d.doc_id: i for i, d in enumerate(ds.documents)}
    fusion = [f for q in ds.queries for f in q.fusion]
    out: dict[str, np.ndarray] = {"owner": np.array([doc_index[o] for o in owners])}
    for part, tx in (("d", texts), ("q", [q.text for q in ds.queries]), ("f", fusion)):
        t0 = time.time()
        dense, raw = emb.encode_raw(tx, layers=LAYERS, poolings=POOLINGS, show_progress=True)
        print(f"encoded {len(tx)} {part} texts in {time.time() - t0:.0f} s", file=sys.stderr)
        out[f"dense_{part}"] = dense
        for (ly, p), v in raw.items():
            out[f"h{ly}{p}_{part}"] = v.astype(np.float16)
    np.savez(path, **out)
    return out


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def head_scales(d: np.ndarray) -> np.ndarray:
    """s_i = a_i * b_i over document head vectors ``(n, H, dh)`` (exact, closed form)."""
    a = np.linalg.norm(d, axis=-1).mean(0)
    u = unit(d)
    n = len(d)
    s = u.sum(0)
    mean_cos = ((s * s).sum(-1) - n) / (n * (n - 1))
    return a * (1 - mean_cos)


def vote(
    q: np.ndarray,
    d: np.ndarray,
    weights: np.ndarray,
    n: int,
    fn: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """MRAG voting: per space top-n by cosine; votes w_i * 2^-rank (or ``fn(rank, sim)``).

    ``q`` ``(nq, S, dh)``, ``d`` ``(nd, S, dh)`` unit vectors; returns votes ``(nq, nd)``."""
    nq, nd = (
        len(q[0]) if isinstance(q, list) else len(q),
        len(d[0]) if isinstance(d, list) else len(d),
    )
    qs = q if isinstance(q, list) else [q[:, i] for i in range(q.shape[1])]
    dsp = d if isinstance(d, list) else [d[:, i] for i in range(d.shape[1])]
    votes = np.zeros((nq, nd))
    rows = np.arange(nq)[:, None]
    ranks = np.arange(n)[None, :]
    for s in range(len(qs)):
        if weights[s] == 0:
            continue
        sims = qs[s] @ dsp[s].T
        top = np.argpartition(-sims, n - 1, axis=1)[:, :n]
        top = np.take_along_axis(top, np.argsort(-np.take_along_axis(sims, top, 1), 1), 1)
        w = (
            weights[s] * (2.0**-ranks)
            if fn is None
            else fn(ranks, np.take_along_axis(sims, top, 1))
        )
        votes[rows, top] += w
    return votes


def rank_docs(
    scores: np.ndarray, owner: np.ndarray, n_docs: int, agg: str = "first"
) -> list[list[int]]:
    """Rows (chunks or docs) scores -> doc rankings. ``agg``: ``first`` (best row per doc,
    i.e. first occurrence) or ``sum`` (sum of a doc's row scores: document-level votes)."""
    if agg == "sum":
        doc_scores = np.zeros((scores.shape[0], n_docs))
        for j in range(scores.shape[0]):
            doc_scores[j] = np.bincount(owner, weights=scores[j], minlength=n_docs)
        best = np.argsort(-doc_scores, axis=1, kind="stable")[:, :K_MAX]
        return best.tolist()
    out = []
    order = np.argsort(-scores, axis=1, kind="stable")
    for row in order:
        seen: list[int] = []
        ss: set[int] = set()
        for r in row:
            o = int(owner[r])
            if o not in ss:
                ss.add(o)
                seen.append(o)
                if len(seen) == K_MAX:
                    break
        out.append(seen)
    return out


class Explorer:
    def __init__(self, ds: MragDataset, z: dict[str, np.ndarray]) -> None:
        self.ds, self.z = ds, z
        self.owner = z["owner"]
        self.ids = [d.doc_id for d in ds.documents]
        self.base: dict | None = None

    def evaluate(self, name: str, scores: np.ndarray, agg: str = "first") -> dict:
        ranks = rank_docs(scores, self.owner, len(self.ids), agg)
        rankings = [[self.ids[i] for i in r] for r in ranks]
        sc = score_rankings(self.ds, rankings)
        pq = per_query_scores(self.ds, sc)
        summ = summarise(self.ds, pq)
        res = {"name": name, "pq": pq, "summary": summ}
        if self.base is None:
            self.base = res
        self.report(res)
        return res

    def report(self, res: dict) -> None:
        b = self.base
        ci = paired_bootstrap(
            res["pq"]["weighted_avg"], b["pq"]["weighted_avg"], self.ds.strata, n_boot=2000
        )
        rsr = paired_bootstrap(res["pq"]["rsr"], b["pq"]["rsr"], self.ds.strata, n_boot=2000)
        m = ci["mean"]
        rs = " ".join(
            f"{k}:{v[0]:+.2f}{'!' if v[2] < 0 else ''}" for k, v in rsr.items() if k != "mean"
        )
        wb = " ".join(f"{k}:{v[0]:+.2f}" for k, v in ci.items() if k != "mean")
        print(
            f"{res['name']:<44} mwa {res['summary']['mean_weighted_avg']:.3f} "
            f"d {m[0]:+.3f} [{m[1]:+.3f},{m[2]:+.3f}] | dWavg {wb} | dRSR {rs}",
            flush=True,
        )

    # -- building blocks --------------------------------------------------------------------
    def heads(self, layer: int, pool: str, part: str) -> np.ndarray:
        return self.z[f"h{layer}{pool}_{part}"].astype(np.float32)

    def dense_scores(self, part: str = "q") -> np.ndarray:
        return self.z[f"dense_{part}"] @ self.z["dense_d"].T


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset", choices=["wikipedia", "legal", "chem"])
    ap.add_argument("--level", default="doc", choices=["doc", "chunk"])
    ap.add_argument("--n", type=int, default=K_MAX, help="per-head top-n")
    ap.add_argument(
        "--suite",
        default="grid",
        choices=["grid", "extra"],
        help="grid: layers x poolings x centring; extra: dense voter, whitening, "
        "vote decay, document-level votes, centre estimates, |v| vs |v - mu|",
    )
    args = ap.parse_args()
    from aspectrag.config import setup_threads

    setup_threads()
    ds = load_mrag(args.dataset)
    z = encode_cached(ds, args.level)
    ex = Explorer(ds, z)
    n = args.n
    ex.evaluate("standard", ex.dense_scores())
    dd, dq = z["dense_d"], z["dense_q"]
    H = 12
    split_d, split_q = unit(dd.reshape(len(dd), H, -1)), unit(dq.reshape(len(dq), H, -1))
    ex.evaluate("split", vote(split_q, split_d, np.ones(H), n))
    if args.suite == "extra":
        extra_suite(ex, n)
        return
    for layer in (-1, -2):
        for pool in POOLINGS:
            d, q = ex.heads(layer, pool, "d"), ex.heads(layer, pool, "q")
            s = head_scales(d)
            ex.evaluate(f"mrag L{layer} {pool}", vote(unit(q), unit(d), s, n))
            mu = d.mean(0)
            sc = head_scales(d - mu)
            ex.evaluate(f"mrag L{layer} {pool} centred", vote(unit(q - mu), unit(d - mu), sc, n))
            ex.evaluate(
                f"mrag L{layer} {pool} centred unweighted",
                vote(unit(q - mu), unit(d - mu), np.ones(H), n),
            )


def whiten(d: np.ndarray, q: np.ndarray, eps: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Per-head ZCA whitening fitted on the documents; returns unit ``(q, d)``."""
    dw, qw = np.empty_like(d), np.empty_like(q)
    for h in range(d.shape[1]):
        x = d[:, h]
        mu = x.mean(0)
        w, v = np.linalg.eigh(np.cov((x - mu).T))
        m = v @ np.diag(1 / np.sqrt(w + eps * w.max())) @ v.T
        dw[:, h], qw[:, h] = (x - mu) @ m, (q[:, h] - mu) @ m
    return unit(qw), unit(dw)


def extra_suite(ex: Explorer, n: int) -> None:
    """The variants behind the default (CLS, centred, unweighted, dense voter weight 2)."""
    z, H = ex.z, 12
    dd, dq = z["dense_d"], z["dense_q"]
    d, q = ex.heads(-1, "cls", "d"), ex.heads(-1, "cls", "q")
    mu = d.mean(0)
    qc, dc = unit(q - mu), unit(d - mu)

    def spaces(qh: np.ndarray, dh: np.ndarray, w: float) -> tuple[list, list, np.ndarray]:
        qs = [qh[:, i] for i in range(H)] + ([dq] if w else [])
        ds = [dh[:, i] for i in range(H)] + ([dd] if w else [])
        return qs, ds, np.r_[np.ones(H), [w] if w else []]

    for w in (0.0, 1.0, 2.0, 4.0):
        v = vote(*spaces(qc, dc, w), n)
        ex.evaluate(f"cls centred unweighted + dense w{w:g}", v)
        ex.evaluate(f"cls centred unweighted + dense w{w:g}, doc votes", v, agg="sum")
    qs, ds, wts = spaces(qc, dc, 2.0)
    ex.evaluate(
        "... dense w2, importance votes",
        vote(qs, ds, np.r_[head_scales(d - mu) / head_scales(d - mu).mean(), 2], n),
    )
    for c in (1, 5, 20):
        ex.evaluate(
            f"cls centred, votes 1/(c+r) c={c}",
            vote(qc, dc, np.ones(H), n, fn=lambda r, _s, c=c: 1.0 / (c + r)),
        )
    qw, dw = whiten(d, q)
    ex.evaluate("cls whitened unweighted", vote(qw, dw, np.ones(H), n))
    for m in (256, 1024):
        mu0 = d[:m].mean(0)
        ex.evaluate(
            f"... dense w2, centre from the first {m} rows",
            vote(*spaces(unit(q - mu0), unit(d - mu0), 2.0), n),
        )
    nd = np.linalg.norm(d, axis=-1, keepdims=True)
    ex.evaluate(
        "... dense w2, (q-mu).(v-mu)/|v| (stored layout)",
        vote(*spaces(q - mu, (d - mu) / nd, 2.0), n),
    )
    ex.evaluate("dense centred", unit(dq - dd.mean(0)) @ unit(dd - dd.mean(0)).T)


if __name__ == "__main__":
    main()

"""The cost of adding (and removing) a few documents to a large embedded index, beyond embedding.

Issue 13's target: adding 10 documents to a 100k-chunk embedded index costs <= 2 s beyond
embedding them. The corpus is real text (SciFact abstracts, repeated with distinct ids until
the index holds ``--chunks`` chunks) so that BM25 has real vocabulary; vectors are synthetic
(a seeded random unit vector per text for ``dense`` and each of the 12 head spaces, the shapes
of the bundled multi-head embedder), so embedding costs ~nothing and what is measured is the
store: the write transaction plus bringing every derived index (BM25, one dense index per
vector space, the stacked head matrix) to the new generation, i.e. the first search after the
commit. Prints, per step, seconds for the ingest (without the embedder's time) and for the
first bm25 / dense / multihead search after it, and the warm search time for reference; then
the same add and remove with every change rebuilding the derived indexes from all chunks (the
design before base + delta segments, ``store/segments.py``) as the baseline of the same run.

    python benchmarks/incremental_add.py --chunks 10000 100000 [--json OUT]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ASPECTRAG_SHARED_DATA", ROOT.parent / "shared" / "data"))


class SyntheticEmbedder:
    """Embedder protocol with the bundled model's tokenizer and output shapes but random vectors:
    ``dense`` (n, 384) and ``head0..head11`` (n, 32), float32, L2-normalised, seeded by text."""

    name = "synthetic-minilm-shapes"
    dim = 384
    max_tokens = 256

    def __init__(self) -> None:
        from tokenizers import Tokenizer

        from aspectrag.embed.hf import default_model_path

        self.tokenizer = Tokenizer.from_file(str(Path(default_model_path()) / "tokenizer.json"))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def encode(self, texts: Sequence[str], *, kind: str = "document",
               show_progress: bool = False) -> dict[str, np.ndarray]:
        seeds = [int(hashlib.blake2b(t.encode(), digest_size=4).hexdigest(), 16) for t in texts]
        out: dict[str, np.ndarray] = {}
        for space, d in [("dense", 384)] + [(f"head{h}", 32) for h in range(12)]:
            v = np.stack([np.random.default_rng(s + len(space)).standard_normal(d) for s in seeds])
            out[space] = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
        return out


def write_corpus(folder: Path, docs: list[dict[str, str]], copies: int, tag: str) -> list[Path]:
    """``copies`` BEIR ``corpus.jsonl`` files (one folder each) of ``docs`` with distinct ids (``<tag><copy>-<id>``)."""
    paths = []
    for c in range(copies):
        p = folder / f"{tag}{c}" / "corpus.jsonl"  # the BEIR loader's file name
        p.parent.mkdir(parents=True)
        with p.open("w", encoding="utf-8") as fh:
            for d in docs:
                fh.write(json.dumps({**d, "_id": f"{tag}{c}-{d['_id']}"}) + "\n")
        paths.append(p)
    return paths


STEPS = ("add10", "remove10", "add10_full_rebuild", "remove10_full_rebuild")


def timed(fn) -> tuple[float, Any]:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    r = fn()
    return time.perf_counter() - t0, r


def first_searches(idx, query: str) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Seconds of the first store-level BM25, dense and 12-head search (derived indexes brought
    up to date on the way), then of the same three again (warm)."""
    st = idx.store
    q = idx.embedder.encode([query], kind="query")
    heads = [(f"head{h}", q[f"head{h}"]) for h in range(12)]
    calls = {"bm25": lambda: st.keyword_search([query], 10),
             "dense": lambda: st.vector_search("dense", q["dense"], 10),
             "heads": lambda: st.vector_search_spaces(heads, 10)}
    out = {f"first_{n}": timed(f)[0] for n, f in calls.items()}
    out.update({f"warm_{n}": timed(f)[0] for n, f in calls.items()})
    return out


def run(n_chunks: int, work: Path) -> dict[str, Any]:
    from aspectrag.index import Index

    docs = [json.loads(x) for x in (DATA / "scifact" / "corpus.jsonl").open(encoding="utf-8")]
    docs = [d for d in docs if d.get("text") or d.get("title")]
    emb = SyntheticEmbedder()
    idx = Index(work / f"idx-{n_chunks}", embedder=emb)
    base = work / f"base-{n_chunks}"
    base.mkdir()
    t_build = time.perf_counter()
    copies = 0
    while idx.store.stats()["chunks"] < n_chunks:
        copies += 1
        f = write_corpus(base, docs, 1, f"c{copies}-")[0]
        idx.ingest([f])
        print(f"  built {idx.store.stats()['chunks']} chunks", file=sys.stderr, flush=True)
    first_searches(idx, "cancer cell growth")  # derived indexes built and saved
    warm = {k: v for k, v in first_searches(idx, "cancer cell growth").items() if "warm" in k}
    t_build = time.perf_counter() - t_build
    out: dict[str, Any] = {"chunks": idx.store.stats()["chunks"], "build_seconds": t_build,
                           "warm": warm}
    add = work / f"add-{n_chunks}"
    add.mkdir()
    new = write_corpus(add, docs[:10], 1, "new-")[0]
    secs, rep = timed(lambda: idx.ingest([new]))
    out["add10"] = {"ingest_seconds": secs, "embed_seconds": rep.embed_seconds,
                    "ingest_beyond_embedding": secs - rep.embed_seconds,
                    **first_searches(idx, "cancer cell growth")}
    secs, _ = timed(lambda: idx.remove(str(new)))
    out["remove10"] = {"remove_seconds": secs, **first_searches(idx, "cancer cell growth")}
    # the baseline, in the same run: every change rebuilds the derived indexes from all chunks
    # (the design before base + delta segments)
    from aspectrag.store import segments

    saved = segments.MERGE_FRACTION, segments.MERGE_MIN_ROWS
    segments.MERGE_FRACTION, segments.MERGE_MIN_ROWS = 0.0, -1
    try:
        secs, rep = timed(lambda: idx.ingest([new]))
        out["add10_full_rebuild"] = {"ingest_seconds": secs, "embed_seconds": rep.embed_seconds,
                                     "ingest_beyond_embedding": secs - rep.embed_seconds,
                                     **first_searches(idx, "cancer cell growth")}
        secs, _ = timed(lambda: idx.remove(str(new)))
        out["remove10_full_rebuild"] = {"remove_seconds": secs,
                                        **first_searches(idx, "cancer cell growth")}
    finally:
        segments.MERGE_FRACTION, segments.MERGE_MIN_ROWS = saved
    for step in STEPS:
        s = out[step]
        s["total_beyond_embedding"] = (s.get("ingest_beyond_embedding", s.get("remove_seconds"))
                                       + s["first_bm25"] + s["first_dense"] + s["first_heads"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--chunks", nargs="+", type=int, default=[10_000, 100_000])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    from aspectrag.cli.common import quiet_libraries
    from aspectrag.config import setup_threads

    setup_threads()
    quiet_libraries()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.chunks:
            r = results[n] = run(n, Path(tmp))
            print(f"{r['chunks']} chunks (built in {r['build_seconds']:.0f} s); warm searches "
                  + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in r["warm"].items()))
            for step in STEPS:
                s = r[step]
                print(f"  {step}: " + ", ".join(f"{k} {v:.2f} s" for k, v in s.items()))
            for step in ("add10", "remove10"):
                new, old = (r[step]["total_beyond_embedding"],
                            r[step + "_full_rebuild"]["total_beyond_embedding"])
                print(f"  {step}: {new:.2f} s with segments vs {old:.2f} s rebuilding "
                      f"({old / new:.1f}x)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

"""Ray Data ingestion vs the in-process pipeline (issue 13, item 4).

Prints, on the same files and the same embedder (the bundled MiniLM, in the index layout the
settings give: with per-head vectors by default):

- chunks/s of the in-process ingest;
- chunks/s of ``--engine ray`` with 1 and with 2 embedding actors (a local Ray runtime of
  ``--cpus`` CPUs, started once and reused, so its start-up is not counted; the actors' model
  load is, as for a user);
- the single writer's throughput alone (the serial ceiling): the store's one write
  transaction of precomputed vectors, timed through the same staging + commit path
  (``commit_staged``), in chunks/s;
- an estimate of the speed-up on N machines from these figures (Amdahl: embedding scales with
  the actors, the driver's regrouping and the one writer do not).

Each ingest goes into a fresh index folder. Timings belong on a quiet machine; use
``--limit`` for a smoke run.

Usage::

    python benchmarks/ray_ingest.py FOLDER_OR_CORPUS [--limit N] [--cpus 2] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path


def _files(source: Path, limit: int | None, work: Path) -> list[str]:
    """The input files (a folder's text files, or a BEIR corpus.jsonl cut to ``limit`` lines)."""
    if source.is_file():
        if limit is None:
            return [str(source)]
        cut = work / "corpus" / "corpus.jsonl"
        cut.parent.mkdir(parents=True)
        with source.open() as f, cut.open("w") as g:
            for i, line in enumerate(f):
                if i >= limit:
                    break
                g.write(line)
        return [str(cut)]
    files = sorted(str(p) for p in source.rglob("*") if p.suffix in {".txt", ".md"})
    return files[:limit] if limit else files


def _writer_ceiling(index_dir: Path, files: list[str]) -> tuple[int, float]:
    """(chunks, seconds) of the one write transaction alone: documents read, split and staged
    with precomputed random vectors of the index's spaces, then ``commit_staged`` timed."""
    import numpy as np

    from aspectrag.index import Index
    from aspectrag.ingest.pipeline import (
        IngestReport,
        SourceTally,
        commit_staged,
        discover_items,
        make_splitter,
        read_source,
    )
    from aspectrag.ingest.staging import Staging

    ref = Index(index_dir / "inprocess")  # built by the in-process run: its spaces, embedder
    specs = ref.store.spaces()
    idx = Index(index_dir / "writer")
    rng = np.random.default_rng(0)
    report = IngestReport()
    splitter = make_splitter(ref.embedder, ref.chunking)
    with idx.store.write_lock(), Staging(None) as stage:
        seen: set[str] = set()
        for item in discover_items(files, None, report):
            for doc, chunks, upd in read_source(item, splitter, idx.store.fingerprint, seen,
                                                50 * 2**20, (), SourceTally()):
                first = stage.total_chunks
                stage.add(doc, chunks, upd)
                vecs = {}
                for s in specs:
                    v = rng.standard_normal((len(chunks), s.dim)).astype(np.float32)
                    vecs[s.name] = v / np.linalg.norm(v, axis=1, keepdims=True)
                stage.put_vectors(first, vecs)
        t = time.perf_counter()
        commit_staged(idx.store, ref.embedder, stage, [], specs, [], report)
        seconds = time.perf_counter() - t
    return report.chunks, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("source", type=Path, help="a folder of .txt/.md files or a corpus.jsonl")
    ap.add_argument("--limit", type=int, default=None, help="first N files / corpus lines")
    ap.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray runtime")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()

    import logging

    import ray

    from aspectrag.config import setup_threads
    from aspectrag.index import Index

    setup_threads()
    work = Path(tempfile.mkdtemp(prefix="ray-bench-"))
    try:
        files = _files(args.source, args.limit, work)
        out: dict[str, float] = {}
        idx = Index(work / "inprocess")
        rep = idx.ingest(files)
        out["inprocess_chunks"] = rep.chunks
        out["inprocess_chunks_per_s"] = rep.chunks_per_second
        print(f"in-process: {rep.chunks} chunks in {rep.seconds:.1f} s = "
              f"{rep.chunks_per_second:.1f} chunks/s")
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.ERROR)
        try:
            for workers in (1, 2):
                r = Index(work / f"ray{workers}").ingest(files, engine="ray", workers=workers)
                assert r.chunks == rep.chunks, (r.chunks, rep.chunks)
                out[f"ray{workers}_chunks_per_s"] = r.chunks_per_second
                print(f"ray, {workers} embedding actor(s): {r.chunks} chunks in "
                      f"{r.seconds:.1f} s = {r.chunks_per_second:.1f} chunks/s")
        finally:
            ray.shutdown()
        chunks, seconds = _writer_ceiling(work, files)
        writer = chunks / seconds if seconds > 0 else float("inf")
        out["writer_chunks_per_s"] = writer
        print(f"single writer alone (serial ceiling): {chunks} chunks in {seconds:.2f} s = "
              f"{writer:.0f} chunks/s")
        # Amdahl estimate: per chunk, the embedding time shrinks with N machines' actors, the
        # writer's (and the driver's) time does not.
        per_chunk = 1.0 / max(out["ray1_chunks_per_s"], 1e-9)
        serial = 1.0 / writer
        print("estimate on N machines (one actor each, embedding scaling linearly):")
        for n in (1, 2, 4, 8, 16, 64):
            est = 1.0 / (serial + (per_chunk - serial) / n)
            out[f"estimate_{n}_chunks_per_s"] = est
            print(f"  N={n:>3}: ~{est:,.0f} chunks/s ({est * per_chunk:.1f}x one actor); "
                  f"ceiling {writer:,.0f} chunks/s")
        if args.json:
            args.json.write_text(json.dumps(out, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

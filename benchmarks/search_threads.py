"""In-process search throughput from 1..N threads on one ``Index`` (the library used from a
threaded application), with the CPU time per search.

Index: the service-load index (``service_load.py`` builds it: 500 articles of the bundled
MRAG Wikipedia sample). Queries: "What is <title>?", cycled. ``--chunk-cache 0`` turns the
store's chunk cache off (``SQLiteStore.chunk_cache_size``), to see the cost of a search whose
hits were never fetched before; with the default cache the 500 queries' hits are all cached
after the warm-up pass, as a stream of repeated or related questions would be.

    python benchmarks/search_threads.py [--retriever bm25] [--threads 1 2 8 32] [--seconds 4]
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--index", type=Path, default=Path.home() / ".cache/aspectrag/service-load")
    ap.add_argument("--retriever", default="bm25")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2, 8, 32])
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--chunk-cache", type=int, default=None, help="chunks cached (default: "
                    "the store's default; 0: off)")
    args = ap.parse_args()
    from aspectrag.cli.common import quiet_libraries
    from aspectrag.config import setup_threads
    from aspectrag.index import Index

    setup_threads(None)
    quiet_libraries()
    idx = Index(args.index)
    if args.chunk_cache is not None:
        idx.store.chunk_cache_size = args.chunk_cache  # type: ignore[attr-defined]
    with open(ROOT / "samples" / "wikipedia-aspects" / "corpus.jsonl") as f:
        questions = [f"What is {json.loads(line)['title']}?" for line in f][:500]
    r = idx.retriever(args.retriever)
    for q in questions:  # warm-up pass: derived indexes loaded, every query's hits seen once
        idx.search(q, 10, retriever=r)
    print("| retriever | threads | searches/s | CPU ms per search | chunk cache |")
    print("|---|---|---|---|---|")
    for n in args.threads:
        done, cpu, wall = run(idx, r, questions, n, args.seconds)
        cache = getattr(idx.store, "chunk_cache_size", "-")
        print(f"| {args.retriever} | {n} | {done / wall:.0f} | {1000 * cpu / done:.3f} | "
              f"{cache} |", flush=True)


def run(idx, r, questions: list[str], n: int, seconds: float) -> tuple[int, float, float]:  # type: ignore[no-untyped-def]
    """``n`` threads searching for ``seconds`` s: searches done, CPU s, wall s."""
    end = time.monotonic() + seconds
    counts = [0] * n

    def work(i: int) -> None:
        j = i
        while time.monotonic() < end:
            idx.search(questions[j % len(questions)], 10, retriever=r)
            j += n
            counts[i] += 1

    c0, t0 = time.process_time(), time.monotonic()
    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts), time.process_time() - c0, time.monotonic() - t0

if __name__ == "__main__":
    main()

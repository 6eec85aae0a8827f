"""Query-encode latency by the thread that calls torch (why the service encodes on long-lived
threads of its own: ``aspectrag/service/encoding.py``).

torch runs each forward pass's parallel regions on an OpenMP team owned by the calling thread.
libgomp lets idle team threads spin-wait only while all its threads fit on the cores; with
more (a second thread that has called torch keeps its own team alive), every barrier sleeps
and pays a wake-up. Four cases, each in a fresh process, rounds alternating so that drift of
the machine's speed hits both sides of a comparison:

- ``main``: the main thread only;
- ``persistent``: one long-lived worker thread only (what the service does);
- ``main+new``: rounds on the main thread alternating with rounds on a thread started anew
  each round (a worker pool's threads);
- ``main+persistent``: the main thread alternating with one long-lived thread (two teams).

Prints the median encode time (ms) of each round. Session 17, 2 cores, quiet, 2 torch threads,
medians of 6 rounds of 40 (``results/encode_threads_s17.txt``): main alone 10.5 ms; one
long-lived thread alone 12.3; main 9.9 / a new thread each round 13.1 (1.3x); main 16.3 and a
long-lived thread 16.5 when both have teams (1.55x the main thread alone). Usage:

    python benchmarks/encode_threads.py [--rounds 6] [--per-round 40]
"""

from __future__ import annotations

import argparse
import json
import queue
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

CASES = ("main", "persistent", "main+new", "main+persistent")


def child(case: str, rounds: int, n: int) -> dict[str, list[float]]:
    from aspectrag.cli.common import quiet_libraries
    from aspectrag.config import setup_threads

    setup_threads(None)  # as `aspectrag serve`
    quiet_libraries()
    from aspectrag.embed.hf import HFEmbedder

    emb = HFEmbedder()
    questions = [f"What is the history of topic {i} in the region?" for i in range(rounds * n)]

    def block(off: int) -> float:
        lat = []
        for q in questions[off: off + n]:
            t0 = time.perf_counter()
            emb.encode([q], kind="query")
            lat.append(time.perf_counter() - t0)
        return round(statistics.median(lat) * 1000, 2)

    jobs: queue.Queue[int] = queue.Queue()
    done: queue.Queue[float] = queue.Queue()

    def serve() -> None:
        while True:
            done.put(block(jobs.get()))

    def on_persistent(off: int) -> float:
        jobs.put(off)
        return done.get()

    def on_new(off: int) -> float:
        out: list[float] = []
        t = threading.Thread(target=lambda: out.append(block(off)))
        t.start()
        t.join()
        return out[0]

    if "persistent" in case:
        threading.Thread(target=serve, daemon=True).start()
    sides: dict[str, Callable[[int], float]] = {
        "main": {"main": block}, "persistent": {"persistent": on_persistent},
        "main+new": {"main": block, "new thread": on_new},
        "main+persistent": {"main": block, "persistent": on_persistent}}[case]
    for fn in sides.values():
        fn(0)  # warm: load the model, start the team
    out: dict[str, list[float]] = {k: [] for k in sides}
    for r in range(rounds):
        for k, fn in sides.items():
            out[k].append(fn(r * n))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--per-round", type=int, default=40, help="encodes per round")
    ap.add_argument("--child", choices=CASES, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.rounds, args.per_round)))
        return
    print("| case | side | median ms per round | median of rounds |\n|---|---|---|---|")
    for case in CASES:
        p = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", case,
                            "--rounds", str(args.rounds), "--per-round", str(args.per_round)],
                           capture_output=True, text=True, check=True)
        for side, vals in json.loads(p.stdout.strip().splitlines()[-1]).items():
            print(f"| {case} | {side} | {', '.join(f'{v:.1f}' for v in vals)} | "
                  f"{statistics.median(vals):.1f} |", flush=True)


if __name__ == "__main__":
    main()

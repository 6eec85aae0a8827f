"""Fault injection and fuzzing, the long version of ``tests/faults`` (issue 17 item 9, after
SQLite's own crash, I/O-error and fuzz testing).

    python benchmarks/faults.py [--crash-trials 50] [--io-trials 24] [--fuzz-examples 2000]
                                [--readers 8] [--seconds 10] [--seed 17] [--json OUT]
    python benchmarks/faults.py --crash-trials 2 --io-trials 2 --fuzz-examples 20 --seconds 2  # smoke

Sections (each prints one summary line, then any failures):
  crash    child ingests (bundled MiniLM) SIGKILLed at SQL statements spread over the whole
           ingest (first and last included), at derived-index renames and at random times;
           after each: integrity_check, exactly the before or after state, searches only from
           it, and a re-run of the ingest completes.
  io       ``aspectrag ingest`` (CLI, hashing embedder) with file sizes capped (RLIMIT_FSIZE,
           from 4 KiB up) or SQLite writes refused after N: one error line, exit 1, no traceback,
           the before state (or, when the fault never fires, the after state).
  fuzz     every fuzz target of ``tests/faults/fuzz_targets.py`` with ``--fuzz-examples``
           random (not derandomized) inputs: cases generated, unexpected exceptions.
  latency  ``--readers`` threads searching (bm25 and dense, k=3) for ``--seconds`` on an idle
           index, then while a second process ingests (embedding 3 s in the hashing embedder,
           then the write): p50 / p99 ms per search, errors. Target: p99 within 2x of idle.

Timing figures need a quiet machine (the coordinator runs them); trial outcomes do not.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.faults import harness  # noqa: E402
from tests.faults.fuzz_targets import TARGETS, fuzz  # noqa: E402


def crash(work: Path, trials: int, rng: np.random.Generator) -> dict:  # type: ignore[type-arg]
    from aspectrag.embed.hf import HFEmbedder

    emb = HFEmbedder()
    setup = harness.crash_setup(work / "crash", emb)
    points = harness.crash_points(setup, trials, rng)
    results = []
    for i, p in enumerate(points):
        r = harness.crash_trial(setup, p, i, emb)
        results.append(r)
        print(f"  crash {i + 1}/{len(points)} {p}: killed={r.killed} state={r.outcome} "
              f"integrity={r.integrity} recovered={r.recovered}", flush=True)
    passed = sum(r.ok for r in results)
    outcomes = {k: sum(r.outcome == k for r in results) for k in ("before", "after")}
    print(f"crash: {len(results)} trials run, {passed} passed ({outcomes['before']} before, "
          f"{outcomes['after']} after; {setup.statements} SQL statements and {setup.fs_ops} "
          f"renames per ingest)")
    return {"trials": len(results), "passed": passed, **outcomes,
            "failures": [vars(r) for r in results if not r.ok]}


def io_errors(work: Path, trials: int, rng: np.random.Generator) -> dict:  # type: ignore[type-arg]
    setup = harness.io_setup(work / "io")
    half = max(1, trials // 2)
    faults = [f"fsize:{int(b)}" for b in np.geomspace(4096, 4 * 1024 * 1024, half).round()]
    faults += [f"deny:{int(n)}" for n in rng.integers(0, 80, size=trials - half)]
    results = []
    for i, f in enumerate(faults):
        r = harness.io_trial(setup, f, i)
        results.append(r)
        print(f"  io {i + 1}/{len(faults)} {f}: exit={r.exit_code} state={r.outcome} "
              f"lines={r.error_lines} traceback={r.traceback}", flush=True)
    passed = sum(r.ok for r in results)
    fired = sum(r.exit_code != 0 for r in results)
    print(f"io: {len(results)} trials run, {passed} passed ({fired} with the fault firing)")
    return {"trials": len(results), "passed": passed, "fired": fired,
            "failures": [vars(r) for r in results if not r.ok]}


def fuzzing(examples: int) -> dict:  # type: ignore[type-arg]
    import logging

    logging.getLogger("aspectrag").setLevel(logging.ERROR)  # malformed-line warnings by the 1000
    out = {}
    for name in TARGETS:
        t0 = time.perf_counter()
        try:
            n, error = fuzz(name, examples, derandomize=False), None
        except Exception as e:  # noqa: BLE001 - reported, with hypothesis's shrunk input
            n, error = examples, f"{type(e).__name__}: {str(e)[:500]}"
        out[name] = {"cases": n, "unexpected": 0 if error is None else 1, "error": error,
                     "seconds": round(time.perf_counter() - t0, 1)}
        print(f"  fuzz {name}: {n} cases, {'0 unexpected' if error is None else error}",
              flush=True)
    total = sum(v["cases"] for v in out.values())
    bad = sum(v["unexpected"] for v in out.values())
    print(f"fuzz: {total} cases over {len(out)} targets, {bad} targets with unexpected "
          "exceptions")
    return out


def latency(work: Path, readers: int, seconds: float) -> dict:  # type: ignore[type-arg]
    from tests.fakes import HashEmbedder

    from aspectrag.index import Index

    root = work / "latency"
    corpus = harness.write_corpus(root / "corpus", 0)
    before = root / "before"
    Index(before, embedder=HashEmbedder()).ingest([corpus])
    exp_before = harness.expected_results(before, HashEmbedder)
    harness.write_corpus(corpus, 1)
    after = root / "after"
    shutil.copytree(before, after)
    Index(after, embedder=HashEmbedder()).ingest([corpus])
    exp_after = harness.expected_results(after, HashEmbedder)
    idle = harness.read_load(before, exp_before, None, readers=readers, seconds=seconds)
    live = root / "live"
    shutil.copytree(before, live)
    writer = ["ingest", str(live), str(corpus), "--embedder", "hash", "--delay", "3"]
    busy = harness.read_load(live, exp_before, exp_after, readers=readers,
                             seconds=max(seconds, 20.0), writer=writer)
    (i50, i99), (b50, b99) = idle.percentiles(), busy.percentiles()
    print(f"latency: idle p50 {i50:.1f} ms / p99 {i99:.1f} ms ({idle.reads} searches, "
          f"{len(idle.errors)} errors); during an ingest p50 {b50:.1f} ms / p99 {b99:.1f} ms "
          f"({busy.reads} searches, {len(busy.errors)} errors, {len(busy.mismatches)} mixed "
          f"results, states seen {sorted(busy.saw)}, ingest "
          + (f"done in {busy.writer_seconds:.1f} s" if busy.writer_seconds is not None
             else "NOT done inside the window") + f"); p99 ratio {b99 / i99:.2f} (target <= 2)")
    for e in busy.errors[:3]:
        print(f"  reader error: {e}")
    return {"idle": {"p50_ms": i50, "p99_ms": i99, "searches": idle.reads,
                     "errors": len(idle.errors)},
            "ingest": {"p50_ms": b50, "p99_ms": b99, "searches": busy.reads,
                       "errors": len(busy.errors), "mixed": len(busy.mismatches),
                       "writer_seconds": busy.writer_seconds, "first_errors": busy.errors[:3]},
            "p99_ratio": b99 / i99}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--crash-trials", type=int, default=50)
    ap.add_argument("--io-trials", type=int, default=24)
    ap.add_argument("--fuzz-examples", type=int, default=2000)
    ap.add_argument("--readers", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--only", nargs="*", choices=["crash", "io", "fuzz", "latency"])
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    only = set(args.only or ["crash", "io", "fuzz", "latency"])
    results: dict = {}  # type: ignore[type-arg]
    with tempfile.TemporaryDirectory(prefix="aspectrag-faults-") as tmp:
        work = Path(tmp)
        if "crash" in only:
            results["crash"] = crash(work, args.crash_trials, rng)
        if "io" in only:
            results["io"] = io_errors(work, args.io_trials, rng)
        if "fuzz" in only:
            results["fuzz"] = fuzzing(args.fuzz_examples)
        if "latency" in only:
            results["latency"] = latency(work, args.readers, args.seconds)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()

"""Whole-process start-up cost of the query commands (issue 14): ``aspectrag search "..." --json``
and ``aspectrag ask --llm extractive`` on a built index, as a new user runs them.

Each command is run ``--runs`` times (default 5) as a fresh process; the script reports the
median and min/max wall time in seconds, the peak resident set size of the children
per command from ``os.wait4``'s rusage of each child, and overall from
``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``), and the cumulative import time of torch /
transformers / bm25s / numpy... (absent: not imported) from ``-X importtime`` of one extra run.

    python benchmarks/startup.py --index ./.aspectrag --query "what is task decomposition?"
    python benchmarks/startup.py --index IDX --retriever bm25 --json-out benchmarks/results/startup.json

Run it on a quiet machine (timings on a loaded machine are not comparable).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

_APP = ["-c", "from aspectrag.cli.main import app; app()"]


def _arguments(args: argparse.Namespace, sub: str) -> list[str]:
    rest = [sub, args.query, "--index", str(args.index), "-r", args.retriever, "--json"]
    return rest + (["--llm", "extractive"] if sub == "ask" else [])


def _command(rest: list[str]) -> list[str]:
    """The installed ``aspectrag`` script (as a user runs it), else this Python."""
    exe = shutil.which("aspectrag")
    return [exe, *rest] if exe else [sys.executable, *_APP, *rest]


def _run_once(cmd: list[str], env: dict[str, str]) -> tuple[float, int, int]:
    """(wall seconds, peak RSS KiB of this child, exit status)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        raise SystemExit(f"{' '.join(cmd)}: exit {proc.returncode}\n{err}")
    if proc.stderr:
        proc.stderr.close()
    return wall, int(usage.ru_maxrss), proc.returncode


def _heavy_imports(rest: list[str], env: dict[str, str]) -> dict[str, float]:
    """Cumulative import time in seconds of torch / transformers / bm25s / numpy (absent: not
    imported) in one run, from ``python -X importtime``."""
    res = subprocess.run([sys.executable, "-X", "importtime", *_APP, *rest], env=env,
                         capture_output=True, text=True)
    out: dict[str, float] = {}
    for line in res.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[2].strip() in ("torch", "transformers", "bm25s", "numpy",
                                                     "numba", "scipy", "typer", "rich"):
            out[parts[2].strip()] = int(parts[1]) / 1e6
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--index", type=Path, required=True, help="a built index folder")
    ap.add_argument("--query", default="What are the approaches to task decomposition?")
    ap.add_argument("--retriever", "-r", default="hybrid")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json-out", type=Path)
    args = ap.parse_args()
    env = dict(os.environ)
    report: dict[str, object] = {"index": str(args.index), "retriever": args.retriever,
                                 "runs": args.runs, "python": sys.version.split()[0]}
    for sub in ("search", "ask"):
        rest = _arguments(args, sub)
        cmd = _command(rest)
        _run_once(cmd, env)  # warm the page cache (not counted)
        walls, rss = [], []
        for _ in range(args.runs):
            w, m, _ = _run_once(cmd, env)
            walls.append(w)
            rss.append(m)
        report[sub] = {
            "median_s": round(statistics.median(walls), 3), "min_s": round(min(walls), 3),
            "max_s": round(max(walls), 3), "peak_rss_mib": round(max(rss) / 1024, 1),
            "imports_s": _heavy_imports(rest, env),
        }
        r = report[sub]
        print(f"{sub:6s} median {r['median_s']:.3f} s (min {r['min_s']:.3f}, max {r['max_s']:.3f}),"  # type: ignore[index]
              f" peak RSS {r['peak_rss_mib']} MiB, imports {r['imports_s']}")  # type: ignore[index]
    import resource

    report["children_maxrss_mib"] = round(
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

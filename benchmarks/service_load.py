"""Load benchmark of ``aspectrag serve`` against the in-process Python API (issue 12).

Index: the first ``--docs`` articles of the bundled MRAG Wikipedia sample
(``samples/wikipedia-aspects/corpus.jsonl``), built once in ``--index`` (reused when present).
Queries: "What is <title>?" for those articles, cycled.

For each workload (``/v1/search`` with bm25, hybrid, multiquery; ``/v1/ask`` extractive) and
each number of concurrent clients (``--clients``, default 1 8 32), clients send requests
back to back for ``--seconds`` s (after an untimed warm-up of up to 3 s); requests/s, p50, p99
and errors are printed. The same searches run in-process first (``Index.search`` /
``Index.ask`` from as many threads, on an ``Index(..., for_queries=True)`` as the server opens
it: queries encode with the ONNX query twin unless ``ASPECTRAG_QUERY_TWIN=0``; thread
settings as ``aspectrag serve`` applies them), so
the ratios compare like with like on the same cores: p50 overhead (server - in-process, ms),
p99/p50 at the highest concurrency, and server throughput / in-process maximum throughput.
Then ``--ingest-docs`` further articles are uploaded (one multipart job of .txt files) and the
search workloads are repeated while that ingest runs; afterwards the new articles must be
searchable and ``PRAGMA integrity_check`` must say ok. The index is built once in ``--index``
and copied to a temporary folder for each run, so the ingest never grows the cached one.

The load generator shares the cores with the server, so it is kept lean (``http_load.py``: raw
keep-alive HTTP/1.1, request bytes built once; ``--client httpx`` uses ``httpx.AsyncClient``
instead, which costs about a millisecond of CPU per request). CPU time is reported per request
for each side (``cpu ms``: the in-process search, the server process(es), the load generator),
which a busy machine disturbs far less than wall-clock figures: ``server cpu - in-process cpu``
is the server's own cost per request.

Targets: p50 overhead <= 2 ms; at 32 clients p99 <= 5x p50 and throughput >= 0.8x in-process;
searches during the ingest keep p99 within 2x of idle. Run it on a quiet machine:

    python benchmarks/service_load.py [--seconds 30] [--clients 1 8 32] [--workers 1]
    python benchmarks/service_load.py --seconds 2 --clients 1 --docs 20 --ingest-docs 10  # smoke
    python benchmarks/service_load.py --interleave 6 --seconds 5 --clients 1 32 --workers 2

``--interleave`` gives the idle targets as paired rounds (see ``interleaved``): separate
phases minutes apart gave the same code's ratios anywhere across 0.45-0.88 (bm25 throughput,
session 14).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from http_load import ProcCpu, post_bytes, process_cpu, run_clients  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "samples" / "wikipedia-aspects" / "corpus.jsonl"

WORKLOADS: dict[str, tuple[str, dict[str, Any]]] = {
    "search bm25": ("/v1/search", {"retriever": "bm25", "k": 10}),
    "search hybrid": ("/v1/search", {"retriever": "hybrid", "k": 10}),
    "search multiquery": ("/v1/search", {"retriever": "multiquery", "base": "hybrid", "k": 10}),
    "ask extractive": ("/v1/ask", {"retriever": "hybrid", "k": 5, "llm": "extractive"}),
}


#: the first few failed requests (workload, clients, why), printed at the end
ERRORS: list[str] = []


def articles() -> list[dict[str, str]]:
    with open(CORPUS) as f:
        return [json.loads(line) for line in f]


def build_index(path: Path, docs: list[dict[str, str]]) -> None:
    from aspectrag.index import Index

    idx = Index(path)
    if idx.store.stats()["documents"] >= len(docs):
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "docs"
        folder.mkdir()
        for d in docs:
            (folder / f"{d['_id']}.txt").write_text(f"{d['title']}\n\n{d['text']}")
        t0 = time.perf_counter()
        rep = idx.ingest([str(folder)])
        print(f"built {path}: {rep.added} documents, {rep.chunks} chunks in "
              f"{time.perf_counter() - t0:.0f} s", file=sys.stderr)


def prepare_twin(path: Path) -> None:
    """Export the index's ONNX query twin if missing (``aspectrag serve`` does the same at
    start-up), so both sides find it; ``ASPECTRAG_QUERY_TWIN=0`` measures torch queries."""
    from aspectrag.cli.common import prepare_twin as prepare
    from aspectrag.index import Index

    prepare(Index(path, readonly=True))


def stats(lat: list[float], errors: int, seconds: float, **cpu: float | None) -> dict[str, Any]:
    """Requests/s, p50/p99 in ms, errors; ``cpu``: CPU seconds used per side in the run
    (None: unknown), reported as ms per answered request."""
    lat = sorted(lat)
    q = statistics.quantiles(lat, n=100, method="inclusive") if len(lat) >= 2 else lat * 99
    out: dict[str, Any] = {"rps": len(lat) / seconds,
                           "p50_ms": 1000 * q[49] if lat else float("nan"),
                           "p99_ms": 1000 * q[98] if lat else float("nan"),
                           "errors": errors, "n": len(lat)}
    for side, sec in cpu.items():
        out[f"{side}_cpu_ms"] = 1000 * sec / len(lat) if sec is not None and lat else None
    return out


def in_process(index: Path, questions: list[str], clients: int, seconds: float,
               name: str, idx: Any = None) -> dict[str, float]:
    """The same work through the Python API from ``clients`` threads (``idx``: an open
    ``Index`` of ``index`` to use, default a new one)."""
    from aspectrag.index import Index

    idx = idx if idx is not None else Index(index, for_queries=True)  # as the server opens it
    _, body = WORKLOADS[name]
    opts = {"base": body["base"]} if "base" in body else {}
    r = idx.retriever(body["retriever"], **opts)
    gen = idx.generator("extractive") if name.startswith("ask") else None
    idx.search(questions[0], 1, retriever=r)  # warm
    lat: list[float] = []
    errors = [0]
    end = time.monotonic() + seconds
    lock = threading.Lock()

    def worker(i: int) -> None:
        n = i
        while time.monotonic() < end:
            q = questions[n % len(questions)]
            n += clients
            t0 = time.perf_counter()
            try:
                hits = idx.search(q, body["k"], retriever=r)
                if gen is not None:
                    gen.generate(q, hits)
            except Exception:
                errors[0] += 1
                continue
            with lock:
                lat.append(time.perf_counter() - t0)

    t0, c0 = time.monotonic(), process_cpu()
    if clients == 1:  # a user's own thread, whose OpenMP team the warm-up above started (a
        worker(0)     # new thread each block would add a second team: see encode_threads.py)
    else:
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return stats(lat, errors[0], time.monotonic() - t0, in_process=process_cpu() - c0)


def over_http(url: str, questions: list[str], clients: int, seconds: float, name: str,
              server_cpu: Callable[[], float | None], client: str = "lean") -> dict[str, Any]:
    """``clients`` concurrent clients for ``seconds`` s against the server at ``url``; the
    CPU both sides used (``server_cpu()``: the server's CPU seconds so far)."""
    path, body = WORKLOADS[name]
    key = "question" if path == "/v1/ask" else "query"
    s0, c0, t0 = server_cpu(), process_cpu(), time.monotonic()
    if client == "lean":
        host, port = url.removeprefix("http://").rsplit(":", 1)
        raws = [post_bytes(host, int(port), path, {key: q, **body}) for q in questions]

        def record(why: str) -> None:
            if len(ERRORS) < 5:
                ERRORS.append(f"{name}, {clients} clients: {why}")

        lat, errors = _run(run_clients(host, int(port), raws, clients, seconds, record))
    else:
        lat, errors = asyncio.run(_httpx_clients(url, path, key, body, questions, clients,
                                                 seconds, name))
    s1, c1, t1 = server_cpu(), process_cpu(), time.monotonic()
    return stats(lat, errors, t1 - t0, client=c1 - c0,
                 server=s1 - s0 if s0 is not None and s1 is not None else None)


async def _httpx_clients(url: str, path: str, key: str, body: dict[str, Any],
                         questions: list[str], clients: int, seconds: float,
                         name: str) -> tuple[list[float], int]:
    lat: list[float] = []
    errors = 0
    end = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        async def client(i: int) -> None:
            nonlocal errors
            n = i
            while time.monotonic() < end:
                q = questions[n % len(questions)]
                n += clients
                t0 = time.perf_counter()
                try:
                    r = await http.post(path, json={key: q, **body})
                    ok = r.status_code == 200
                    why = f"HTTP {r.status_code}: {r.text[:200]}"
                except httpx.HTTPError as e:
                    ok, why = False, f"{type(e).__name__}: {e}"
                if ok:
                    lat.append(time.perf_counter() - t0)
                else:
                    errors += 1
                    if len(ERRORS) < 5:
                        ERRORS.append(f"{name}, {clients} clients: {why}")

        await asyncio.gather(*(client(i) for i in range(clients)))
    return lat, errors


def _run(coro: Any) -> Any:
    """``coro`` on uvloop where it is installed (the lean client spends about a fifth less CPU
    per request there: 0.077-0.093 ms against 0.099-0.109, session 16), else asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(index: Path, port: int, workers: int,
                 env: dict[str, str] | None = None) -> subprocess.Popen:  # type: ignore[type-arg]
    """``aspectrag serve`` on ``index`` (``env``: variables set for the server only)."""
    proc = subprocess.Popen([sys.executable, "-c", "from aspectrag.cli.main import app; app()",
                             "serve", "--index", str(index), "--port", str(port),
                             "--workers", str(workers), "--request-timeout", "300"],
                            env={**os.environ, **(env or {})})
    end = time.monotonic() + 300
    while time.monotonic() < end:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit("the server did not become ready")


def upload(url: str, docs: list[dict[str, str]]) -> str:
    files = [("files", (f"{d['_id']}.txt", f"{d['title']}\n\n{d['text']}".encode(), "text/plain"))
             for d in docs]
    r = httpx.post(f"{url}/v1/documents", files=files, timeout=300)
    r.raise_for_status()
    return str(r.json()["job"])


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def row(name: str, clients: int, where: str, s: dict[str, Any]) -> str:
    own = s.get("in_process_cpu_ms", s.get("server_cpu_ms"))
    return (f"| {name} | {clients} | {where} | {s['rps']:.1f} | {s['p50_ms']:.2f} | "
            f"{s['p99_ms']:.2f} | {s['errors']} | {_ms(own)} | {_ms(s.get('client_cpu_ms'))} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--index", type=Path, default=Path.home() / ".cache/aspectrag/service-load")
    ap.add_argument("--docs", type=int, default=500, help="articles in the served index")
    ap.add_argument("--ingest-docs", type=int, default=500, help="articles ingested under load")
    ap.add_argument("--seconds", type=float, default=30.0, help="per workload and concurrency")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--workers", type=int, default=1, help="server processes")
    ap.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    ap.add_argument("--client", choices=["lean", "httpx"], default="lean",
                    help="load generator (see the module docstring)")
    ap.add_argument("--out", type=Path, help="also write the figures as JSON")
    ap.add_argument("--server-env", nargs="+", default=[], metavar="NAME=VALUE",
                    help="settings for the server only (e.g. ASPECTRAG_THREADS=1)")
    ap.add_argument("--interleave", type=int, default=0, metavar="ROUNDS",
                    help="instead of the table: the targets' ratios from ROUNDS rounds of "
                         "paired blocks (in-process then server, each client count, --seconds "
                         "s each), both loaded throughout: medians [min, max] of the rounds")
    args = ap.parse_args()

    arts = articles()
    if args.docs + args.ingest_docs > len(arts):
        raise SystemExit(f"--docs + --ingest-docs must be <= {len(arts)}")
    base, extra = arts[: args.docs], arts[args.docs: args.docs + args.ingest_docs]
    build_index(args.index, base)
    prepare_twin(args.index)
    work = Path(tempfile.mkdtemp(prefix="service-load-"))
    index = work / "index"
    shutil.copytree(args.index, index, ignore=shutil.ignore_patterns("service", "index.sqlite*"))
    with sqlite3.connect(args.index / "index.sqlite") as src, \
            sqlite3.connect(index / "index.sqlite") as dst:
        src.backup(dst)  # a consistent copy whatever state the -wal/-shm files are in
    from aspectrag.cli.common import quiet_libraries
    from aspectrag.config import setup_threads

    setup_threads(None)  # what `aspectrag serve` does in its process
    quiet_libraries()  # as `aspectrag serve`: no loading bars
    try:
        if args.interleave:
            interleaved(args, index, base)
        else:
            run(args, index, base, extra)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def interleaved(args: argparse.Namespace, index: Path, base: list[dict[str, str]]) -> None:
    """The ratios of the targets from ``args.interleave`` rounds of blocks of ``args.seconds``
    each, with both sides loaded throughout, so slow drift of a shared machine cancels out of
    the paired figures. Per workload, first ``interleave`` pairs (in-process, then server) at
    the fewest clients: the p50 overhead; then ``interleave`` rounds of in-process blocks at
    every client count and a server block at the most clients: the server's throughput over
    the round's in-process maximum, and the server's p99/p50. Printed as the median of the
    rounds [min, max]."""
    from aspectrag.index import Index

    questions = [f"What is {d['title']}?" for d in base]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server(index, port, args.workers, dict(e.split("=", 1) for e in args.server_env))
    cpu = ProcCpu(proc.pid)
    lo, top = min(args.clients), max(args.clients)
    out: dict[str, Any] = {"rounds": args.interleave, "seconds": args.seconds,
                           "clients": args.clients, "workers": args.workers,
                           "server_env": args.server_env}
    print(f"| workload | rounds | p50 overhead ms, {lo} client(s) | throughput / in-process "
          f"max, {top} clients | server p99/p50, {top} clients | server cpu ms/req, {top} "
          "clients |")
    print("|---|---|---|---|---|---|")

    def spread(xs: list[float], fmt: str) -> str:
        return (f"{format(statistics.median(xs), fmt)} [{format(min(xs), fmt)}, "
                f"{format(max(xs), fmt)}]")

    try:
        idx = Index(index, for_queries=True)  # as the server opens it (create_app)
        for name in args.workloads:
            for c in args.clients:  # warm-up
                in_process(index, questions, c, 3.0, name, idx)
                over_http(url, questions, c, 3.0, name, cpu, args.client)
            # the 1-client pairs back to back, then the throughput rounds; the warm-up's
            # burst comes before both, so the pairs see a server that has had a burst, as a
            # live one has (with 2 searches at once per process, a burst's second search
            # thread made every later 1-client hybrid search 3-5 ms slower: Engine docs)
            pairs = [(in_process(index, questions, lo, args.seconds, name, idx),
                      over_http(url, questions, lo, args.seconds, name, cpu, args.client))
                     for _ in range(args.interleave)]
            rounds = []
            for _ in range(args.interleave):
                inp = {c: in_process(index, questions, c, args.seconds, name, idx)
                       for c in args.clients}
                rounds.append((inp, over_http(url, questions, top, args.seconds, name, cpu,
                                              args.client)))
            over = [b["p50_ms"] - a["p50_ms"] for a, b in pairs]
            ratio = [srv["rps"] / max(b["rps"] for b in inp.values()) for inp, srv in rounds]
            tail = [srv["p99_ms"] / srv["p50_ms"] for _, srv in rounds]
            scpu = [srv["server_cpu_ms"] for _, srv in rounds
                    if srv.get("server_cpu_ms") is not None]
            out[name] = {"p50_pairs": [{"in_process": a, "server": b} for a, b in pairs],
                         "throughput_rounds": [{"in_process": {str(c): v for c, v in inp.items()},
                                                "server": srv} for inp, srv in rounds],
                         "p50_overhead_ms_median": statistics.median(over),
                         "throughput_ratio_median": statistics.median(ratio),
                         "p99_over_p50_median": statistics.median(tail)}
            print(f"| {name} | {len(rounds)} | {spread(over, '+.2f')} | {spread(ratio, '.2f')} "
                  f"| {spread(tail, '.2f')} | {spread(scpu, '.3f') if scpu else '-'} |",
                  flush=True)
    finally:
        proc.terminate()
        proc.wait(30)
    if args.out:
        args.out.write_text(json.dumps(out, indent=1))


def run(args: argparse.Namespace, index: Path, base: list[dict[str, str]],
        extra: list[dict[str, str]]) -> None:
    questions = [f"What is {d['title']}?" for d in base]
    results: dict[str, Any] = {"in_process": {}, "server": {}, "during_ingest": {},
                               "client": args.client, "workers": args.workers}
    print("| workload | clients | where | req/s | p50 ms | p99 ms | errors | cpu ms/req "
          "(in-process or server) | load generator cpu ms/req |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.workloads:
        for c in args.clients:
            in_process(index, questions, c, min(3.0, args.seconds), name)  # warm-up
            s = in_process(index, questions, c, args.seconds, name)
            results["in_process"][f"{name}@{c}"] = s
            print(row(name, c, "in-process", s), flush=True)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server(index, port, args.workers, dict(e.split("=", 1) for e in args.server_env))
    cpu = ProcCpu(proc.pid)
    try:
        for name in args.workloads:
            for c in args.clients:
                over_http(url, questions, c, min(3.0, args.seconds), name, cpu,
                          args.client)  # warm-up
                s = over_http(url, questions, c, args.seconds, name, cpu, args.client)
                results["server"][f"{name}@{c}"] = s
                print(row(name, c, "server", s), flush=True)
        before = httpx.get(f"{url}/v1/stats").json()["documents"]
        job = upload(url, extra) if extra else None
        for name in [w for w in args.workloads if w.startswith("search")]:
            for c in args.clients:
                s = over_http(url, questions, c, args.seconds, name, cpu, args.client)
                results["during_ingest"][f"{name}@{c}"] = s
                running = httpx.get(f"{url}/v1/jobs/{job}").json()["status"] if job else "-"
                print(row(name, c, f"server, ingest {running}", s), flush=True)
        if job:
            while (j := httpx.get(f"{url}/v1/jobs/{job}").json())["status"] in ("queued", "running"):
                time.sleep(1)
            after = httpx.get(f"{url}/v1/stats").json()["documents"]
            found = sum(
                any(h["source"].endswith(f"/{d['_id']}.txt") for h in httpx.post(
                    f"{url}/v1/search", json={"query": d["title"], "retriever": "bm25", "k": 10}
                ).json()["hits"]) for d in extra[:50])
            results["ingest"] = {"status": j["status"], "added": after - before,
                                 "found_by_title": f"{found}/{min(50, len(extra))}",
                                 "chunks_per_second": (j.get("result") or {}).get("chunks_per_second")}
            print(f"ingest: {j['status']}, {after - before} documents added, "
                  f"{found}/{min(50, len(extra))} found by their title", flush=True)
    finally:
        proc.terminate()
        proc.wait(30)
    with sqlite3.connect(index / "index.sqlite") as conn:
        results["integrity_check"] = conn.execute("PRAGMA integrity_check").fetchone()[0]
    print(f"PRAGMA integrity_check: {results['integrity_check']}")

    for e in ERRORS:
        print(f"failed request: {e}")
    results["first_errors"] = ERRORS
    print("\n| workload | p50 overhead ms (1 client) | server cpu overhead ms/req (1 client) | "
          "p99/p50 (max clients) | throughput / in-process (max clients) | "
          "p99 during ingest / idle (max clients) |")
    print("|---|---|---|---|---|---|")
    top = max(args.clients)
    lo = min(args.clients)
    for name in args.workloads:
        srv1, inp1 = results["server"][f"{name}@{lo}"], results["in_process"][f"{name}@{lo}"]
        srvt = results["server"][f"{name}@{top}"]
        inp_max = max(results["in_process"][f"{name}@{c}"]["rps"] for c in args.clients)
        ing = results["during_ingest"].get(f"{name}@{top}")
        ratio_ing = f"{ing['p99_ms'] / srvt['p99_ms']:.2f}" if ing else "-"
        own = srv1.get("server_cpu_ms")
        inp_cpu = inp1.get("in_process_cpu_ms")
        cpu_over = f"{own - inp_cpu:+.3f}" if own is not None and inp_cpu is not None else "-"
        print(f"| {name} | {srv1['p50_ms'] - inp1['p50_ms']:+.2f} | {cpu_over} | "
              f"{srvt['p99_ms'] / srvt['p50_ms']:.2f} | {srvt['rps'] / inp_max:.2f} | {ratio_ing} |")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

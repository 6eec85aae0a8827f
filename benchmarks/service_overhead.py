"""The HTTP layer's own cost per ``POST /v1/search``, without sockets and without the search.

The app of ``aspectrag serve`` is called as an ASGI callable in a loop (uvloop when
installed); ``Engine.search`` returns one fixed result (10 hits of a real bm25 search of
``--index``), so what is measured is everything the service adds around a search: middleware,
routing, body parsing and validation, auth, the hop to a worker thread and back (``--direct``:
the search runs on the loop, as ``Engine.search_now`` runs a short one), the hits' JSON. Reported as CPU time per request (all threads of this process) and,
with ``--profile``, Python function calls per request and the top functions by own time
(cProfile; the call counts are exact, the times inflated by profiling). CPU time and call
counts are what a busy machine disturbs least; wall-clock figures are not printed.

    python benchmarks/service_overhead.py [--index DIR] [--requests 3000] [--direct] [--profile]

Not measured here: uvicorn's protocol and the socket system calls (``service_load.py``
reports the whole server's CPU per request).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import time
from pathlib import Path
from typing import Any


def build(index: Path, direct: bool) -> tuple[Any, bytes]:
    from aspectrag.index import Index
    from aspectrag.service import create_app
    from aspectrag.service.engine import SearchSpec

    app = create_app(Index(index), run_writer=False)
    st = app.state.service
    query = "What is the history of the Roman army?"
    fixed = st.engine.search(query, 10, SearchSpec("bm25"))
    st.engine.search = lambda *a, **k: fixed
    st.engine.search_now = (lambda *a, **k: fixed) if direct else (lambda *a, **k: None)
    return app, json.dumps({"query": query, "retriever": "bm25", "k": 10}).encode()


async def loop(app: Any, body: bytes, n: int) -> list[dict[str, Any]]:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/v1/search",
             "raw_path": b"/v1/search", "query_string": b"", "root_path": "",
             "headers": [(b"host", b"bench"), (b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode())],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "state": {}}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if len(sent) < 2:
            sent.append(message)

    for _ in range(n):
        await app(dict(scope), receive, send)
    return sent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--index", type=Path, default=Path.home() / ".cache/aspectrag/service-load")
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--direct", action="store_true", help="no worker-thread hop")
    ap.add_argument("--profile", action="store_true", help="cProfile call counts")
    args = ap.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    app, body = build(args.index, args.direct)
    sent = asyncio.run(loop(app, body, 200))  # warm-up
    if sent[0].get("status") != 200:
        raise SystemExit(f"the app answered {sent[0].get('status')}: {sent[1:]}")
    for _ in range(3):
        c0 = time.process_time()
        asyncio.run(loop(app, body, args.requests))
        cpu = (time.process_time() - c0) / args.requests
        print(f"{'direct' if args.direct else 'worker thread'}: {1e3 * cpu:.3f} ms CPU per request")
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        asyncio.run(loop(app, body, args.requests))
        prof.disable()
        st = pstats.Stats(prof)
        calls = sum(v[1] for v in st.stats.values())  # type: ignore[attr-defined]
        print(f"{calls / args.requests:.0f} Python function calls per request (event-loop thread)")
        st.sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()

"""``aspectrag serve``: the HTTP API, the OpenAI-compatible chat endpoint and the web page."""

from __future__ import annotations

import functools
import ipaddress
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from aspectrag.cli.common import DEFAULT_INDEX, IndexOpt, console, fail
from aspectrag.errors import AspectragError


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def encodes_in_turn(workers: int, threads: int | None, cores: int) -> bool:
    """Whether the ``workers`` server processes should run their model work (query encodes,
    extractive answers, reranking) one at a time (``create_app(serial_encode=True)``,
    :mod:`aspectrag.service.encoding`): when their torch threads (``threads`` each; None: all
    ``cores``) outnumber the cores.

    Measured with ``service_load.py --interleave 4 --seconds 5 --clients 1 32 --workers 2`` on
    2 cores, every worker with 2 torch threads (quiet; server p50 at 1 client, throughput at 32
    clients / in-process maximum):

    - encodes at once, libgomp's default spin-waiting: hybrid 0.33x [0.10, 0.52] (session 16;
      189 ms of server CPU per request against 18: threads spin at barriers whose partner
      another process has descheduled);
    - encodes at once, idle threads sleeping (``OMP_WAIT_POLICY=PASSIVE``, session 16's
      default): hybrid 1.45x, server p50 22-26 ms, +3.6 ms over in-process (every parallel
      region pays a wake-up); in turn and sleeping: 1.05x, server p50 26-33 ms;
    - in turn, default spinning (session 17, with the in-process side on one thread at 1
      client): hybrid 0.76x [0.72, 0.81], p50 +1.95 ms; ask 0.97x, bm25 0.82x;
    - in turn, spinning 10,000 iterations (:func:`short_spin`, now): hybrid 0.97x [0.54,
      1.16], p50 +0.58 ms.

    With queries on the ONNX query twin (session 18, same command): in turn 0.61x [0.57,
    0.64], p50 +1.05 ms; one ORT thread per worker (``ASPECTRAG_THREADS=1``, so not in turn)
    1.06x [0.94, 1.32] but p50 +2.97 ms, multi-query +6.39, an extractive answer +138. The
    default keeps the lower latency.
    """
    return workers > 1 and workers * (threads or cores) > cores


def short_spin() -> None:
    """Idle OpenMP threads of the worker processes spin 10,000 iterations (about 0.1 ms)
    before they sleep, instead of libgomp's 300,000 (``GOMP_SPINCOUNT``, unless set already):
    long enough to bridge the gaps between a forward pass's parallel regions, short enough
    that a worker that has just finished its turn stops competing for the cores with the one
    whose turn it is. ``service_load.py --interleave 4 --workers 2``, session 17, encodes in
    turn: hybrid at 32 clients 0.97x [0.54, 1.16] the in-process maximum (default spin count
    0.76x [0.72, 0.81]), server CPU 33 ms per request (48), p50 overhead +0.58 ms (+1.95).
    Set before the workers start (libgomp reads it when torch loads it)."""
    from aspectrag.settings import export_to_libraries

    export_to_libraries({"GOMP_SPINCOUNT": "10000"}, keep_user=frozenset({"GOMP_SPINCOUNT"}))


def build_app(params: dict[str, Any]) -> Any:
    """The ASGI app from ``serve``'s parameters (a module-level factory, so uvicorn workers can
    build it in their own process). Applies the process's thread settings first (the edge's
    job: torch gets its share of the cores, BLAS 1 thread; without it a query's forward pass
    and numpy fight over the cores)."""
    from aspectrag.cli.common import quiet_libraries
    from aspectrag.config import setup_threads
    from aspectrag.service.app import create_app

    setup_threads(params.get("threads") or None)
    quiet_libraries()
    _thread_lock_for_tqdm()
    p = dict(params)
    p.pop("threads", None)
    return create_app(p.pop("index"), **p)


def _prepare_query_twin(index: str) -> None:
    """Export the index's fp32 ONNX query twin once, here, before the workers start (each
    would otherwise find it missing and encode queries with torch): a no-op when it is cached
    or when the index is new, was not built by torch, or onnxruntime is missing."""
    from aspectrag.cli.common import prepare_twin
    from aspectrag.errors import AspectragError
    from aspectrag.index import Index
    from aspectrag.validate import require_index

    try:
        require_index(index)
    except AspectragError:  # no index yet: its first ingest is by torch, queries follow
        return
    prepare_twin(Index(index, readonly=True))


def _thread_lock_for_tqdm() -> None:
    """Give tqdm a thread lock. bm25s wraps every query's tokenizing in a (disabled) tqdm bar,
    whose default lock holds a multiprocessing semaphore; in a ``--workers`` process that
    semaphore is still registered when the worker is stopped, and the parent printed "There
    appear to be 2 leaked semaphore objects" at every shutdown. No bar in a server process
    is shared with another process, so a thread lock is enough."""
    import threading

    try:
        from tqdm import tqdm
    except ImportError:  # no tqdm: nothing to do
        return
    tqdm.set_lock(threading.RLock())


def serve(
    index: IndexOpt = DEFAULT_INDEX,
    host: Annotated[str | None, typer.Option(
        help="Address to bind (default: the service.host setting, 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(
        help="TCP port (default: the service.port setting, 8000).")] = None,
    workers: Annotated[int, typer.Option(
        help="Server processes sharing the index (searches in every one; ingest jobs run one at "
             "a time, by whichever process claims them, under the index's writer lock).")] = 1,
    keys_file: Annotated[Path | None, typer.Option(
        "--keys-file", help="API keys file: lines '<sha256 hex of key> read[,write]' "
        "(see --hash-key).")] = None,
    no_auth: Annotated[bool, typer.Option(
        "--no-auth", help="Allow a non-loopback bind without API keys.")] = False,
    cors_origin: Annotated[list[str] | None, typer.Option(
        "--cors-origin", help="Origin allowed by CORS (repeatable; default: CORS off).")] = None,
    max_upload_mb: Annotated[float | None, typer.Option(
        help="Largest upload, in MB (default: the service.upload_limit_mb setting, 50).")] = None,
    request_timeout: Annotated[float | None, typer.Option(
        help="Seconds a search/ask may take before a 503 answer (default: the "
             "service.request_timeout_s setting, 60).")] = None,
    allow_host: Annotated[list[str] | None, typer.Option(
        "--allow-host", help="Host or CIDR URL ingest may reach although not public "
        "(repeatable; default: only public addresses).")] = None,
    hash_key: Annotated[bool, typer.Option(
        "--hash-key", help="Print a new API key and its keys-file line, then exit.")] = False,
) -> None:
    """Serve the index over HTTP: JSON API (/docs), OpenAI-compatible /v1/chat/completions,
    and the web page at /."""
    from aspectrag.service.auth import hash_key as _hash
    from aspectrag.service.auth import load_keys_file, new_key

    if hash_key:
        key = new_key()
        console.print(f"API key (give it to the client; it is not stored): {key}", highlight=False)
        print(f"{_hash(key)} read,write")
        return
    try:
        import uvicorn
    except ImportError:
        fail("aspectrag serve needs the service extra: pip install 'aspectrag[service]'")
    from aspectrag.cli.common import settings

    svc = settings().service  # flags > environment > config file > defaults
    host = host or svc.host
    port = port or svc.port
    max_upload_mb = max_upload_mb if max_upload_mb is not None else svc.upload_limit_mb
    request_timeout = request_timeout if request_timeout is not None else svc.request_timeout_s
    cors_origin = cors_origin or list(svc.cors_origins)
    allow_host = allow_host or list(settings().crawl.allow_hosts)
    keys = {k.sha256: set(k.scopes) for k in svc.api_keys} or None
    if keys_file is not None:
        try:
            keys = load_keys_file(keys_file)
        except AspectragError as e:
            fail(str(e))
    if not is_loopback(host) and keys is None and not no_auth:
        fail(f"--host {host} is reachable from other machines: give --keys-file with API keys, "
             "or --no-auth to serve without authentication")
    if workers < 1:
        fail("--workers must be at least 1")
    threads = settings().threads or None  # torch threads per worker (None: all cores)
    params = {"index": str(index), "api_keys": keys, "cors_origins": tuple(cors_origin or ()),
              "max_upload_bytes": int(max_upload_mb * 10**6),
              "request_timeout": request_timeout, "job_retention": svc.job_retention_s,
              "url_allow": tuple(allow_host or ()),
              "search_concurrency": svc.search_concurrency or (
                  max(1, (os.cpu_count() or 1) // workers) if workers > 1 else 0),
              "ingest_nice": svc.ingest_nice if svc.ingest_process else None,
              "threads": threads,
              "serial_encode": encodes_in_turn(workers, threads, os.cpu_count() or 1)}
    if params["serial_encode"]:
        short_spin()
    _prepare_query_twin(str(index))
    from aspectrag.service.http import http_protocol

    config = uvicorn.Config(functools.partial(build_app, params), factory=True, host=host,
                            port=port, workers=workers, log_level="warning",
                            timeout_graceful_shutdown=10, http=http_protocol())
    console.print(f"serving {index} on http://{host}:{port}/ (API docs: /docs"
                  + (f", {workers} workers" if workers > 1 else "") + ")", highlight=False)
    if workers == 1:
        uvicorn.Server(config).run()
        return
    from uvicorn.supervisors import Multiprocess

    from aspectrag.service.http import ReusePortListener, bind_reuse_port, reuse_port_balances

    if not reuse_port_balances() or not port:  # one shared socket (connections may favour one worker)
        Multiprocess(config, sockets=[config.bind_socket()]).run()
        return
    try:  # fail here, with a message, rather than in every worker
        bind_reuse_port(host, port).close()
    except OSError as e:
        fail(f"cannot listen on {host}:{port}: {e}; choose another --port")
    listeners: Any = ReusePortListener(host, port)  # each worker binds its own socket
    Multiprocess(config, sockets=listeners).run()

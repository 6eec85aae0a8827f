"""The ASGI application: ``create_app(index, ...)`` builds the FastAPI app serving one index.

Routes are in ``routes.py`` (search, ask, documents, jobs, stats), ``openai_compat.py``
(``/v1/chat/completions``, ``/v1/models``) and the web page (``static/``, at ``/``).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.routing import Route

from aspectrag.index import Index
from aspectrag.service import problems
from aspectrag.service.auth import normalise_keys
from aspectrag.service.embed_process import DEFAULT_NICE
from aspectrag.service.encoding import LOCK_FILE
from aspectrag.service.engine import Engine
from aspectrag.service.jobs import JobRunner, JobStore
from aspectrag.service.state import API_VERSION, UPLOAD_TYPES, ServiceConfig, ServiceState


def create_app(
    index: Index | str | Path,
    *,
    api_keys: Mapping[str, set[str] | frozenset[str]] | None = None,
    cors_origins: Sequence[str] = (),
    max_upload_bytes: int = 50 * 1024 * 1024,
    upload_types: Sequence[str] = UPLOAD_TYPES,
    request_timeout: float = 60.0,
    job_retention: float = 7 * 86400.0,
    url_allow: Sequence[str] = (),
    allowed_llms: Sequence[str] = (),
    state_dir: str | Path | None = None,
    run_writer: bool = True,
    search_concurrency: int = 0,
    ingest_nice: int | None = DEFAULT_NICE,
    serial_encode: bool = False,
) -> FastAPI:
    """The FastAPI app serving ``index`` (an ``Index``, or its location: then opened with
    ``for_queries``, so queries of an index built by torch encode with its fp32 ONNX twin when
    that is exported; ``aspectrag serve`` exports it at start-up).

    Args:
        api_keys: SHA-256 hex digest of each API key -> scopes (``{"read"}``, ``{"read",
            "write"}``); None serves without authentication. See :mod:`aspectrag.service.auth`.
        cors_origins: origins allowed to call the API from a browser (default: CORS off).
        max_upload_bytes: largest ``POST /v1/documents`` body (413 beyond).
        upload_types: accepted upload suffixes (415 otherwise).
        request_timeout: seconds before a search/ask is answered 503 (a streamed answer ends
            with an ``error`` event).
        job_retention: seconds finished jobs are kept in the job table.
        url_allow: hosts / CIDRs the SSRF guard lets URL ingest reach (default none).
        allowed_llms: extra ``llm`` specs requests may use (e.g. ``hf:/models/x``).
        state_dir: folder of the job table and uploads (default ``<index folder>/service``).
        run_writer: start the writer thread that runs ingest jobs.
        search_concurrency: searches run at once, the others wait their turn (0: the
            process's cores / its model-runtime threads, at least 1; see
            :class:`~aspectrag.service.engine.Engine`).
        ingest_nice: ingest jobs embed in a child process at this nice increment (0-19), so
            searches keep the cores during an ingest; None: in this process (see
            :mod:`aspectrag.service.embed_process`).
        serial_encode: searches and answers encode one at a time across every process
            serving this state folder (``<state_dir>/encode.lock``; ``serve --workers N``
            sets it, see :mod:`aspectrag.service.encoding`).

    Raises:
        aspectrag.errors.ConfigError: a malformed API key table.
    """
    # a location: queries encode with the index's torch-free ONNX twin when it is ready (2.4x
    # faster than torch per query, and no OpenMP team per calling thread); documents still
    # embed with the runtime that built the index (``Index.embedder_factory``)
    idx = index if isinstance(index, Index) else Index(index, for_queries=True)
    config = ServiceConfig(
        api_keys=normalise_keys(api_keys) if api_keys is not None else None,
        cors_origins=tuple(cors_origins), max_upload_bytes=max_upload_bytes,
        upload_types=tuple(s.lower() for s in upload_types), request_timeout=request_timeout,
        job_retention=job_retention, url_allow=tuple(url_allow), allowed_llms=tuple(allowed_llms),
        state_dir=Path(state_dir) if state_dir is not None else None, run_writer=run_writer,
        search_concurrency=search_concurrency)
    sdir = config.state_dir or Path(idx.path) / "service"
    engine = Engine(idx, allowed_llms=config.allowed_llms, max_searches=search_concurrency,
                    queue_timeout=config.request_timeout, ingest_nice=ingest_nice,
                    encode_lock=sdir / LOCK_FILE if serial_encode else None)
    state = ServiceState(config, engine, JobStore(sdir), sdir)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        from aspectrag.service.writer import make_handler

        if config.run_writer:
            low = ingest_nice is not None  # the writer thread yields to searches as well
            state.runner = JobRunner(state.jobs, make_handler(state),
                                     retention_s=config.job_retention,
                                     nice=ingest_nice if low else None,
                                     switch_interval=0.001 if low else None)
            state.runner.start()
        threading.Thread(target=_warm_up, args=(state,), daemon=True).start()
        yield
        if state.runner is not None:
            state.runner.stop()
        state.pool.stop()
        state.search_pool.stop()
        state.engine.close()

    app = FastAPI(title="aspectrag", version=API_VERSION,
                  summary="Retrieval-augmented generation for questions with many aspects.",
                  lifespan=lifespan)
    app.state.service = state
    problems.install(app)
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins),
                           allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "Content-Type"])
    from aspectrag.service import openai_compat, routes
    from aspectrag.service.limits import BodyLimit

    app.add_middleware(BodyLimit, upload_paths=("/v1/documents",),
                       max_upload=config.max_upload_bytes, max_body=config.max_body_bytes)
    app.include_router(routes.router)
    # the hottest path first, as a plain Starlette route (see routes.search); the FastAPI
    # route of the same function stays behind it for the OpenAPI document
    app.router.routes.insert(0, Route("/v1/search", routes.search, methods=["POST"]))
    app.include_router(openai_compat.router)
    static = files("aspectrag.service") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(str(static / "index.html"), media_type="text/html")

    return app


def _warm_up(state: ServiceState) -> None:
    try:
        state.engine.warm_up()
    except Exception as e:  # reported by /readyz
        state.warm_error = f"{type(e).__name__}: {e}"
        problems.log.warning("warm-up failed: %s", state.warm_error)
    state.ready.set()

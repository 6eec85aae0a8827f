"""The service's shared state: its configuration (limits, keys), the engine (the door into the
library), the durable job table and the writer; routes reach it through :func:`service`."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from fastapi import Request

from aspectrag.service.auth import scopes_of
from aspectrag.service.engine import Engine, SearchSpec
from aspectrag.service.jobs import JobRunner, JobStore
from aspectrag.service.pool import WorkerPool
from aspectrag.service.problems import Problem
from aspectrag.types import SearchResult

T = TypeVar("T")

API_VERSION = "v1"

#: File types accepted by uploads (the loaders' types).
UPLOAD_TYPES = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf")


@dataclass(frozen=True)
class ServiceConfig:
    """Service limits and security settings (all passed in; nothing read from the environment).

    Attributes:
        api_keys: SHA-256 hex of each key -> its scopes (``read``, ``write``); None: no auth.
        cors_origins: origins allowed by CORS (empty: CORS off).
        max_upload_bytes: largest upload request body, in bytes.
        max_body_bytes: largest body of any other request, in bytes.
        upload_types: accepted file-name suffixes of uploads.
        request_timeout: seconds a search/ask may take before a 503 answer; a streamed answer
            ends with an ``error`` event (503) when it runs longer.
        job_retention: seconds a finished job stays in the job table (then it is deleted).
        url_allow: hosts / CIDRs exempt from the SSRF guard for URL ingest.
        allowed_llms: ``llm`` specs a request may name besides extractive/openai:*.
        state_dir: job table and uploaded files (default ``<index>/service``).
        run_writer: run the writer thread in this process (off only in tests).
        search_concurrency: searches run at once (0: the process's cores); see ``Engine``.
    """

    api_keys: Mapping[str, frozenset[str]] | None = None
    cors_origins: tuple[str, ...] = ()
    max_upload_bytes: int = 50 * 1024 * 1024
    max_body_bytes: int = 1024 * 1024
    upload_types: tuple[str, ...] = UPLOAD_TYPES
    request_timeout: float = 60.0
    job_retention: float = 7 * 86400.0
    url_allow: tuple[str, ...] = ()
    allowed_llms: tuple[str, ...] = ()
    state_dir: Path | None = None
    run_writer: bool = True
    search_concurrency: int = 0


@dataclass
class ServiceState:
    """What the routes share: the engine, the job table, the writer thread, the worker
    threads of blocking calls, readiness."""

    config: ServiceConfig
    engine: Engine
    jobs: JobStore
    state_dir: Path
    runner: JobRunner | None = None
    ready: threading.Event = field(default_factory=threading.Event)
    warm_error: str | None = None
    pool: WorkerPool = field(default_factory=WorkerPool)
    #: threads of ``POST /v1/search`` only, as many as the engine runs searches at once: a
    #: search waiting its turn waits in this pool's queue (a C ``SimpleQueue``), not in a
    #: thread of its own contending for the GIL and the engine's semaphore
    search_pool: WorkerPool = field(init=False)

    def __post_init__(self) -> None:
        self.search_pool = WorkerPool(self.engine.max_searches, "aspectrag-search")

    async def run(self, fn: Callable[..., T], *args: Any, limit_s: float | None = None,
                  pool: WorkerPool | None = None, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` in a worker thread (of ``pool``, default :attr:`pool`),
        answered with 503 after the request time limit (a call not started by then never runs;
        a running one finishes in the background)."""
        limit = self.config.request_timeout if limit_s is None else limit_s
        try:
            async with asyncio.timeout(limit):  # in this task (wait_for would start another)
                return await (pool or self.pool).run(lambda: fn(*args, **kwargs))
        except TimeoutError:
            raise Problem(503, "Request timed out",
                          f"the request took longer than {limit:g} s; ask for fewer hits (k) or a "
                          "cheaper retriever, or retry later", headers={"Retry-After": "5"}) from None

    async def search(self, query: str, k: int, spec: SearchSpec,
                     sources: Sequence[str] | None = None) -> SearchResult:
        """``engine.search`` for ``POST /v1/search``: on the event loop when it is expected
        to be shorter than ``engine.inline_below`` (:meth:`Engine.search_now`), else in
        :attr:`search_pool` under the request time limit."""
        out = self.engine.search_now(query, k, spec, sources)
        if out is None:
            out = await self.run(self.engine.search, query, k, spec, sources,
                                 pool=self.search_pool)
        return out

    def authorize(self, request: Request, scope: str) -> None:
        """Raise 401/403 unless the request's bearer key has ``scope`` (no keys: open)."""
        keys = self.config.api_keys
        if keys is None:
            return
        scopes = scopes_of(keys, request.headers.get("authorization"))
        if scopes is None:
            raise Problem(401, "Unauthorized", "send an API key as 'Authorization: Bearer KEY'",
                          headers={"WWW-Authenticate": "Bearer"})
        if scope not in scopes:
            raise Problem(403, "Forbidden", f"this API key lacks the '{scope}' scope")


def service(request: Request) -> ServiceState:
    """The ``ServiceState`` of the app handling ``request``."""
    return request.app.state.service  # type: ignore[no-any-return]

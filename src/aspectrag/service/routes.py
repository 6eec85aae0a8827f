"""The versioned JSON API: search, ask (JSON or Server-Sent Events), documents, jobs, stats,
health. Every route checks its scope (``read`` / ``write``) when API keys are configured."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError

from aspectrag.errors import AspectragError
from aspectrag.service.engine import hit_fields
from aspectrag.service.problems import Problem, from_library_error
from aspectrag.service.schemas import (
    AskRequest,
    CrawlDocuments,
    SearchRequest,
    TextDocument,
    UrlDocument,
)
from aspectrag.service.state import ServiceState, service
from aspectrag.service.writer import safe_name

router = APIRouter()


class FastJSONResponse(JSONResponse):
    """A JSON response serialised by orjson (numpy scalars and arrays allowed). Routes that
    return many hits return it directly, which skips FastAPI's ``jsonable_encoder`` walk over
    every field: measured in ``benchmarks/service_load.py`` as most of the per-request overhead."""

    def render(self, content: Any) -> bytes:
        import orjson

        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


@router.get("/healthz", tags=["health"])
def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/readyz", tags=["health"])
def readyz(request: Request) -> dict[str, str]:
    """Readiness: the index is open and the embedder loaded (503 until then)."""
    st = service(request)
    if not st.ready.is_set():
        raise Problem(503, "Not ready", "the server is loading the index; retry in a few seconds",
                      headers={"Retry-After": "2"})
    if st.warm_error:
        raise Problem(503, "Not ready", f"the index could not be opened: {st.warm_error}")
    return {"status": "ready"}


_SEARCH_SCHEMA = {"requestBody": {"content": {"application/json": {
    "schema": SearchRequest.model_json_schema()}}, "required": True}}


# Served by a plain Starlette route (``create_app``) ahead of this FastAPI one, which is kept
# for the OpenAPI document: FastAPI's routing and request handling cost 0.11 ms of the app's
# 0.20 ms of CPU per search (``benchmarks/service_overhead.py``), about half of a bm25 search,
# so the body is parsed here (the same model, the same 422 problem).
@router.post("/v1/search", tags=["search"], response_model=None, openapi_extra=_SEARCH_SCHEMA)
async def search(request: Request) -> FastJSONResponse:
    """Top-k hits with score, chunk, location and provenance (which generated query found each
    hit at which rank), plus the queries searched."""
    st = service(request)
    st.authorize(request, "read")
    try:
        body = SearchRequest.model_validate_json(await request.body())
    except ValidationError as e:
        raise RequestValidationError(e.errors(include_url=False)) from None
    out = await st.search(body.query, body.k, body.spec(), body.sources)
    return FastJSONResponse({"query": body.query, "retriever": body.retriever,
                             "queries": out.queries, "hits": [hit_fields(h) for h in out.hits],
                             "timings": out.timings, "info": out.info})


@router.post("/v1/ask", tags=["ask"], responses={200: {"content": {"text/event-stream": {}}}})
async def ask(body: AskRequest, request: Request) -> Any:
    """Answer with numbered citations; ``stream: true`` answers with Server-Sent Events
    ``queries``, ``hits``, ``token``..., ``citations``, ``done`` (or ``error``)."""
    st = service(request)
    st.authorize(request, "read")
    question = body.question or body.query
    if not question.strip():
        raise Problem(422, "Invalid request", "question: give the question to answer",
                      field="question")
    spec = body.spec()
    kw: dict[str, Any] = {"llm": body.llm, "decoding": body.decoding, "sources": body.sources}
    if not body.stream:
        return FastJSONResponse(await st.run(st.engine.ask, question, body.k, spec, **kw))
    await st.run(lambda: (st.engine.retriever(spec), st.engine.generator(body.llm, body.decoding)))
    events = st.engine.ask_events(question, body.k, spec, **kw)
    return StreamingResponse(sse(events, st.config.request_timeout), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def sse(events: Iterator[tuple[str, Any]], time_limit: float | None = None) -> Iterator[str]:
    """Server-Sent Events from ``(event, data)`` pairs; an error ends the stream with an
    ``error`` event carrying a problem object (no stack trace). ``time_limit``: seconds after
    which the stream ends with a 503 ``error`` event (checked between events, so a generator
    stuck inside one step is cut at its next event)."""
    end = time.monotonic() + time_limit if time_limit is not None else None
    try:
        for event, data in events:
            yield f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
            if end is not None and event != "done" and time.monotonic() > end:
                close = getattr(events, "close", None)
                if close is not None:
                    close()
                yield _error_event(503, "Request timed out",
                                   f"the answer took longer than {time_limit:g} s; ask for fewer "
                                   "hits (k) or a faster model, or retry later")
                return
    except (AspectragError, ValueError) as e:
        p = from_library_error(e)
        yield _error_event(p.status, p.title, p.detail)
    except Exception as e:  # never a traceback to the client
        from aspectrag.service.problems import log

        log.exception("ask stream failed")
        yield _error_event(500, "Internal error", f"the answer failed ({type(e).__name__}); "
                           "the details are in the server log")


def _error_event(status: int, title: str, detail: str) -> str:
    return "event: error\ndata: " + json.dumps(
        {"status": status, "title": title, "detail": detail}) + "\n\n"


# -- documents and jobs ------------------------------------------------------------------------
_UPLOAD_SCHEMA = {
    "requestBody": {"content": {
        "multipart/form-data": {"schema": {"type": "object", "properties": {
            "files": {"type": "array", "items": {"type": "string", "format": "binary"}}}}},
        "application/json": {"schema": {"oneOf": [
            {"$ref": "#/components/schemas/UrlDocument"},
            {"$ref": "#/components/schemas/TextDocument"}]}},
    }, "required": True}}


@router.post("/v1/documents", tags=["documents"], status_code=202, openapi_extra=_UPLOAD_SCHEMA,
             responses={202: {"description": "Queued; poll GET /v1/jobs/{id}."}})
async def add_documents(request: Request) -> JSONResponse:
    """Queue an ingest: multipart files (field ``files`` or ``file``), JSON ``{url}``, or JSON
    ``{text, title, source}``. Answers 202 with the job id."""
    st = service(request)
    st.authorize(request, "write")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        job_id = await _submit_files(st, request)
    elif ctype == "application/json":
        job_id = await _submit_json(st, request)
    else:
        raise Problem(415, "Unsupported media type", "send multipart/form-data with files, or "
                      "JSON {\"url\": ...} or {\"text\": ..., \"title\": ..., \"source\": ...}")
    if st.runner is not None:
        st.runner.notify()
    return JSONResponse({"job": job_id, "status": "queued", "url": f"/v1/jobs/{job_id}"},
                        status_code=202, headers={"Location": f"/v1/jobs/{job_id}"})


async def _submit_files(st: ServiceState, request: Request) -> str:
    form = await request.form(max_files=1000)
    uploads = [v for k, v in form.multi_items() if k in ("files", "file") and hasattr(v, "read")]
    if not uploads:
        raise Problem(422, "Invalid request", "no files in the form; send them in the field 'files'",
                      field="files")
    names: list[str] = []
    for up in uploads:
        name = safe_name(up.filename or "")
        suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
        if suffix not in st.config.upload_types:
            raise Problem(415, "Unsupported media type",
                          f"{up.filename}: file type not accepted; upload one of "
                          f"{' '.join(st.config.upload_types)}")
        names.append(name)
    if len(set(names)) != len(names):
        raise Problem(422, "Invalid request", "two uploaded files have the same name", field="files")
    incoming = st.state_dir / "incoming" / uuid.uuid4().hex
    incoming.mkdir(parents=True)
    try:
        for up, name in zip(uploads, names, strict=True):
            with open(incoming / name, "wb") as f:
                shutil.copyfileobj(up.file, f)  # type: ignore[union-attr]
    except BaseException:
        shutil.rmtree(incoming, ignore_errors=True)
        raise
    return st.jobs.submit("files", {"incoming": str(incoming), "files": names})


async def _submit_json(st: ServiceState, request: Request) -> str:
    try:
        data = await request.json()
    except ValueError:
        raise Problem(400, "Bad request", "the body is not valid JSON") from None
    try:
        if isinstance(data, dict) and "crawl" in data:
            crawl = CrawlDocuments.model_validate(data)
            from aspectrag.service.netguard import check_url

            for seed in crawl.crawl:  # refused seeds: a 400 now (every fetch is checked again)
                await st.run(lambda seed=seed: check_url(seed, st.config.url_allow))
            return st.jobs.submit("crawl", crawl.model_dump())
        if isinstance(data, dict) and "url" in data:
            doc = UrlDocument.model_validate(data)
            from aspectrag.service.netguard import resolve_redirects

            final = await st.run(lambda: resolve_redirects(doc.url, allow=st.config.url_allow))
            return st.jobs.submit("url", {"url": doc.url if final == doc.url else final,
                                          "requested": doc.url})
        text = TextDocument.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(x) for x in err["loc"])
        raise Problem(422, "Invalid request", f"{field}: {err['msg']}; send {{\"url\": ...}} or "
                      "{\"text\": ..., \"title\": ..., \"source\": ...}", field=field) from None
    return st.jobs.submit("text", text.model_dump())


@router.get("/v1/jobs/{job_id}", tags=["documents"])
def get_job(job_id: str, request: Request) -> dict[str, Any]:
    """Progress of an ingest job: status (queued | running | succeeded | failed), documents,
    chunks done/total, chunks/s, and the result (failures with reasons) when finished."""
    st = service(request)
    st.authorize(request, "read")
    job = st.jobs.get(job_id)
    if job is None:
        raise Problem(404, "Not found", f"no job {job_id}; POST /v1/documents returns job ids")
    return job


@router.get("/v1/documents", tags=["documents"])
def list_documents(request: Request, offset: int = Query(0, ge=0),
                   limit: int = Query(50, ge=1, le=1000)) -> dict[str, Any]:
    """The indexed sources, in insertion order, ``limit`` from ``offset``."""
    st = service(request)
    st.authorize(request, "read")
    sources = st.engine.sources()
    return {"total": len(sources), "offset": offset, "limit": limit,
            "items": [{"source": s} for s in sources[offset: offset + limit]]}


@router.get("/v1/documents/text", tags=["documents"])
def document_text(request: Request, source: str = Query(min_length=1)) -> dict[str, Any]:
    """The full text of one indexed document (``{source, title, text}``)."""
    st = service(request)
    st.authorize(request, "read")
    doc = st.engine.document(source)
    if doc is None:
        raise Problem(404, "Not found", f"{source}: not in the index (GET /v1/documents lists them)")
    return doc


@router.delete("/v1/documents", tags=["documents"])
async def delete_documents(request: Request, source: str = Query(min_length=1)) -> JSONResponse:
    """Delete a document (or every document under a folder / URL prefix) through the writer;
    200 ``{removed}`` when done, 202 with the job if it is still queued after the time limit."""
    st = service(request)
    st.authorize(request, "write")
    job_id = st.jobs.submit("remove", {"source": source})
    if st.runner is not None:
        st.runner.notify()
    job = await st.run(st.jobs.wait, job_id, st.config.request_timeout,
                       limit_s=st.config.request_timeout + 5)
    if job is None or job["status"] not in ("succeeded", "failed"):
        return JSONResponse({"job": job_id, "status": "queued"}, status_code=202)
    if job["status"] == "failed":
        raise Problem(400, "Bad request", job["error"] or "the removal failed")
    removed = job["result"]["removed"]
    if removed == 0:
        raise Problem(404, "Not found", f"{source}: not in the index (GET /v1/documents lists them)")
    return JSONResponse({"removed": removed, "job": job_id})


@router.get("/v1/stats", tags=["index"])
def stats(request: Request) -> dict[str, Any]:
    """Documents, chunks, embedder, vector spaces, retrievers and job counts."""
    st = service(request)
    st.authorize(request, "read")
    s = st.engine.stats()
    s["jobs"] = st.jobs.counts()
    return s

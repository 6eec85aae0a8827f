"""Errors as ``application/problem+json`` (RFC 9457): a title, a status and a detail that says
what to do; never a stack trace. OpenAI-compatible paths also get an ``error`` member, which
the ``openai`` client reads."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from aspectrag.errors import AspectragError

log = logging.getLogger("aspectrag.service")

PROBLEM = "application/problem+json"


class Problem(Exception):
    """An HTTP error answered as problem+json.

    Args:
        status: HTTP status code.
        title: short summary ("Not found").
        detail: one line saying what went wrong and what to do.
        headers: extra response headers (e.g. ``WWW-Authenticate``).
        extra: further members (e.g. ``field``).
    """

    def __init__(self, status: int, title: str, detail: str, *,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail
        self.headers = headers or {}
        self.extra = extra


def problem_response(request: Request, p: Problem) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": p.title, "status": p.status,
                            "detail": p.detail, "instance": request.url.path, **p.extra}
    if request.url.path.startswith(("/v1/chat", "/v1/models")):
        body["error"] = {"message": p.detail, "type": p.title.lower().replace(" ", "_"),
                         "code": p.status}
    return JSONResponse(body, status_code=p.status, media_type=PROBLEM, headers=p.headers)


def from_library_error(e: Exception) -> Problem:
    """The problem for an ``AspectragError`` or ``ValueError`` raised by the library."""
    name = type(e).__name__
    if name == "IndexNotFoundError":
        return Problem(404, "Index not found", str(e))
    if name == "InvalidRequestError":
        field = getattr(e, "field", None)
        return Problem(422, "Invalid request", str(e), **({"field": field} if field else {}))
    if name == "IndexBusyError":
        return Problem(409, "Index busy", str(e))
    if name in ("GenerationError",):
        return Problem(502, "Generation failed", str(e))
    return Problem(400, "Bad request", str(e))


def install(app: FastAPI) -> None:
    """Register the problem+json handlers on ``app``."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, e: Problem) -> JSONResponse:
        return problem_response(request, e)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        errs = e.errors()
        parts = []
        for err in errs[:5]:
            loc = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
            parts.append(f"{loc or 'body'}: {err.get('msg', 'invalid')}")
        field = ".".join(str(x) for x in errs[0].get("loc", ()) if x != "body") if errs else None
        return problem_response(request, Problem(
            422, "Invalid request", "; ".join(parts) + " (see /docs for the request schema)",
            field=field))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, e: StarletteHTTPException) -> JSONResponse:
        detail = e.detail if isinstance(e.detail, str) else "error"
        if e.status_code == 404 and detail == "Not Found":
            detail = f"no such endpoint {request.url.path}; see /docs for the API"
        if e.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}; see /docs"
        return problem_response(request, Problem(e.status_code, _title(e.status_code), detail))

    @app.exception_handler(AspectragError)
    async def _lib(request: Request, e: AspectragError) -> JSONResponse:
        return problem_response(request, from_library_error(e))

    @app.exception_handler(ValueError)
    async def _value(request: Request, e: ValueError) -> JSONResponse:
        return problem_response(request, from_library_error(e))

    @app.exception_handler(Exception)
    async def _internal(request: Request, e: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return problem_response(request, Problem(
            500, "Internal error", f"the server failed on this request ({type(e).__name__}); "
            "the details are in the server log"))


def _title(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"

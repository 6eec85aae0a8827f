"""Request body size limits (pure ASGI middleware): ``Content-Length`` is checked up front and
the bytes actually received are counted, so a chunked upload cannot exceed the limit either."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

Scope = dict[str, Any]


class BodyTooLarge(Exception):
    """Raised from ``receive`` when a body passes its limit (answered 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


class BodyLimit:
    """Answer 413 problem+json to bodies over ``max_upload`` bytes on ``upload_paths`` and over
    ``max_body`` bytes elsewhere."""

    def __init__(self, app: Any, *, upload_paths: Sequence[str], max_upload: int,
                 max_body: int) -> None:
        self.app, self.upload_paths = app, tuple(upload_paths)
        self.max_upload, self.max_body = max_upload, max_body

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = self.max_upload if scope["path"] in self.upload_paths else self.max_body
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await _too_large(scope, send, limit)
            return
        seen = 0

        async def limited() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message  # type: ignore[no-any-return]

        started = False

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited, tracking_send)
        except BodyTooLarge as e:
            if not started:
                await _too_large(scope, send, e.limit)


async def _too_large(scope: Scope, send: Any, limit: int) -> None:
    body = json.dumps({
        "type": "about:blank", "title": "Payload too large", "status": 413,
        "detail": f"the request body is over the limit of {limit:,} bytes; send a smaller file "
                  "or ask the operator to raise the upload limit",
        "instance": scope["path"]}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/problem+json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})

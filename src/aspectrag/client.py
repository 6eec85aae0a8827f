"""HTTP client of ``aspectrag serve``, mirroring ``Index.search`` / ``Index.ask``.

Example::

    from aspectrag.client import Client
    c = Client("http://127.0.0.1:8000", api_key="ar-...")
    hits = c.search("task decomposition", k=5, retriever="hybrid")
    answer = c.ask("What are the approaches to Task Decomposition?")
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from aspectrag.errors import AspectragError
from aspectrag.types import Answer, Chunk, Citation, Hit


class ServiceError(AspectragError):
    """The server answered with an error (``status``: HTTP status; the message is the
    problem's detail)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


class Client:
    """A client of one aspectrag server.

    Args:
        base_url: e.g. ``http://127.0.0.1:8000``.
        api_key: bearer key (needed when the server has API keys).
        timeout: seconds per request.

    Raises (from every method): ``ServiceError`` for an error answer; ``httpx.HTTPError`` when
    the server cannot be reached.
    """

    def __init__(self, base_url: str, api_key: str | None = None, *, timeout: float = 60.0) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        r = self._http.request(method, path, **kw)
        if r.status_code >= 400:
            try:
                detail = r.json().get("detail") or r.text
            except ValueError:
                detail = r.text
            raise ServiceError(r.status_code, str(detail))
        return r.json()

    # -- reading ----------------------------------------------------------------------------
    def search_json(self, query: str, k: int = 10, *, retriever: str = "auto",
                    sources: Sequence[str] | None = None, **options: Any) -> dict[str, Any]:
        """The raw ``POST /v1/search`` answer: ``{"hits", "queries", "timings", "info"}``."""
        return self._call("POST", "/v1/search", json=_request(query, k, retriever, sources, options))  # type: ignore[no-any-return]

    def search(self, query: str, k: int = 10, *, retriever: str = "auto",
               sources: Sequence[str] | None = None, **options: Any) -> list[Hit]:
        """Top-``k`` hits, like :meth:`aspectrag.index.Index.search` (``options``: ``base``,
        ``rerank``, ``rerank_depth`` and retriever options such as ``weight``)."""
        body = self.search_json(query, k, retriever=retriever, sources=sources, **options)
        return [hit_from_json(h) for h in body["hits"]]

    def ask(self, question: str, k: int = 5, *, retriever: str = "auto",
            llm: str | None = None, decoding: str = "concat",
            sources: Sequence[str] | None = None, **options: Any) -> Answer:
        """Answer with citations, like :meth:`aspectrag.index.Index.ask`."""
        body = _request(question, k, retriever, sources, options, question=True)
        body.update(llm=llm, decoding=decoding)
        return answer_from_json(self._call("POST", "/v1/ask", json=body))

    def ask_stream(self, question: str, k: int = 5, *, retriever: str = "auto",
                   llm: str | None = None, sources: Sequence[str] | None = None,
                   **options: Any) -> Iterator[tuple[str, Any]]:
        """The answer's Server-Sent Events as ``(event, data)``: ``queries``, ``hits``,
        ``token``..., ``citations``, ``done`` (an ``error`` event raises ``ServiceError``)."""
        body = _request(question, k, retriever, sources, options, question=True)
        body.update(llm=llm, stream=True)
        with self._http.stream("POST", "/v1/ask", json=body) as r:
            if r.status_code >= 400:
                r.read()
                raise ServiceError(r.status_code, r.json().get("detail", r.text))
            event, data = "message", ""
            for line in r.iter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    data += line[6:]
                elif not line and data:
                    payload = json.loads(data)
                    if event == "error":
                        raise ServiceError(int(payload.get("status", 500)), payload.get("detail", ""))
                    yield event, payload
                    event, data = "message", ""

    def stats(self) -> dict[str, Any]:
        """``GET /v1/stats``."""
        return self._call("GET", "/v1/stats")  # type: ignore[no-any-return]

    def documents(self, offset: int = 0, limit: int = 50) -> dict[str, Any]:
        """``GET /v1/documents``: ``{"total", "offset", "limit", "items": [{"source"}]}``."""
        return self._call("GET", "/v1/documents", params={"offset": offset, "limit": limit})  # type: ignore[no-any-return]

    # -- writing ----------------------------------------------------------------------------
    def add_files(self, paths: Sequence[str | Path]) -> str:
        """Upload files; returns the job id (see :meth:`wait`)."""
        handles = [open(p, "rb") for p in paths]  # noqa: SIM115
        try:
            files = [("files", (Path(p).name, h)) for p, h in zip(paths, handles, strict=True)]
            return self._call("POST", "/v1/documents", files=files)["job"]  # type: ignore[no-any-return]
        finally:
            for h in handles:
                h.close()

    def add_text(self, text: str, *, source: str, title: str = "") -> str:
        """Add a text document; returns the job id."""
        return self._call("POST", "/v1/documents",  # type: ignore[no-any-return]
                          json={"text": text, "title": title, "source": source})["job"]

    def add_url(self, url: str) -> str:
        """Add a web page (the server refuses non-public addresses); returns the job id."""
        return self._call("POST", "/v1/documents", json={"url": url})["job"]  # type: ignore[no-any-return]

    def job(self, job_id: str) -> dict[str, Any]:
        """``GET /v1/jobs/{id}``."""
        return self._call("GET", f"/v1/jobs/{job_id}")  # type: ignore[no-any-return]

    def wait(self, job_id: str, timeout: float = 600.0, poll: float = 0.2) -> dict[str, Any]:
        """Poll a job until it has finished (or ``timeout`` seconds); the job."""
        end = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["status"] in ("succeeded", "failed") or time.monotonic() > end:
                return job
            time.sleep(poll)

    def remove(self, source: str) -> int:
        """Delete a document (or a folder / URL prefix); the number removed."""
        return int(self._call("DELETE", "/v1/documents", params={"source": source}).get("removed", 0))


def _request(query: str, k: int, retriever: str, sources: Sequence[str] | None,
             options: dict[str, Any], question: bool = False) -> dict[str, Any]:
    opts = dict(options)
    body: dict[str, Any] = {"question" if question else "query": query, "k": k,
                            "retriever": retriever}
    for key in ("base", "rerank", "rerank_depth"):
        if key in opts:
            body[key] = opts.pop(key)
    if sources:
        body["sources"] = list(sources)
    if opts:
        body["options"] = opts
    return body


def chunk_from_json(d: dict[str, Any]) -> Chunk:
    """A ``Chunk`` from its API JSON (``index`` parsed from the chunk id)."""
    tail = d["chunk_id"].rsplit("#", 1)[-1]
    return Chunk(d["chunk_id"], d["doc_id"], d["source"], d.get("title", ""),
                 int(tail) if tail.isdigit() else 0, d["text"], d["start"], d["end"],
                 d.get("page"), d.get("heading"))


def hit_from_json(d: dict[str, Any]) -> Hit:
    """A ``Hit`` from its API JSON."""
    return Hit(chunk_from_json(d), float(d["score"]), int(d["rank"]), d.get("provenance") or {})


def answer_from_json(d: dict[str, Any]) -> Answer:
    """An ``Answer`` from the ``/v1/ask`` JSON (unknown members go to ``extras``)."""
    cits = [Citation(c["n"], chunk_from_json(c), c.get("quote", c["text"])) for c in d["citations"]]
    extras = {k: v for k, v in d.items() if k not in ("answer", "mode", "citations")}
    return Answer(d["answer"], d["mode"], cits, extras)

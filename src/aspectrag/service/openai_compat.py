"""OpenAI-compatible chat endpoint: ``POST /v1/chat/completions`` (stream and non-stream) and
``GET /v1/models``, so any chat front end can use the index.

The last user message is the question (the retrieval query); earlier turns are context for an
LLM generator. The model name picks the retrieval configuration (``MODELS``). The reply text
carries ``[n]`` markers; the citations come in the extra field ``citations`` of the response
(non-stream) or of the last chunk (stream).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from aspectrag.service.engine import SearchSpec
from aspectrag.service.problems import Problem
from aspectrag.service.schemas import ChatRequest
from aspectrag.service.state import service

router = APIRouter(tags=["openai"])

#: Model name -> retrieval configuration.
MODELS: dict[str, SearchSpec] = {
    "aspectrag": SearchSpec("auto"),
    "aspectrag-auto": SearchSpec("auto"),
    "aspectrag-hybrid": SearchSpec("hybrid"),
    "aspectrag-bm25": SearchSpec("bm25"),
    "aspectrag-dense": SearchSpec("dense"),
    "aspectrag-multiquery": SearchSpec("multiquery", base="hybrid"),
    "aspectrag-multihead": SearchSpec("multihead"),
}


@router.get("/v1/models")
def models(request: Request) -> dict[str, Any]:
    """The model names (one per retrieval configuration), OpenAI list format."""
    service(request).authorize(request, "read")
    return {"object": "list", "data": [
        {"id": m, "object": "model", "created": 0, "owned_by": "aspectrag",
         "retriever": s.retriever, "base": s.base} for m, s in MODELS.items()]}


@router.post("/v1/chat/completions")
async def chat_completions(body: ChatRequest, request: Request) -> Any:
    """Answer the last user message from the index (OpenAI chat completion format, plus
    ``citations``)."""
    st = service(request)
    st.authorize(request, "read")
    spec = MODELS.get(body.model)
    if spec is None:
        raise Problem(404, "Model not found", f"model {body.model!r} does not exist; GET /v1/models "
                      f"lists them ({', '.join(MODELS)})")
    users = [i for i, m in enumerate(body.messages) if m.role == "user" and m.text().strip()]
    if not users:
        raise Problem(422, "Invalid request", "messages: no user message with text to answer",
                      field="messages")
    last = users[-1]
    question = body.messages[last].text().strip()
    context = "\n".join(f"{m.role}: {m.text()}" for m in body.messages[:last]
                        if m.role in ("user", "assistant") and m.text().strip())
    cid = "chatcmpl-" + uuid.uuid4().hex[:24]
    created = int(time.time())
    if not body.stream:
        res = await st.run(st.engine.ask, question, body.k, spec, context=context)
        return {"id": cid, "object": "chat.completion", "created": created, "model": body.model,
                "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                             "message": {"role": "assistant", "content": res["answer"]}}],
                "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
                "citations": res["citations"], "mode": res["mode"],
                "queries": res.get("queries", [])}
    await st.run(lambda: (st.engine.retriever(spec), st.engine.generator(None)))
    events = st.engine.ask_events(question, body.k, spec, context=context)
    return StreamingResponse(_chunks(events, cid, created, body.model),
                             media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _chunks(events: Iterator[tuple[str, Any]], cid: str, created: int, model: str) -> Iterator[str]:
    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        return "data: " + json.dumps({
            "id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
            **extra}, ensure_ascii=False) + "\n\n"

    yield chunk({"role": "assistant", "content": ""})
    citations: list[Any] = []
    try:
        for event, data in events:
            if event == "token":
                yield chunk({"content": data})
            elif event == "citations":
                citations = data
    except Exception as e:  # the stream ends with an error object, never a traceback
        from aspectrag.service.problems import log

        log.warning("chat stream failed: %s", e)
        msg = str(e) if isinstance(e, ValueError) or type(e).__module__.startswith("aspectrag") \
            else f"the answer failed ({type(e).__name__}); see the server log"
        yield "data: " + json.dumps({"error": {"message": msg, "type": "server_error"}}) + "\n\n"
        return
    yield chunk({}, "stop", citations=citations)
    yield "data: [DONE]\n\n"

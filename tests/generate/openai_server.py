"""A scripted OpenAI-compatible server on 127.0.0.1 for tests (chat + completions, streaming,
logprobs, injected failures and delays)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# reply(body) -> {"text": str, "finish_reason": str, "top_logprobs": dict[str, float] | None}
Reply = Callable[[dict[str, Any]], dict[str, Any]]


class FakeOpenAI:
    """Start with ``with FakeOpenAI(reply) as srv: srv.base_url``.

    ``failures``: HTTP statuses returned (in order) before requests succeed; ``delay``: seconds
    to sleep before answering; ``requests``: the JSON bodies received.
    """

    def __init__(self, reply: Reply | None = None) -> None:
        self.reply: Reply = reply or (lambda body: {"text": "Hello [1].", "finish_reason": "stop"})
        self.failures: list[int] = []
        self.delay = 0.0
        self.requests: list[dict[str, Any]] = []
        self.paths: list[str] = []
        srv = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                srv.requests.append(body)
                srv.paths.append(self.path)
                if srv.delay:
                    time.sleep(srv.delay)
                if srv.failures:
                    status = srv.failures.pop(0)
                    self._send(status, {"error": {"message": f"injected {status}", "type": "x"}})
                    return
                r = srv.reply(body)
                chat = self.path.endswith("/chat/completions")
                if body.get("stream"):
                    self._stream(r, body, chat)
                else:
                    self._send(200, _full(r, body, chat))

            def _send(self, status: int, obj: dict[str, Any]) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, r: dict[str, Any], body: dict[str, Any], chat: bool) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                words = r["text"].split(" ")
                pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
                for p in pieces:
                    if chat:
                        choice = {"index": 0, "delta": {"content": p}, "finish_reason": None}
                        obj = {"object": "chat.completion.chunk"}
                    else:
                        choice = {"index": 0, "text": p, "finish_reason": None, "logprobs": None}
                        obj = {"object": "text_completion"}
                    obj.update(id="x", created=0, model=body["model"], choices=[choice])
                    self.wfile.write(f"data: {json.dumps(obj)}\n\n".encode())
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # clients that time out close the socket mid-answer; that is expected

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()


def _full(r: dict[str, Any], body: dict[str, Any], chat: bool) -> dict[str, Any]:
    usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    if chat:
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": r["text"]},
            "finish_reason": r.get("finish_reason", "stop"),
        }
        return {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [choice],
            "usage": usage,
        }
    top = r.get("top_logprobs")
    logprobs = None
    if top is not None:
        tok = r["text"]
        logprobs = {
            "tokens": [tok] if tok else [],
            "token_logprobs": [top.get(tok, -50.0)] if tok else [],
            "top_logprobs": [top] if tok or top else [],
            "text_offset": [0] if tok else [],
        }
    choice = {
        "index": 0,
        "text": r["text"],
        "finish_reason": r.get("finish_reason", "stop"),
        "logprobs": logprobs,
    }
    return {
        "id": "x",
        "object": "text_completion",
        "created": 0,
        "model": body["model"],
        "choices": [choice],
        "usage": usage,
    }

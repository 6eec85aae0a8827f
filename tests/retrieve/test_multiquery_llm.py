"""LLM query generators against a local OpenAI-compatible server (127.0.0.1, canned replies)
and a tiny random GPT-2 built by the test; fallbacks never fail the search."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from aspectrag.errors import ConfigError
from aspectrag.retrieve.multiquery import MultiQueryRetriever
from aspectrag.retrieve.query_gen.base import SubQuery
from aspectrag.retrieve.query_gen.llm import HFQueryGenerator, OpenAIQueryGenerator
from aspectrag.types import Chunk, Hit

QUESTION = "What are the approaches to Task Decomposition?"


class TableRetriever:
    """Base retriever with fixed rankings per query; records its batch calls."""

    name = "table"

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table, self.calls = table, []  # type: ignore[var-annotated]

    def retrieve(self, query: str, k: int = 10, sources: Any = None) -> list[Hit]:
        return self.retrieve_batch([query], k, sources)[0]

    def retrieve_batch(self, queries: Any, k: int = 10, sources: Any = None) -> list[list[Hit]]:
        self.calls.append(list(queries))
        return [
            [
                Hit(Chunk(c, c, c, "", 0, c, 0, 1), 1.0, r)
                for r, c in enumerate(self.table.get(q, [])[:k], 1)
            ]
            for q in queries
        ]


class _Server:
    """Canned ``/v1/chat/completions``: ``mode`` picks the reply; requests are recorded."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.content = ""
        self.requests: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep pytest output clean
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "body": body})
                if outer.mode == "500":
                    self._send(500, b'{"error": {"message": "internal error"}}')
                elif outer.mode == "slow":
                    time.sleep(2.0)
                    self._send(200, outer._completion(outer.content))
                elif outer.mode == "garbage":
                    self._send(200, b"<html>proxy error</html>")
                else:
                    self._send(200, outer._completion(outer.content))

            def _send(self, code: int, payload: bytes) -> None:
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @staticmethod
    def _completion(content: str) -> bytes:
        return json.dumps(
            {
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "created": 0,
                "model": "test-model",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        ).encode()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server() -> Iterator[_Server]:
    s = _Server()
    yield s
    s.close()


@pytest.fixture
def srv(server: _Server) -> _Server:
    server.mode, server.content = "ok", ""
    server.requests.clear()
    return server


TABLE = {
    QUESTION: ["a#0", "b#0"],
    "Chain of thought prompting for decomposition": ["c#0", "a#0"],
    "Tree of thoughts search over subgoals": ["d#0"],
    "LLM+P planning with PDDL": ["e#0"],
}


def test_happy_path_prompt_and_parsing(srv: _Server) -> None:
    srv.content = (
        "Here are 3 alternative queries:\n1. Chain of thought prompting for decomposition\n"
        '2. **Tree of thoughts search over subgoals**\n3. "LLM+P planning with PDDL"\n'
        "4. An extra fourth query"
    )
    gen = OpenAIQueryGenerator(
        "test-model", base_url=srv.url, n=3, temperature=0.7, template="Q={question} N={n}"
    )
    queries = gen.generate(QUESTION)
    assert queries == [
        SubQuery("Chain of thought prompting for decomposition", 1.0, "llm"),
        SubQuery("Tree of thoughts search over subgoals", 1.0, "llm"),
        SubQuery("LLM+P planning with PDDL", 1.0, "llm"),
    ]
    req = srv.requests[-1]
    assert req["path"] == "/v1/chat/completions"
    assert req["body"]["model"] == "test-model"
    assert req["body"]["temperature"] == 0.7
    assert req["body"]["messages"][-1]["content"] == f"Q={QUESTION} N=3"
    # end to end through the retriever: 4 queries searched, fused, provenance per query
    base = TableRetriever(TABLE)
    hits = MultiQueryRetriever(base, gen).retrieve(QUESTION, k=5)
    assert len(base.calls) == 1 and len(base.calls[0]) == 4
    assert hits[0].chunk.chunk_id == "a#0"
    assert {p["query"] for p in hits[0].provenance["queries"]} == {
        QUESTION,
        "Chain of thought prompting for decomposition",
    }
    assert {h.chunk.chunk_id for h in hits} == {"a#0", "b#0", "c#0", "d#0", "e#0"}


@pytest.mark.parametrize(
    ("mode", "content", "message"),
    [
        ("ok", "1.\n2.\n- \n```\n```", "no usable query"),
        ("ok", "", "no usable query"),
        ("garbage", "", "query generation failed"),
        ("500", "", "InternalServerError"),
    ],
    ids=["malformed-output", "empty-output", "non-json-body", "http-500"],
)
def test_bad_replies_fall_back_to_the_question(
    srv: _Server, caplog: pytest.LogCaptureFixture, mode: str, content: str, message: str
) -> None:
    srv.mode, srv.content = mode, content
    gen = OpenAIQueryGenerator("test-model", base_url=srv.url, timeout=5)
    with caplog.at_level(logging.WARNING, logger="aspectrag.multiquery"):
        assert gen.generate(QUESTION) == [SubQuery(QUESTION, 1.0, "fallback")]
        hits = MultiQueryRetriever(TableRetriever(TABLE), gen).retrieve(QUESTION, k=2)
    assert message in caplog.text
    assert [h.chunk.chunk_id for h in hits] == ["a#0", "b#0"]  # the search still works
    assert len(srv.requests) == 2  # no retries


def test_timeout_falls_back_quickly(srv: _Server, caplog: pytest.LogCaptureFixture) -> None:
    srv.mode, srv.content = "slow", "1. never used"
    gen = OpenAIQueryGenerator("test-model", base_url=srv.url, timeout=0.3)
    t0 = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="aspectrag.multiquery"):
        hits = MultiQueryRetriever(TableRetriever(TABLE), gen).retrieve(QUESTION, k=2)
    assert time.perf_counter() - t0 < 1.8
    assert "Timeout" in caplog.text
    assert [h.chunk.chunk_id for h in hits] == ["a#0", "b#0"]


def test_connection_refused_falls_back(caplog: pytest.LogCaptureFixture) -> None:
    gen = OpenAIQueryGenerator("m", base_url="http://127.0.0.1:9/v1", timeout=2)
    with caplog.at_level(logging.WARNING, logger="aspectrag.multiquery"):
        assert gen.generate(QUESTION)[0].origin == "fallback"
    assert "APIConnectionError" in caplog.text


def test_bad_template_and_n() -> None:
    with pytest.raises(ConfigError, match=r"\{question\}"):
        OpenAIQueryGenerator("m", base_url="http://127.0.0.1:9/v1", template="no placeholder")
    with pytest.raises(ConfigError, match="placeholder"):
        OpenAIQueryGenerator("m", base_url="http://127.0.0.1:9/v1", template="{question} {x}")
    with pytest.raises(ConfigError, match="n must be"):
        OpenAIQueryGenerator("m", base_url="http://127.0.0.1:9/v1", n=0)


# -- local Hugging Face causal LM -----------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer GPT-2 with a word-level tokenizer, saved locally."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    words = (
        "task decomposition approaches chain of thought tree planning agents what are the".split()
    )
    vocab = {"[UNK]": 0, "<eos>": 1, "\n": 2, "1.": 3, "2.": 4}
    vocab.update({w: i + 5 for i, w in enumerate(words)})
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", eos_token="<eos>")
    torch.manual_seed(0)
    cfg = GPT2Config(n_layer=2, n_embd=32, n_head=2, n_positions=256, vocab_size=len(vocab))
    model = GPT2LMHeadModel(cfg)
    path = tmp_path_factory.mktemp("tiny-gpt2")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.mark.slow
def test_hf_generator_with_tiny_random_gpt2(tiny_gpt2: Path) -> None:
    gen = HFQueryGenerator(tiny_gpt2, n=3, max_new_tokens=24, template="{question}")
    text = gen.complete("what are the task decomposition approaches")
    assert isinstance(text, str)
    queries = gen.generate("what are the task decomposition approaches")
    assert 1 <= len(queries) <= 3
    assert all(q.text.strip() for q in queries)
    assert all(q.origin in ("llm", "fallback") for q in queries)
    # a random model's output goes through the same parser (so no numbering survives)
    assert all(not q.text.startswith(("1.", "2.")) for q in queries)
    # sampled generation with a temperature also works and never raises
    assert HFQueryGenerator(tiny_gpt2, temperature=0.8, max_new_tokens=8).generate("task")


@pytest.mark.slow
def test_hf_generator_errors(
    tiny_gpt2: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(ConfigError, match="config.json"):
        HFQueryGenerator(tmp_path / "missing")
    gen = HFQueryGenerator(tiny_gpt2, max_new_tokens=-5)  # generation itself fails
    with caplog.at_level(logging.WARNING, logger="aspectrag.multiquery"):
        assert gen.generate("task") == [SubQuery("task", 1.0, "fallback")]
    assert "query generation failed" in caplog.text

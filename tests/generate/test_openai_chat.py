"""OpenAIGenerator against a local OpenAI-compatible server started by the test."""

from __future__ import annotations

from typing import Any

import pytest
from tests.generate.helpers import make_hits
from tests.generate.openai_server import FakeOpenAI

from aspectrag.generate.base import GenerationError
from aspectrag.generate.openai_chat import OpenAIGenerator

HITS = make_hits(
    [
        "BERT is pre-trained with a masked language model objective.",
        "BERT also uses next sentence prediction during pre-training.",
    ],
    source="bert.pdf",
)


def gen(srv: FakeOpenAI, **kw: Any) -> OpenAIGenerator:
    kw.setdefault("timeout", 5)
    kw.setdefault("max_retries", 0)
    return OpenAIGenerator("tiny", base_url=srv.base_url, api_key="k", **kw)


def test_generate_sends_grounded_prompt_and_checks_citations() -> None:
    with FakeOpenAI(lambda b: {"text": "MLM [1] and NSP [2][7], see [1, 9]."}) as srv:
        a = gen(srv).generate("What are the pre-training tasks?", HITS)
    assert a.mode == "llm"
    assert a.answer == "MLM [1] and NSP [2], see [1]."
    assert [c.n for c in a.citations] == [1, 2]
    assert a.citations[1].chunk is HITS[1].chunk
    assert a.extras["invalid_citations"] == [7, 9]
    assert a.to_dict()["citations"][0]["source"] == "bert.pdf"
    body = srv.requests[0]
    assert srv.paths == ["/v1/chat/completions"]
    system, user = body["messages"][0]["content"], body["messages"][1]["content"]
    assert "cite" in system.lower() and "does not contain the answer" in system
    assert '<passage id="1" title="Title 0" source="bert.pdf"' in user
    assert '<passage id="2"' in user and user.index('id="1"') < user.index('id="2"')
    assert "Question: What are the pre-training tasks?" in user
    assert body["temperature"] == 0


def test_streaming_yields_pieces_then_checked_answer() -> None:
    with FakeOpenAI(lambda b: {"text": "It uses MLM [1] and NSP [3]."}) as srv:
        s = gen(srv).stream("q?", HITS)
        pieces = list(s)
    assert srv.requests[0]["stream"] is True
    assert len(pieces) == 7 and "".join(pieces) == "It uses MLM [1] and NSP [3]."
    assert s.answer.answer == "It uses MLM [1] and NSP."
    assert s.answer.extras["invalid_citations"] == [3]


def test_retry_on_500_then_success() -> None:
    with FakeOpenAI(lambda b: {"text": "ok [1]"}) as srv:
        srv.failures = [500, 503]
        a = gen(srv, max_retries=2).generate("q?", HITS)
    assert a.answer == "ok [1]" and len(srv.requests) == 3


def test_no_retry_budget_gives_clear_error() -> None:
    with FakeOpenAI() as srv:
        srv.failures = [500]
        with pytest.raises(GenerationError, match=r"HTTP 500 for model 'tiny'"):
            gen(srv, max_retries=0).generate("q?", HITS)


def test_timeout_error_message() -> None:
    with FakeOpenAI() as srv:
        srv.delay = 1.5
        with pytest.raises(GenerationError, match=r"timed out after 0.3 s.*ASPECTRAG_LLM_TIMEOUT"):
            gen(srv, timeout=0.3).generate("q?", HITS)


def test_unreachable_server() -> None:
    g = OpenAIGenerator("m", base_url="http://127.0.0.1:9/v1", max_retries=0, timeout=2)
    with pytest.raises(GenerationError, match="cannot reach the LLM at http://127.0.0.1:9/v1"):
        g.generate("q?", HITS)


def test_context_budget_truncates_and_drops_passages() -> None:
    long_hits = make_hits([("alpha " * 400).strip(), ("beta " * 400).strip(), "gamma"])
    with FakeOpenAI(lambda b: {"text": "See [1] and [3]."}) as srv:
        g = gen(srv, context_tokens=1200, max_tokens=100)
        a = g.generate("q?", long_hits)
    user = srv.requests[0]["messages"][1]["content"]
    assert a.extras["context"] == {"shown": [1, 2], "truncated": [2], "dropped": [3]}
    assert user.count("alpha") == 400 and 0 < user.count("beta") < 400 and "gamma" not in user
    # citing a dropped passage is invalid
    assert a.answer == "See [1] and." and a.extras["invalid_citations"] == [3]


def test_completions_api() -> None:
    with FakeOpenAI(lambda b: {"text": " MLM [1]"}) as srv:
        a = gen(srv, api="completions").generate("q?", HITS)
    assert srv.paths == ["/v1/completions"] and a.answer == "MLM [1]"
    assert srv.requests[0]["prompt"].rstrip().endswith("Answer:")


def test_env_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeOpenAI(lambda b: {"text": "env [2]"}) as srv:
        monkeypatch.setenv("ASPECTRAG_LLM_BASE_URL", srv.base_url)
        monkeypatch.setenv("ASPECTRAG_LLM_MODEL", "envmodel")
        monkeypatch.setenv("ASPECTRAG_LLM_TIMEOUT", "4")
        g = OpenAIGenerator()
        assert g.timeout == 4 and g.name == "openai:envmodel"
        assert g.generate("q?", HITS).answer == "env [2]"
        assert srv.requests[0]["model"] == "envmodel"


def test_config_file_overridden_by_environment(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from aspectrag.errors import ConfigError
    from aspectrag.settings import get_settings

    for var in ("ASPECTRAG_LLM_BASE_URL", "ASPECTRAG_LLM_MODEL", "ASPECTRAG_LLM_TIMEOUT"):
        monkeypatch.delenv(var, raising=False)
    f = tmp_path / "llm.toml"
    f.write_text('base_url = "http://127.0.0.1:9/v1"\nmodel = "filemodel"\ntimeout = 7\n')
    monkeypatch.setenv("ASPECTRAG_LLM_CONFIG", str(f))
    assert get_settings().llm.configured
    g = OpenAIGenerator()
    assert (g.model, g.base_url, g.timeout) == ("filemodel", "http://127.0.0.1:9/v1", 7.0)
    monkeypatch.setenv("ASPECTRAG_LLM_MODEL", "envmodel")
    assert OpenAIGenerator().model == "envmodel"
    f.write_text('modle = "typo"\n')
    with pytest.raises(ConfigError, match="unknown keys"):
        OpenAIGenerator()

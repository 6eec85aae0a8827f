"""Approximate RAG-Token over a local OpenAI-compatible completions server with top logprobs."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from tests.generate.helpers import make_hits
from tests.generate.openai_server import FakeOpenAI

from aspectrag.generate.base import GenerationError
from aspectrag.generate.factory import build_generator
from aspectrag.generate.openai_ragtoken import (
    OpenAIRagTokenGenerator,
    StepDistribution,
    mixture,
)

# Per passage: answer-so-far -> top tokens with probabilities ({} = the model stops).
TABLE = {
    "DOC-A": {
        "": {" yes": 0.7, " no": 0.2},
        " yes": {" indeed": 0.8, " no": 0.1},
        " yes indeed": {},
    },
    "DOC-B": {
        "": {" no": 0.9, " yes": 0.05},
        " yes": {" way": 0.6, " indeed": 0.3},
        " yes indeed": {" ok": 0.5},
    },
}


def reply(body: dict[str, Any]) -> dict[str, Any]:
    prompt = body["prompt"]
    doc = "DOC-A" if "DOC-A" in prompt else "DOC-B"
    so_far = prompt.rsplit("Answer:", 1)[1]
    top = TABLE[doc][so_far]
    if not top:
        return {"text": "", "finish_reason": "stop", "top_logprobs": {}}
    best = max(top, key=lambda t: top[t])
    return {
        "text": best,
        "finish_reason": "length",
        "top_logprobs": {t: math.log(p) for t, p in top.items()},
    }


def hits():  # type: ignore[no-untyped-def]
    hs = make_hits(["DOC-A says yes.", "DOC-B says no."])
    hs[0].score, hs[1].score = 1.0, 0.0
    return hs


def test_mixture_over_returned_tokens() -> None:
    m = mixture(
        [StepDistribution({"a": 0.5, "b": 0.5}), StepDistribution({"b": 1.0})], np.array([0.5, 0.5])
    )
    assert m == {"a": 0.25, "b": 0.75}


def test_rag_token_decoding_matches_hand_computed_mixture() -> None:
    w = np.exp([1.0, 0.0]) / np.exp([1.0, 0.0]).sum()
    with FakeOpenAI(reply) as srv:
        g = OpenAIRagTokenGenerator("tiny", base_url=srv.base_url, max_retries=0, timeout=5)
        a = g.generate("yes or no?", hits())
    # step 1: yes = .731*.7 + .269*.05 > no = .731*.2 + .269*.9; step 2: indeed; step 3: end
    assert a.answer == "yes indeed [1]"
    assert srv.paths == ["/v1/completions"] * 6
    assert all(b["max_tokens"] == 1 and b["logprobs"] == 5 for b in srv.requests)
    rag = a.extras["rag"]
    assert rag["covered_mass"][0] == pytest.approx(w[0] * 0.9 + w[1] * 0.95, abs=1e-6)
    docs = rag["documents"]
    assert [d["prior"] for d in docs] == pytest.approx(list(w))
    assert sum(d["posterior"] for d in docs) == pytest.approx(1.0)
    assert docs[0]["posterior"] > docs[1]["posterior"]
    assert [c.n for c in a.citations] == [1]


def test_streaming_and_factory(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeOpenAI(reply) as srv:
        monkeypatch.setenv("ASPECTRAG_LLM_BASE_URL", srv.base_url)
        g = build_generator("openai-completions:tiny", decoding="rag-token", max_retries=0)
        assert isinstance(g, OpenAIRagTokenGenerator)
        s = g.stream("yes or no?", hits())
        assert list(s) == [" yes", " indeed"] and s.answer.answer == "yes indeed [1]"


def test_server_without_logprobs_is_reported() -> None:
    with FakeOpenAI(lambda b: {"text": " x", "finish_reason": "length"}) as srv:
        g = OpenAIRagTokenGenerator("tiny", base_url=srv.base_url, max_retries=0, timeout=5)
        with pytest.raises(GenerationError, match="no logprobs"):
            g.generate("q?", hits())

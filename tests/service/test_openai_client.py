"""The OpenAI-compatible endpoint driven by the official ``openai`` client."""

from __future__ import annotations

import pytest

from aspectrag.service import create_app

openai = pytest.importorskip("openai")


def test_models_and_chat_completions(minilm_index, serve):
    srv = serve(create_app(minilm_index))
    client = openai.OpenAI(base_url=srv.url + "/v1", api_key="unused", max_retries=0)
    ids = [m.id for m in client.models.list()]
    assert {"aspectrag", "aspectrag-multiquery", "aspectrag-multihead", "aspectrag-bm25"} <= set(ids)

    res = client.chat.completions.create(model="aspectrag", messages=[
        {"role": "system", "content": "Answer from the documents."},
        {"role": "user", "content": "Tell me about Rome."},
        {"role": "assistant", "content": "Rome was a republic."},
        {"role": "user", "content": "What do enzymes do?"}])
    text = res.choices[0].message.content
    assert "[1]" in text or "[2]" in text
    citations = res.model_extra["citations"]
    assert citations and citations[0]["source"].endswith("chem.txt")
    assert f"[{citations[0]['n']}]" in text

    pieces, last = [], None
    for chunk in client.chat.completions.create(
            model="aspectrag-multiquery", stream=True,
            messages=[{"role": "user", "content": "What do enzymes do?"}]):
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        last = chunk
    streamed = "".join(pieces)
    assert "Enzymes" in streamed and "[" in streamed
    assert last is not None and last.choices[0].finish_reason == "stop"
    assert last.model_extra["citations"][0]["source"].endswith("chem.txt")

    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.UnprocessableEntityError):
        client.chat.completions.create(model="aspectrag", messages=[{"role": "system",
                                                                      "content": "x"}])


def test_chat_needs_a_read_key_when_keys_are_set(minilm_index, serve):
    from aspectrag.service.auth import hash_key

    srv = serve(create_app(minilm_index, api_keys={hash_key("k1"): {"read"}}))
    bad = openai.OpenAI(base_url=srv.url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    good = openai.OpenAI(base_url=srv.url + "/v1", api_key="k1", max_retries=0)
    res = good.chat.completions.create(model="aspectrag-bm25",
                                       messages=[{"role": "user", "content": "Why is Mars red?"}])
    assert "iron oxide" in res.choices[0].message.content

"""Bi-encoder rescoring on the full chunk text."""

from __future__ import annotations

import numpy as np
from tests.rerank.helpers import chunk, hits_of

from aspectrag.embed.hf import HFEmbedder
from aspectrag.rerank.bi_encoder import BiEncoderReranker


def test_short_chunks_score_as_the_dense_cosine(embedder: HFEmbedder) -> None:
    texts = ["Bananas are rich in potassium.", "Paris is the capital of France."]
    r = BiEncoderReranker(embedder)
    q = embedder.encode(["fruit with potassium"])["dense"][0]
    d = embedder.encode(texts)["dense"]
    np.testing.assert_allclose(
        r.score("fruit with potassium", [chunk(i, t) for i, t in enumerate(texts)]),
        d @ q,
        atol=1e-5,
    )
    out = r.rerank("capital city of France", hits_of(texts))
    assert out[0].chunk.text == texts[1] and out[0].provenance["rerank"]["by"] == "bi-encoder"


def test_long_chunk_is_read_past_the_token_limit(embedder: HFEmbedder) -> None:
    """The answer sits after 256 tokens: truncated dense misses it, full-text windows find it."""
    filler = "The committee discussed budgets, schedules and staffing at length. " * 30
    long_text = filler + "Bananas are rich in potassium."
    r = BiEncoderReranker(embedder)
    q = "fruit rich in potassium"
    full = r.score(q, [chunk(0, long_text)])[0]
    truncated = float(embedder.encode([long_text])["dense"][0] @ embedder.encode([q])["dense"][0])
    assert full > truncated + 0.1

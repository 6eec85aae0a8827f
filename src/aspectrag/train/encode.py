"""Sentence embeddings of the model being trained (peft-wrapped or not), pooled exactly as
``HFEmbedder.encode`` (mean over non-padding tokens, L2 norm; Reimers & Gurevych 2019):
differentiable for the loss (:func:`embed_train`), without gradients for dev metrics
(:func:`embed_eval`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from aspectrag.embed.pooling import mean_pool


def embed_train(model, tokenizer, texts: Sequence[str], max_tokens: int):  # type: ignore[no-untyped-def]
    """Differentiable sentence embeddings, pooled exactly as ``HFEmbedder.encode`` does:
    float tensor (len(texts), dim), unit rows."""
    enc = tokenizer(
        list(texts), padding=True, truncation=True, max_length=max_tokens, return_tensors="pt"
    )
    enc = {k: v.to(model.device) for k, v in enc.items()}
    return mean_pool(model(**enc).last_hidden_state, enc["attention_mask"])


def embed_eval(model, tokenizer, texts: Sequence[str], max_tokens: int, batch: int = 64) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Embeddings of ``texts`` by the (training) model without gradients, pooled like
    ``HFEmbedder.encode``: float32 (len(texts), dim), unit rows."""
    import torch

    was_training = model.training
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), batch):
            out.append(embed_train(model, tokenizer, texts[i : i + batch], max_tokens).numpy())
    if was_training:
        model.train()
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 0), np.float32)

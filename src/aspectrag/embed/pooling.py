"""Token pooling: many token vectors -> one vector per text (torch tensors).

``mean_pool`` is Sentence-BERT's pooling (Reimers & Gurevych 2019) followed by an L2 norm;
``pool_tokens`` offers mean / first token (CLS) / last non-padding token without the norm
(the per-head vectors of Multi-Head RAG and decoder models' "last token").
"""

from __future__ import annotations

from aspectrag.errors import ConfigError

POOLINGS: tuple[str, ...] = ("mean", "cls", "last")


def pool_tokens(x, mask, pooling: str):  # type: ignore[no-untyped-def]
    """Pool token vectors ``x`` (torch, ``(B, L, D)``) with ``mask`` (``(B, L)``, 1 = token).

    ``"mean"``: mean over tokens with mask 1; ``"cls"``: position 0; ``"last"``: the last
    position with mask 1 (works for left and right padding). Returns ``(B, D)``.
    """
    import torch

    if pooling == "mean":
        m = mask.unsqueeze(-1).to(x.dtype)
        return (x * m).sum(1) / m.sum(1).clamp(min=1e-9)
    if pooling == "cls":
        return x[:, 0]
    if pooling == "last":
        length = mask.shape[1]
        last = (length - 1) - torch.argmax(mask.flip(1).to(torch.int64), dim=1)
        return x[torch.arange(x.shape[0], device=x.device), last]
    raise ConfigError(f"pooling {pooling!r} unknown; use one of {', '.join(POOLINGS)}")


def mean_pool(hidden, attention_mask):  # type: ignore[no-untyped-def]
    """Mean over non-padding tokens, then L2 norm (Sentence-BERT pooling).

    ``hidden``: float tensor (batch, tokens, dim); ``attention_mask``: int tensor (batch, tokens).
    Returns a float tensor (batch, dim) with unit rows. Differentiable (used for training too).
    """
    import torch

    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=-1)

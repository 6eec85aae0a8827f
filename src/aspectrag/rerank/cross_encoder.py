"""Cross-encoder reranking: query and chunk read together by one transformer.

monoBERT (Nogueira & Cho 2019, "Passage Re-ranking with BERT"): the pair
``[CLS] query [SEP] chunk [SEP]`` goes through a sequence-classification model and its output
is the relevance score. Any Hugging Face ``AutoModelForSequenceClassification`` folder works
(e.g. a cross-encoder/ms-marco-* model downloaded by the user); nothing is fetched at run time.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from aspectrag.embed.hf import tokenizer_lock
from aspectrag.errors import ConfigError
from aspectrag.rerank.base import reorder
from aspectrag.types import Chunk, Hit

log = logging.getLogger("aspectrag.rerank")


class CrossEncoderReranker:
    """Scores (query, chunk) pairs with a sequence-classification model.

    Score: the logit when the model has one output (``num_labels == 1``, the usual
    sentence-transformers cross-encoder), else the log-softmax of the *last* label (the
    "relevant" class of two-class monoBERT-style models). Higher is more relevant.

    Args:
        model_path: local folder with the model and its tokenizer.
        batch_size: pairs per forward pass.
        max_tokens: pair length limit in tokens (default: the tokenizer's and the model's
            position limit, at most 512); the
            chunk side is truncated first.
        device: torch device string.

    Attributes:
        name: ``"cross-encoder:<model folder name>"``.

    Raises:
        ConfigError: ``model_path`` is not a folder with a ``config.json``.
    """

    def __init__(
        self,
        model_path: str | Path,
        *,
        batch_size: int = 16,
        max_tokens: int | None = None,
        device: str = "cpu",
    ) -> None:
        p = Path(model_path)
        if not (p / "config.json").is_file():
            raise ConfigError(
                f"{p}: not a Hugging Face model folder (no config.json); pass the folder of a "
                "sequence-classification cross-encoder with --rerank-model"
            )
        self.model_path = str(p)
        self.batch_size = batch_size
        self.device = device
        self._max_tokens = max_tokens
        self.name = f"cross-encoder:{p.resolve().name}"

    @cached_property
    def tokenizer(self):  # type: ignore[no-untyped-def]
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(self.model_path)

    @cached_property
    def model(self):  # type: ignore[no-untyped-def]
        from transformers import AutoModelForSequenceClassification

        m = AutoModelForSequenceClassification.from_pretrained(self.model_path)
        m.eval()
        return m.to(self.device)

    @property
    def max_tokens(self) -> int:
        if self._max_tokens is not None:
            return self._max_tokens
        limits = [
            512,
            int(getattr(self.tokenizer, "model_max_length", 512) or 512),
            int(getattr(self.model.config, "max_position_embeddings", 512) or 512),
        ]
        return min(limits)

    def score(self, query: str, chunks: Sequence[Chunk]) -> np.ndarray:
        """Relevance score per chunk: float32 (len(chunks),)."""
        import torch

        texts = [c.index_text() for c in chunks]
        out = np.zeros(len(texts), dtype=np.float32)
        with torch.inference_mode():
            for i in range(0, len(texts), self.batch_size):
                part = texts[i : i + self.batch_size]
                enc = self._encode([query] * len(part), part)
                logits = self.model(**enc).logits.float()
                if logits.shape[-1] == 1:
                    s = logits[:, 0]
                else:
                    s = torch.log_softmax(logits, dim=-1)[:, -1]
                out[i : i + len(part)] = s.cpu().numpy()
        return out

    def _encode(self, queries: list[str], texts: list[str]):  # type: ignore[no-untyped-def]
        kw = dict(padding=True, max_length=self.max_tokens, return_tensors="pt")
        tok = self.tokenizer
        with tokenizer_lock(tok):  # a shared tokenizer's truncation settings are global
            try:
                enc = tok(queries, texts, truncation="only_second", **kw)
            except Exception:  # the query alone exceeds the limit: cut both sides
                enc = tok(queries, texts, truncation="longest_first", **kw)
        return {k: v.to(self.device) for k, v in enc.items()}

    def rerank(self, query: str, hits: Sequence[Hit], k: int | None = None, *,
               info: dict[str, Any] | None = None) -> list[Hit]:
        """Hits reordered by cross-encoder score (see ``Reranker.rerank``)."""
        if not hits:
            return []
        return reorder(hits, self.score(query, [h.chunk for h in hits]).tolist(), self.name, k)

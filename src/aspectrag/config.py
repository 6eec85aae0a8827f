"""Configuration from environment variables, and thread-pool setup.

Environment variables:
    ASPECTRAG_INDEX: index folder (default ``./.aspectrag``).
    ASPECTRAG_EMBEDDER: embedding model path (default: the bundled all-MiniLM-L6-v2).
    ASPECTRAG_LLM_BASE_URL / ASPECTRAG_LLM_MODEL / ASPECTRAG_LLM_API_KEY: OpenAI-compatible LLM.
    ASPECTRAG_THREADS: CPU threads for torch and BLAS (default: all cores).
    ASPECTRAG_SHARED_DATA: folder of the shared evaluation data (default ``../shared/data``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

_THREADS_SET = False


def setup_threads(n: int | None = None) -> int:
    """Give torch the intra-op pool and keep numpy's BLAS single-threaded.

    On small machines torch and OpenBLAS/MKL fight over the cores when both run multi-threaded
    pools (a hybrid query measured 8 ms with one setting and 50 ms with another), so torch
    gets ``n`` threads (default ``ASPECTRAG_THREADS`` or all cores) and BLAS gets 1: the
    numpy work here (one query x matrix products, sorting) is memory-bound anyway.
    Idempotent; returns the torch thread count.
    """
    global _THREADS_SET
    import torch
    from threadpoolctl import threadpool_limits

    if n is None:
        n = int(os.environ.get("ASPECTRAG_THREADS", "0")) or (os.cpu_count() or 1)
    if not _THREADS_SET or torch.get_num_threads() != n:
        torch.set_num_threads(n)
        threadpool_limits(limits=1, user_api="blas")
        _THREADS_SET = True
    return n


def default_index_path() -> Path:
    """``ASPECTRAG_INDEX`` or ``./.aspectrag``."""
    return Path(os.environ.get("ASPECTRAG_INDEX", ".aspectrag"))


def shared_data_dir() -> Path:
    """``ASPECTRAG_SHARED_DATA`` or ``../shared/data`` relative to the current directory."""
    return Path(os.environ.get("ASPECTRAG_SHARED_DATA", "../shared/data"))


@dataclass(slots=True)
class ChunkingConfig:
    """Chunking parameters, in *tokens of the embedder* (the model truncates at 256 tokens;
    the title/heading header takes a few, so chunks default to 224 tokens with 32 overlap)."""

    chunk_size: int = 224
    chunk_overlap: int = 32


@dataclass(slots=True)
class LLMConfig:
    """OpenAI-compatible endpoint settings (all None when no LLM is configured)."""

    base_url: str | None = field(default_factory=lambda: os.environ.get("ASPECTRAG_LLM_BASE_URL"))
    model: str | None = field(default_factory=lambda: os.environ.get("ASPECTRAG_LLM_MODEL"))
    api_key: str | None = field(default_factory=lambda: os.environ.get("ASPECTRAG_LLM_API_KEY"))

    @property
    def configured(self) -> bool:
        return bool(self.base_url and self.model)

"""Process setup from the settings (no configuration reading here: see ``aspectrag.settings``).

``setup_threads`` sizes the thread pools; ``default_index_path`` / ``shared_data_dir`` are
shortcuts for ``get_settings().index.location`` / ``.shared_data_dir``; ``ChunkingConfig`` is
the settings' chunking section type (defaults 224 / 32 embedder tokens, written there).
"""

from __future__ import annotations

import os
from pathlib import Path

from aspectrag.settings import ChunkingSettings as ChunkingConfig
from aspectrag.settings import get_settings

__all__ = ["ChunkingConfig", "default_index_path", "runtime_threads", "setup_threads",
           "shared_data_dir"]

_THREADS_SET = False
_THREADS: int | None = None


def setup_threads(n: int | None = None) -> int:
    """Give torch (or ONNX Runtime) the intra-op pool and keep numpy's BLAS single-threaded.

    On small machines the model runtime and OpenBLAS/MKL fight over the cores when both run
    multi-threaded pools (a hybrid query measured 8 ms with one setting and 50 ms with
    another), so the runtime gets ``n`` threads (default: the ``threads`` setting,
    ``ASPECTRAG_THREADS``, or all cores when 0) and BLAS gets 1: the numpy work here (one
    query x matrix products, sorting) is memory-bound anyway. Idempotent; returns ``n``.

    Imports no torch: when torch is already loaded its pool is resized now; otherwise
    ``OMP_NUM_THREADS`` is set for this process so that torch, if a later step loads it,
    starts with ``n`` intra-op threads (a torch-free query path stays torch-free). ONNX
    Runtime embedders read the ``threads`` setting themselves.
    """
    global _THREADS_SET, _THREADS
    import sys

    from threadpoolctl import threadpool_limits

    if n is None:
        n = get_settings().threads or (os.cpu_count() or 1)
    torch = sys.modules.get("torch")
    if torch is not None:
        if not _THREADS_SET or torch.get_num_threads() != n:
            torch.set_num_threads(n)
    else:
        from aspectrag.settings import export_to_libraries

        export_to_libraries({"OMP_NUM_THREADS": str(n)})  # read by torch when it loads
    if not _THREADS_SET:
        threadpool_limits(limits=1, user_api="blas")
        _THREADS_SET = True
    _THREADS = n
    return n


def runtime_threads() -> int:
    """The model runtime's intra-op threads in this process: what :func:`setup_threads` gave
    it, else what it would give (the ``threads`` setting, or all cores when 0)."""
    if _THREADS is not None:
        return _THREADS
    return get_settings().threads or (os.cpu_count() or 1)


def default_index_path() -> Path:
    """The ``index.location`` setting (``ASPECTRAG_INDEX``, default ``./.aspectrag``)."""
    return Path(get_settings().index.location)


def shared_data_dir() -> Path:
    """The ``shared_data_dir`` setting (``ASPECTRAG_SHARED_DATA``, default ``../shared/data``
    relative to the current directory)."""
    return get_settings().shared_data_dir

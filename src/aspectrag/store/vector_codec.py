"""Storage precision of vector spaces: float32 (the standard) or float16 (the per-head spaces).

A store records the dtype of each space when the index is created and keeps it for the life of
the index: an index written before dtypes were recorded is float32 throughout and stays so
(appends included), whatever the setting says. New indexes store the per-head spaces
(``head0`` ...) in the ``store.head_dtype`` setting's dtype (``ASPECTRAG_HEAD_DTYPE``, default
``float16``); every other space (the standard ``dense`` vector, ``split*``) is float32.

Why float16 for the heads only: measured on development data (``benchmarks/fp16_heads.py``),
rounding the head vectors ``[v/|v|, 1/|v|]`` to float16 (relative error <= 2^-11) changed the
MRAG Wikipedia v1 and HotpotQA figures by at most 0.0023 (most by < 0.001), every paired-
bootstrap CI covering 0, and halves the
bytes they take in the SQLite file (12 x 33 floats: 1,584 -> 792 bytes per chunk). Searches
read the values back as float32 (numpy has no fast float16 product: a float16 head matrix
multiplied 8x slower on the development machine), so the in-memory matrices and the derived
index files are unchanged.

Values beyond float16's range (|x| > 65504: a head vector shorter than 1.5e-5, whose
``1/|v|`` coordinate overflows) are clipped to it instead of becoming inf. Everything a store
writes goes through :func:`as_stored`, and the head statistics add exactly the values a store
will read back (``multihead/stats.py``), so adding and removing chunks cancels exactly.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from aspectrag.errors import ConfigError

DTYPES = ("float32", "float16")
"""The storage dtypes a dense space may have."""
DTYPES_KEY = "vector_dtypes"
"""SQLite meta key: JSON ``{space: dtype}`` of the spaces not stored as float32 (absent: all
float32, the layout of indexes written before this key existed)."""
FP16_MAX = float(np.finfo(np.float16).max)


def check_dtype(dtype: str) -> str:
    """``dtype`` if it is one of :data:`DTYPES`; raises ConfigError otherwise."""
    if dtype not in DTYPES:
        raise ConfigError(f"vector dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return dtype


def is_head_space(name: str) -> bool:
    """``head0``, ``head1`` ... (same rule as ``multihead.layout.is_head_space``, kept here so
    that the store does not import the multi-head package)."""
    return name.startswith("head") and name[4:].isdigit()


def new_index_dtypes(spaces: list[str], head_dtype: str | None = None) -> dict[str, str]:
    """``{space: dtype}`` for the spaces of a new index that are not float32: the head spaces
    in ``head_dtype`` (default: the ``store.head_dtype`` setting)."""
    if head_dtype is None:
        from aspectrag.settings import get_settings

        head_dtype = get_settings().store.head_dtype
    check_dtype(head_dtype)
    if head_dtype == "float32":
        return {}
    return {s: head_dtype for s in spaces if is_head_space(s)}


def itemsize(dtype: str) -> int:
    """Bytes per stored coordinate: 4 (float32) or 2 (float16)."""
    return 2 if dtype == "float16" else 4


def encode(rows: np.ndarray, dtype: str) -> np.ndarray:
    """``rows`` (float, any shape) in the storage dtype: float32, or float16 rounded to
    nearest with out-of-range values clipped to +-65504."""
    if dtype == "float16":
        return np.clip(np.asarray(rows, dtype=np.float32), -FP16_MAX, FP16_MAX).astype(np.float16)
    return np.ascontiguousarray(rows, dtype=np.float32)


def decode(blob: bytes, dtype: str) -> np.ndarray:
    """A stored blob as float32 ``(d,)``."""
    return np.frombuffer(blob, dtype=np.float16 if dtype == "float16" else np.float32).astype(
        np.float32, copy=False)


def as_stored(vectors: Mapping[str, np.ndarray], dtypes: Mapping[str, str]) -> dict[str, np.ndarray]:
    """``vectors`` as a store with ``dtypes`` (``{space: dtype}``, float32 when absent) reads
    them back: float32 arrays of the same shapes (float16 spaces rounded)."""
    out = {}
    for space, arr in vectors.items():
        dt = dtypes.get(space, "float32")
        out[space] = (encode(arr, dt).astype(np.float32) if dt != "float32"
                      else np.asarray(arr, dtype=np.float32))
    return out

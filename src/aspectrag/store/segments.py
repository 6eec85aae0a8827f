"""Base + delta segments of the derived indexes (BM25 and one dense index per vector space).

A derived index is a *base* segment built from every chunk at some generation, plus a small
*delta*: the rows added since (their own little segment) and the base rows removed since
(tombstones). Adding or removing a few documents therefore costs work proportional to the
change, not to the corpus (issue 13, item 5). When the delta grows past ``MERGE_FRACTION`` of
the base, the next refresh rebuilds the base from the store (the "merge"), as log-structured
indexes do (O'Neil et al. 1996; Lucene's segment merges). Readers never see a half-built
index: an index object is immutable once made, a new one replaces it under the store's lock,
and files are replaced by atomic renames, each tagged with the base's id and the generation
it reflects.

Chunk row ids only grow (the writer hands out ``meta.next_chunk_row``), so rows added after a
base was built all sort after its rows and a row id never names two different chunks.
"""

from __future__ import annotations

import json
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MERGE_FRACTION = 0.1
"""Rebuild the base when added + removed rows exceed this fraction of the base rows."""
MERGE_MIN_ROWS = 64
"""...and exceed this many rows (tiny indexes rebuild at once; their rebuild is cheap)."""


def new_base_id() -> str:
    """A fresh identifier for a base segment (32 hex characters)."""
    return uuid.uuid4().hex


@dataclass(frozen=True)
class RowDelta:
    """How the store's chunk rows differ from an index's rows.

    Attributes:
        added: row ids (int64, ascending) in the store but not in the index.
        removed: row ids (int64, ascending) in the index but no longer in the store.
    """

    added: np.ndarray
    removed: np.ndarray

    @classmethod
    def between(cls, indexed: np.ndarray, current: np.ndarray) -> RowDelta:
        """The delta from ``indexed`` (live row ids of an index) to ``current`` (the store's
        row ids), both int64 ``(n,)``."""
        indexed = np.asarray(indexed, dtype=np.int64)
        current = np.asarray(current, dtype=np.int64)
        return cls(np.setdiff1d(current, indexed, assume_unique=True),
                   np.setdiff1d(indexed, current, assume_unique=True))

    def needs_merge(self, n_base: int, pending: int = 0) -> bool:
        """True when ``pending`` delta rows already held plus this change are too many for a
        delta over a base of ``n_base`` rows (see ``MERGE_FRACTION``, ``MERGE_MIN_ROWS``)."""
        size = pending + len(self.added) + len(self.removed)
        return size > MERGE_MIN_ROWS and size > MERGE_FRACTION * n_base


def alive_after(base_rowids: np.ndarray, alive: np.ndarray | None,
                removed: np.ndarray) -> np.ndarray | None:
    """The base's live-row mask (bool ``(n_base,)``, None = all live) once ``removed`` row ids
    are deleted too."""
    hit = np.isin(base_rowids, removed)
    if not hit.any():
        return alive
    out = np.ones(len(base_rowids), dtype=bool) if alive is None else alive.copy()
    out[hit] = False
    return out


def npz_meta(path: Path) -> dict:  # type: ignore[type-arg]
    """The JSON ``meta`` entry of a saved segment (``.npz``), or ``{}`` when the file is
    missing or unreadable."""
    try:
        with np.load(path) as z:
            return json.loads(str(z["meta"]))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return {}

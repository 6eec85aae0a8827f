"""The chunking an index was built with, recorded in its metadata and kept by later ingests.

An index's chunks must come from one chunking: a document re-ingested at another chunk size
would be ranked against its neighbours with other lengths (BM25's length normalisation, the
dense vectors of longer or shorter texts), silently. So the first ingest that writes chunks
records ``{"chunk_size": N, "chunk_overlap": M}`` (embedder tokens) under the metadata key
:data:`CHUNKING_META_KEY`, in the same transaction as the chunks; later ingests use the
recorded chunking (:func:`resolve_chunking`), and asking explicitly for another one is an
error that says what to do. Indexes built before the chunking was recorded have no record and
keep using the requested (settings) chunking, as before.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence

import numpy as np

from aspectrag.errors import ConfigError
from aspectrag.settings import ChunkingSettings
from aspectrag.store.base import Store, StoreWriter

CHUNKING_META_KEY = "chunking"
log = logging.getLogger(__name__)


def recorded_chunking(store: Store) -> ChunkingSettings | None:
    """The chunking recorded in ``store``'s metadata, or None (no record: a new index or one
    built before chunking was recorded)."""
    raw = store.get_meta(CHUNKING_META_KEY)
    if raw is None:
        return None
    d = json.loads(raw)
    return ChunkingSettings(int(d["chunk_size"]), int(d["chunk_overlap"]))


def resolve_chunking(store: Store, requested: ChunkingSettings, *, explicit: bool,
                     location: str = "the index") -> ChunkingSettings:
    """The chunking an ingest into ``store`` uses: the recorded one when there is a record,
    else ``requested``.

    Args:
        requested: the chunking asked for (settings, ``--chunk-size`` / ``--chunk-overlap``).
        explicit: ``requested`` was given for this ingest (an option or ``Index(chunking=)``),
            not taken from the settings' defaults: then a mismatch is an error, else a
            warning log line and the recorded chunking wins.
        location: the index location, for the messages.

    Raises:
        ConfigError: ``explicit`` and ``requested`` differs from the recorded chunking.
    """
    rec = recorded_chunking(store)
    if rec is None or rec == requested:
        return requested
    have, want = _fmt(rec), _fmt(requested)
    if explicit:
        raise ConfigError(f"{location} was chunked at {have}; it cannot take chunks of {want}. "
                          "Leave out --chunk-size / --chunk-overlap to use the index's chunking, "
                          "or ingest into a new index to change it")
    log.warning("%s keeps its recorded chunking %s (the settings ask for %s)", location, have, want)
    return rec


def _fmt(c: ChunkingSettings) -> str:
    return f"{c.chunk_size} tokens with {c.chunk_overlap} overlap"


class ChunkingRecorder:
    """Ingest hook (:class:`~aspectrag.ingest.base.IngestHook`) that records ``chunking`` in
    the write transaction of the first ingest that adds chunks to an empty index (never on an
    index that already holds unrecorded chunks: their chunking is unknown)."""

    def __init__(self, store: Store, chunking: ChunkingSettings) -> None:
        self.chunking = chunking
        self._record = (store.get_meta(CHUNKING_META_KEY) is None
                        and not store.stats()["chunks"])
        self._added = False

    def removing(self, sources: Sequence[str]) -> None:
        """Nothing to do for removals."""

    def added(self, vectors: Mapping[str, np.ndarray]) -> None:
        """Chunks are being added in this ingest."""
        self._added = True

    def save(self, writer: StoreWriter) -> None:
        """Write the record (only on the first ingest that adds chunks)."""
        if self._record and self._added:
            writer.set_meta(CHUNKING_META_KEY, json.dumps(
                {"chunk_size": self.chunking.chunk_size,
                 "chunk_overlap": self.chunking.chunk_overlap}))

"""Turning scored chunk ids into ``Hit`` objects."""

from __future__ import annotations

from collections.abc import Sequence

from aspectrag.store.base import Store
from aspectrag.types import Hit


def to_hits(store: Store, ranked: Sequence[tuple[str, float]], k: int,
            provenance: Sequence[dict] | None = None) -> list[Hit]:  # type: ignore[type-arg]
    """Look up the chunks of the first ``k`` ``(chunk_id, score)`` pairs and wrap them as hits."""
    top = list(ranked)[:k]
    chunks = store.get_chunks([cid for cid, _ in top])
    return [Hit(ch, float(score), rank, dict(provenance[rank - 1]) if provenance else {})
            for rank, (ch, (_, score)) in enumerate(zip(chunks, top, strict=True), start=1)]

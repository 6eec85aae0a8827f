"""The point model shared by the Qdrant store's read and write paths (``store/qdrant.py``):
point ids, the source-filter keys, the visibility filter of a committed state."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from qdrant_client import models

NAMESPACE = uuid.UUID("5b1f0c8e-9a57-4c1e-8f0e-6a1d2b3c4d5e")
STATE_ID = str(uuid.uuid5(NAMESPACE, "state"))
SPARSE = "bm25"


def point_id(kind: str, key: str, write_id: int) -> str:
    """The point id of version ``write_id`` of a chunk (``key`` its chunk id) or a document
    (``key`` its source): ``uuid5`` of the three, so versions never overwrite each other."""
    return str(uuid.uuid5(NAMESPACE, f"{kind}\x00{key}\x00{write_id}"))


def source_keys(source: str) -> dict[str, list[str]]:
    """The payload keys of the source filter: prefixes of ``source`` ending in ``/`` and ``#``."""
    return {"dirs": [source[: i + 1] for i, ch in enumerate(source) if ch == "/"],
            "hashes": [source[: i + 1] for i, ch in enumerate(source) if ch == "#"]}


def source_filter(sources: Sequence[str] | None) -> models.Filter | None:
    """The Qdrant filter of :func:`aspectrag.store.base.source_matches` (None: no filter)."""
    if not sources:
        return None
    fs = list(sources)
    return models.Filter(should=[
        models.FieldCondition(key="source", match=models.MatchAny(any=fs)),
        models.FieldCondition(key="dirs", match=models.MatchAny(
            any=sorted({f.rstrip("/") + "/" for f in fs}))),
        models.FieldCondition(key="hashes", match=models.MatchAny(any=[f + "#" for f in fs])),
    ])


def visible(committed: int, *extra: models.Condition,
            must_not: Sequence[models.Condition] = ()) -> models.Filter:
    """Points of the committed state ``committed``: ``born <= committed``, not ``died <=
    committed``, and the ``extra`` conditions."""
    return models.Filter(
        must=[models.FieldCondition(key="born", range=models.Range(lte=committed)), *extra],
        must_not=[models.FieldCondition(key="died", range=models.Range(lte=committed)),
                  *must_not])


def is_visible(payload: dict[str, Any], committed: int) -> bool:
    """Whether a point with this payload passes :func:`visible` ``(committed)``: ``born <=
    committed`` and no ``died <= committed`` (the same test, client-side)."""
    died = payload.get("died")
    return int(payload["born"]) <= committed and (died is None or int(died) > committed)


def match(key: str, value: str | list[str]) -> models.FieldCondition:
    """``key`` equals ``value`` (a list: any of them), exactly."""
    if isinstance(value, list):
        return models.FieldCondition(key=key, match=models.MatchAny(any=value))
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))

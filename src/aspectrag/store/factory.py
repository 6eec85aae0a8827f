"""Builds the store backend from a location: the one place that maps config to backends."""

from __future__ import annotations

from pathlib import Path

from aspectrag.store.base import Store


def build_store(location: str | Path) -> Store:
    """A store for ``location``: a folder path gives the embedded SQLite store.

    (A ``qdrant://host:port/collection`` backend will plug in here.)
    """
    from aspectrag.store.sqlite import SQLiteStore

    return SQLiteStore(location)

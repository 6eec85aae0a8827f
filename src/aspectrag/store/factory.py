"""Builds the store backend from a location string: the one place that maps locations to
backends.

A location is a folder path (the embedded SQLite store) or ``scheme://...`` naming a
registered backend. ``file://PATH`` is a folder path too. Registered here:
``qdrant://HOST:PORT/COLLECTION``, ``qdrant+https://HOST:PORT/COLLECTION`` and
``qdrant+local://PATH/COLLECTION`` (the Qdrant store, ``store/qdrant.py``; the ``qdrant``
extra, imported only when such a location is opened).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from aspectrag.errors import ConfigError
from aspectrag.store.base import Store

#: scheme -> ``factory(location, readonly=...)``; see :func:`register_backend`.
_BACKENDS: dict[str, Callable[..., Store]] = {}

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def register_backend(scheme: str, factory: Callable[..., Store]) -> None:
    """Make ``scheme://...`` locations open with ``factory(location, readonly=bool)``."""
    _BACKENDS[scheme.lower()] = factory


def supported_schemes() -> list[str]:
    """The ``scheme://`` prefixes accepted besides folder paths (``file`` always)."""
    return ["file", *sorted(_BACKENDS)]


def is_local(location: str | Path) -> bool:
    """True when ``location`` is a folder path (or ``file://``), not a remote backend."""
    m = _SCHEME.match(str(location))
    return m is None or m.group(1).lower() == "file"


def _qdrant(location: str, *, readonly: bool = False) -> Store:
    """The Qdrant store at ``location`` (API key from ``store.qdrant_api_key``).

    Raises:
        aspectrag.extras.MissingExtraError: qdrant-client is not installed (names
            ``pip install 'aspectrag[qdrant]'``).
    """
    from aspectrag.extras import optional_import
    from aspectrag.settings import get_settings

    optional_import("qdrant_client", f"index location {location!r} (the Qdrant store)")
    from aspectrag.store.qdrant import QdrantStore

    return QdrantStore(location, readonly=readonly,
                       api_key=get_settings().store.qdrant_api_key)


for _scheme in ("qdrant", "qdrant+https", "qdrant+local"):
    register_backend(_scheme, _qdrant)


def build_store(location: str | Path, *, readonly: bool = False) -> Store:
    """The store at ``location``: a folder path (or ``file://PATH``) gives the embedded SQLite
    store; ``scheme://...`` a registered backend.

    Args:
        location: folder path or ``scheme://...``.
        readonly: open for reading only (no file is created or changed; writes raise).

    Raises:
        ConfigError: an unknown scheme (the message lists the supported ones).
    """
    text = str(location)
    m = _SCHEME.match(text)
    if m is not None and m.group(1).lower() != "file":
        scheme = m.group(1).lower()
        if scheme not in _BACKENDS:
            raise ConfigError(
                f"index location {text!r}: unknown store scheme {scheme!r}; use a folder path "
                f"or one of {', '.join(s + '://' for s in supported_schemes())}")
        return _BACKENDS[scheme](text, readonly=readonly)
    from aspectrag.store.sqlite import SQLiteStore

    path = text[len("file://"):] if m is not None else text
    return SQLiteStore(Path(path), readonly=readonly)

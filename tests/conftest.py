"""Shared fixtures: the shared data folder, the bundled embedder (loaded once per session)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# `aspectrag ingest` would export the fp32 ONNX query twin into each test's cache folder (tens
# of seconds each); tests/multihead/test_query_twin.py turns it on where it is the subject
os.environ.setdefault("ASPECTRAG_QUERY_TWIN", "0")


def shared_data() -> Path:
    """``ASPECTRAG_SHARED_DATA`` or ``<repo>/../shared/data``."""
    return Path(os.environ.get("ASPECTRAG_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    d = shared_data()
    if not d.is_dir():
        pytest.skip(f"shared data folder {d} is absent (set ASPECTRAG_SHARED_DATA)")
    return d


@pytest.fixture(scope="session")
def embedder():  # type: ignore[no-untyped-def]
    from aspectrag.embed.hf import HFEmbedder

    return HFEmbedder()

"""Fixtures for generate/: tiny random local models built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.generate.tiny_models import KINDS, build


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """kind -> folder of a tiny random model (gpt2, llama, t5, bart), 512 positions."""
    root = tmp_path_factory.mktemp("tiny_models")
    return {k: build(k, root / k) for k in KINDS}


@pytest.fixture(scope="session")
def tiny_short_gpt2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny GPT-2 with only 96 positions (context packing)."""
    return build("gpt2", tmp_path_factory.mktemp("tiny_short") / "gpt2", positions=96)

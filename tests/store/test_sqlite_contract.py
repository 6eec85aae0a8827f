"""The store contract suite (``aspectrag.store.testing``) run for the SQLite store."""

from __future__ import annotations

import pytest

from aspectrag.store.sqlite import SQLiteStore
from aspectrag.store.testing import StoreContract


class TestSQLiteContract(StoreContract):
    @pytest.fixture
    def open_store(self, tmp_path):  # type: ignore[no-untyped-def]
        return lambda readonly=False: SQLiteStore(tmp_path / "idx", readonly=readonly)

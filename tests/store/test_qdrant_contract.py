"""The store contract suite (``aspectrag.store.testing``) run for the Qdrant store: on
qdrant-client's local mode (a folder), and on a real server when ``ASPECTRAG_QDRANT_URL`` is set
(``docker run -p 6333:6333 qdrant/qdrant``; ``http://127.0.0.1:6333``)."""

from __future__ import annotations

import uuid

import pytest

from aspectrag.store.testing import StoreContract

pytest.importorskip("qdrant_client", reason="qdrant-client is not installed (pip install "
                    "'aspectrag[qdrant]')")

from aspectrag.settings import get_settings  # noqa: E402
from aspectrag.store.factory import build_store  # noqa: E402


class TestQdrantMemoryContract(StoreContract):
    """Local mode in memory (fast): a new collection per test."""

    @pytest.fixture
    def open_store(self):  # type: ignore[no-untyped-def]
        loc = f"qdrant+local://:memory:/t{uuid.uuid4().hex[:12]}"
        return lambda readonly=False: build_store(loc, readonly=readonly)


class TestQdrantFolderContract(StoreContract):
    """Local mode in a folder (persisted by qdrant-client; about 0.1 s per write, so only the
    tests where the folder matters)."""

    @pytest.fixture
    def open_store(self, tmp_path):  # type: ignore[no-untyped-def]
        loc = f"qdrant+local://{tmp_path / 'q'}/idx"
        return lambda readonly=False: build_store(loc, readonly=readonly)


FOLDER_TESTS = ("test_empty_store", "test_persists_across_reopen", "test_readonly_open",
                "test_failed_writer_changes_nothing", "test_upsert_get_and_iterate")
for _name in dir(StoreContract):
    if _name.startswith("test_") and _name not in FOLDER_TESTS:
        setattr(TestQdrantFolderContract, _name, None)


def _server_url() -> str | None:
    return get_settings().store.qdrant_url


@pytest.mark.skipif(_server_url() is None,
                    reason="no Qdrant server: set ASPECTRAG_QDRANT_URL=http://HOST:6333")
class TestQdrantServerContract(StoreContract):
    @pytest.fixture
    def open_store(self):  # type: ignore[no-untyped-def]
        url = str(_server_url()).rstrip("/")
        host = url.split("://", 1)[-1]
        scheme = "qdrant+https" if url.startswith("https://") else "qdrant"
        name = f"aspectrag-test-{uuid.uuid4().hex[:12]}"
        loc = f"{scheme}://{host}/{name}"
        yield lambda readonly=False: build_store(loc, readonly=readonly)
        st = build_store(loc)
        for c in (name, name + "__meta"):
            if st.client.collection_exists(c):
                st.client.delete_collection(c)

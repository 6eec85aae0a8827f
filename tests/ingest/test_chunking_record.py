"""An index records its chunking at its first ingest and later ingests keep it
(``aspectrag.ingest.chunking``): the record commits with the chunks, the settings' default
defers to it, an explicit other chunking is refused with a message, old unrecorded indexes
keep working."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from tests.fakes import HashEmbedder

from aspectrag import Index
from aspectrag.config import ChunkingConfig
from aspectrag.errors import ConfigError
from aspectrag.ingest.chunking import CHUNKING_META_KEY, recorded_chunking
from aspectrag.store.sqlite import DB_FILE

LONG = " ".join(f"word{i} sentence part." for i in range(400))


def _docs(folder: Path, names: list[str]) -> Path:
    folder.mkdir(exist_ok=True)
    for n in names:
        (folder / f"{n}.txt").write_text(f"{n} {LONG}")
    return folder


def test_first_ingest_records_chunking_and_later_ingests_keep_it(tmp_path, caplog):
    docs = _docs(tmp_path / "docs", ["a"])
    idx = Index(tmp_path / "idx", embedder=HashEmbedder(), chunking=ChunkingConfig(40, 8))
    idx.ingest([docs])
    assert recorded_chunking(idx.store) == ChunkingConfig(40, 8)
    n_a = idx.store.stats()["chunks"]

    # default chunking from the settings (128/16): the recorded 40/8 wins, with a warning
    again = Index(tmp_path / "idx", embedder=HashEmbedder())
    _docs(docs, ["b"])
    with caplog.at_level("WARNING"):
        again.ingest([docs])
    assert "keeps its recorded chunking 40 tokens with 8 overlap" in caplog.text
    assert again.store.stats()["chunks"] == 2 * n_a  # b chunked like a (same length)

    # an explicit other chunking is refused and nothing is written
    _docs(docs, ["c"])
    other = Index(tmp_path / "idx", embedder=HashEmbedder(), chunking=ChunkingConfig(64, 8))
    with pytest.raises(ConfigError, match="chunked at 40 tokens with 8 overlap.*new index"):
        other.ingest([docs])
    assert other.store.stats()["documents"] == 2
    # the same chunking given explicitly is fine
    Index(tmp_path / "idx", embedder=HashEmbedder(), chunking=ChunkingConfig(40, 8)).ingest([docs])
    assert again.store.stats()["documents"] == 3


def test_unrecorded_index_is_not_given_a_record(tmp_path):
    docs = _docs(tmp_path / "docs", ["a"])
    idx = Index(tmp_path / "idx", embedder=HashEmbedder(), chunking=ChunkingConfig(40, 8))
    idx.ingest([docs])
    idx.store.close()
    with sqlite3.connect(tmp_path / "idx" / DB_FILE) as conn:  # as an index built before
        conn.execute("DELETE FROM meta WHERE key=?", (CHUNKING_META_KEY,))  # chunking was recorded
    idx = Index(tmp_path / "idx", embedder=HashEmbedder())
    assert recorded_chunking(idx.store) is None
    _docs(docs, ["b"])
    Index(tmp_path / "idx", embedder=HashEmbedder(), chunking=ChunkingConfig(64, 8)).ingest([docs])
    assert recorded_chunking(idx.store) is None


def test_chunking_is_decided_under_the_writer_lock(tmp_path):
    """Two ingests into a new index with different chunkings: the one that waited for the
    writer lock sees the chunking the first recorded (not the empty index it saw when called)
    and is refused; the index keeps one chunking."""
    import threading

    docs_a, docs_b = _docs(tmp_path / "a", ["a"]), _docs(tmp_path / "b", ["b"])
    first = Index(tmp_path / "idx", embedder=HashEmbedder(), chunking=ChunkingConfig(40, 8))
    second = Index(tmp_path / "idx", embedder=HashEmbedder(), chunking=ChunkingConfig(64, 8))
    waiting, errors = threading.Event(), []

    def run_second() -> None:
        try:
            second.ingest([docs_b], on_wait=lambda msg: waiting.set())
        except ConfigError as e:
            errors.append(e)

    with first.store.write_lock():
        t = threading.Thread(target=run_second)
        t.start()
        assert waiting.wait(30), "the second ingest never waited for the lock"
        first.ingest([docs_a])
    t.join(60)
    assert errors and "chunked at 40 tokens with 8 overlap" in str(errors[0])
    assert recorded_chunking(first.store) == ChunkingConfig(40, 8)
    assert first.store.stats()["documents"] == 1

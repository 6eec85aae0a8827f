"""SQLite store: reads never write nor wait, migration of old indexes, damage detection/repair."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from aspectrag.errors import IndexBusyError, StoreError
from aspectrag.store.factory import build_store
from aspectrag.store.sqlite import SQLiteStore
from aspectrag.store.testing import SPACES, make_doc, unit_vectors, vectors_for


def _filled(path: Path, n: int = 3) -> SQLiteStore:
    st = SQLiteStore(path)
    with st.writer() as w:
        w.declare_spaces(SPACES)
        w.set_meta("embedder", "test:e")
        for i in range(n):
            d, c = make_doc(f"/d{i}.txt", [f"alpha word{i} number {j}" for j in range(4)])
            w.upsert(d, c, vectors_for(4, i))
    st.refresh()
    st.close()
    return st


def _snapshot(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())
            if p.is_file()}


def test_opening_a_missing_index_creates_nothing(tmp_path):
    st = SQLiteStore(tmp_path / "typo")
    assert st.stats() == {"documents": 0, "chunks": 0} and st.keyword_search(["x"], 3) == [[]]
    assert not (tmp_path / "typo").exists()


def test_reads_write_nothing(tmp_path):
    _filled(tmp_path / "idx")
    before = _snapshot(tmp_path / "idx")
    st = SQLiteStore(tmp_path / "idx", readonly=True)
    assert st.stats()["chunks"] == 12
    st.keyword_search(["alpha"], 3)
    st.vector_search("dense", unit_vectors(1, 8), 3, sources=["/d1.txt"])
    st.close()
    after = _snapshot(tmp_path / "idx")
    assert after.get("index.sqlite") == before["index.sqlite"]
    assert set(after) - set(before) <= {"index.sqlite-wal", "index.sqlite-shm"}


def test_readers_do_not_wait_for_an_open_write_transaction(tmp_path):
    _filled(tmp_path / "idx")
    writer = SQLiteStore(tmp_path / "idx")
    reader = SQLiteStore(tmp_path / "idx")
    in_txn, release = threading.Event(), threading.Event()

    def write() -> None:
        with writer.writer() as w:
            w.delete("/d0.txt")
            in_txn.set()
            release.wait(10)

    t = threading.Thread(target=write)
    t.start()
    assert in_txn.wait(10)
    t0 = time.perf_counter()
    assert reader.stats()["documents"] == 3  # the committed state, at once
    assert reader.keyword_search(["alpha"], 20)[0]
    assert time.perf_counter() - t0 < 2
    release.set()
    t.join()
    assert reader.stats()["documents"] == 2


def test_second_writer_waits_or_fails_at_once(tmp_path):
    _filled(tmp_path / "idx")
    holder, other = SQLiteStore(tmp_path / "idx"), SQLiteStore(tmp_path / "idx")
    with holder.write_lock():
        with pytest.raises(IndexBusyError, match=f"pid {os.getpid()}"):
            with other.write_lock(wait=False):
                pass
        messages: list[str] = []
        done = threading.Event()

        def wait_and_write() -> None:
            with other.writer() as w:  # takes the lock, waiting
                w.set_meta("k", "v")
            done.set()

        t = threading.Thread(target=lambda: _with_lock(other, messages, wait_and_write))
        t.start()
        time.sleep(0.5)
        assert not done.is_set()
    t.join(10)
    assert done.is_set() and other.get_meta("k") == "v"
    assert messages and "waiting for the ingest started by pid" in messages[0]


def _with_lock(store, messages, fn):  # type: ignore[no-untyped-def]
    with store.write_lock(on_wait=messages.append):
        fn()


def _v1_index(path: Path) -> None:
    """An index as written before schema version 2: chunk ids ``<doc_id>#<i>``."""
    from aspectrag.store.sqlite_write import SCHEMA

    path.mkdir()
    conn = sqlite3.connect(path / "index.sqlite", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    for stmt in SCHEMA:
        conn.execute(stmt)
    conn.execute("INSERT INTO meta VALUES ('generation', '3')")
    conn.execute("INSERT INTO meta VALUES ('embedder', 'test:e')")
    for i, src in enumerate(["/x/corpus.jsonl#d1", "/x/corpus.jsonl#d2"]):
        conn.execute("INSERT INTO documents VALUES (?,?,?,?,?,?,?,?)",
                     (i + 1, src.rsplit("#", 1)[1], src, "T", "f", "{}", "[]", 5))
        conn.execute("INSERT INTO chunks VALUES (?,?,?,?,?,?,?,?,?)",
                     (i + 1, f"{src.rsplit('#', 1)[1]}#0", i + 1, 0, f"text {i}", 0, 6, None, None))
        conn.execute("INSERT INTO vectors VALUES (?,?,?)",
                     (i + 1, "dense", unit_vectors(1, 8, i)[0].tobytes()))
    conn.close()


def test_version_1_index_is_read_as_is_and_migrated_on_first_write(tmp_path):
    _v1_index(tmp_path / "old")
    ro = SQLiteStore(tmp_path / "old", readonly=True)
    assert [c.chunk_id for c in ro.iter_chunks()] == ["d1#0", "d2#0"]
    assert [(s.name, s.dim) for s in ro.spaces()] == [("dense", 8)]
    st = SQLiteStore(tmp_path / "old")
    with st.write_lock():
        pass
    assert [c.chunk_id for c in st.iter_chunks()] == ["/x/corpus.jsonl#d1#0",
                                                      "/x/corpus.jsonl#d2#0"]
    assert st.get_meta("schema_version") == "2" and st.generation == 4
    assert st.get_meta("spaces") is not None
    # and a corpus file with the same _ids can now be added next to it
    with st.writer() as w:
        d, c = make_doc("/y/corpus.jsonl#d1", ["other text"], doc_id="d1")
        w.upsert(d, c, {"dense": unit_vectors(1, 8, 5)})
    assert st.stats() == {"documents": 3, "chunks": 3}


def test_factory_parses_locations(tmp_path):
    assert isinstance(build_store(str(tmp_path / "a")), SQLiteStore)
    assert isinstance(build_store(f"file://{tmp_path / 'b'}"), SQLiteStore)
    assert build_store(tmp_path / "c", readonly=True).readonly
    from aspectrag.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown store scheme 'elastic'.*file://.*qdrant://"):
        build_store("elastic://localhost:9200/docs")


def _damage_page(db: Path, page: int) -> None:
    size = 4096
    with open(db, "r+b") as f:
        f.seek(page * size)
        f.write(b"\xff" * size)


def test_damaged_index_is_reported_and_refused_for_writing(tmp_path):
    st = _filled(tmp_path / "idx", n=40)
    pages = (tmp_path / "idx" / "index.sqlite").stat().st_size // 4096
    assert pages > 6
    _damage_page(tmp_path / "idx" / "index.sqlite", pages - 2)
    rep = SQLiteStore(tmp_path / "idx", readonly=True).check()
    assert not rep.ok, rep
    with pytest.raises(StoreError, match="aspectrag check --index"):
        with SQLiteStore(tmp_path / "idx").writer() as w:
            w.set_meta("k", "v")
    del st


def test_not_a_database_is_one_clear_error(tmp_path):
    (tmp_path / "idx").mkdir()
    (tmp_path / "idx" / "index.sqlite").write_bytes(os.urandom(8192))
    with pytest.raises(StoreError, match=r"index .*idx: .*aspectrag check --index"):
        SQLiteStore(tmp_path / "idx").stats()
    rep = SQLiteStore(tmp_path / "idx").check()
    assert not rep.ok and not rep.repairable


def test_check_finds_and_repair_rebuilds_damaged_derived_indexes(tmp_path):
    st = _filled(tmp_path / "idx")
    assert st.check().ok, st.check().problems
    derived = tmp_path / "idx" / "derived"
    (derived / "vec-head0.npz").write_bytes(b"garbage")
    rows = np.load(derived / "bm25" / "rowids.npy")
    np.save(derived / "bm25" / "rowids.npy", rows[::-1].copy())  # same tag, wrong rows
    rep = SQLiteStore(tmp_path / "idx", readonly=True).check()
    assert not rep.ok and rep.repairable
    assert any("BM25" in p for p in rep.problems)
    assert any("head0" in p for p in rep.problems)
    lines = SQLiteStore(tmp_path / "idx").repair()
    assert any("rebuilt the derived indexes" in x for x in lines)
    assert not any(x.startswith("cannot") for x in lines)
    assert SQLiteStore(tmp_path / "idx").check().ok


def test_check_reports_missing_vectors_as_not_repairable(tmp_path):
    _filled(tmp_path / "idx")
    conn = sqlite3.connect(tmp_path / "idx" / "index.sqlite")
    conn.execute("DELETE FROM vectors WHERE space='head1' AND chunk=1")
    conn.commit()
    conn.close()
    rep = SQLiteStore(tmp_path / "idx").check()
    assert not rep.repairable and any("'head1'" in p for p in rep.problems)
    assert any(x.startswith("cannot: ") for x in SQLiteStore(tmp_path / "idx").repair())


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions")
def test_index_on_a_read_only_folder_can_be_searched(tmp_path):
    _filled(tmp_path / "idx")
    for p in (tmp_path / "idx").iterdir():
        if p.name.startswith("index.sqlite-"):
            p.unlink()
    os.chmod(tmp_path / "idx", 0o555)
    try:
        st = SQLiteStore(tmp_path / "idx")
        assert st.keyword_search(["alpha"], 2)[0]
        with pytest.raises(StoreError):
            with st.writer() as w:
                w.set_meta("k", "v")
    finally:
        os.chmod(tmp_path / "idx", 0o755)

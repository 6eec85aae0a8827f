"""``check`` and ``repair`` of the SQLite store (``aspectrag check`` / ``aspectrag repair``).

What is checked: ``PRAGMA integrity_check`` (``quick_check`` when quick), orphan rows
(``PRAGMA foreign_key_check``), every declared vector space against the stored vectors (one
vector per chunk, of the declared size), the recorded embedder, and each derived index
(BM25, one dense matrix per space) against the store: same generation, same rows, and equal
vectors on a sample of rows.

What repair can rebuild: the derived indexes (deleted and rebuilt from the store), the SQL
indexes of the database (``REINDEX``, when the integrity check finds only index damage), and
orphan rows (deleted). What it cannot: damaged table pages, missing or wrongly sized vectors,
an unrecorded embedder -- the data itself; then the sources must be re-ingested into a new index.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from typing import Any

import numpy as np

from aspectrag.store.base import CheckReport
from aspectrag.store.bm25_index import BM25Index
from aspectrag.store.dense_index import DenseIndex
from aspectrag.store.segments import npz_meta
from aspectrag.store.vector_codec import decode, itemsize

SQLiteStore = Any  # an aspectrag.store.sqlite.SQLiteStore (not imported: sqlite.py imports this)

# integrity_check lines that only concern an index b-tree (REINDEX rebuilds those)
_INDEX_ONLY = re.compile(r"(wrong # of entries in index|row \d+ missing from index|"
                         r"non-unique entry in index|index \S+ stores an imprecise)")


def _reingest(store: SQLiteStore) -> str:
    return (f"re-ingest the sources into a new --index folder (list them with "
            f"`aspectrag stats --sources --index {store.location}` if it still opens)")


def check_store(store: SQLiteStore, *, quick: bool = False) -> CheckReport:
    """See the module doc; never raises for damage (it is reported)."""
    rep = CheckReport([], [])
    if not store.db_path.is_file():
        rep.problems.append(f"no index database at {store.db_path}")
        rep.repairable = False
        return rep
    try:
        conn = store._conn()
        rows = [r[0] for r in conn.execute(
            "PRAGMA quick_check" if quick else "PRAGMA integrity_check").fetchall()]
    except Exception as e:  # StoreError / sqlite3.DatabaseError: not a database at all
        rep.problems.append(f"the database file cannot be read ({e}); cannot be repaired: "
                            + _reingest(store))
        rep.repairable = False
        return rep
    if rows != ["ok"]:
        index_only = all(_INDEX_ONLY.search(r) for r in rows)
        more = f" (and {len(rows) - 1} more)" if len(rows) > 1 else ""
        if index_only:
            rep.problems.append(f"SQL index damage: {rows[0]}{more}; `aspectrag repair` "
                                "rebuilds the SQL indexes")
        else:
            rep.problems.append(f"database damage: {rows[0]}{more}; cannot be repaired: "
                                + _reingest(store))
            rep.repairable = False
            return rep
    if quick:
        return rep
    try:
        _check_contents(store, conn, rep)
    except sqlite3.DatabaseError as e:
        rep.problems.append(f"reading the database failed ({e}); cannot be repaired: "
                            + _reingest(store))
        rep.repairable = False
    return rep


def _check_contents(store: SQLiteStore, conn: sqlite3.Connection, rep: CheckReport) -> None:
    n_docs = conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
    n_chunks = conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
    version = store.get_meta("schema_version") or "1"
    embedder = store.get_meta("embedder")
    rep.notes.append(f"{n_docs} documents, {n_chunks} chunks, schema version {version}, "
                     f"generation {store.generation}, embedder {embedder}")
    orphans = conn.execute("PRAGMA foreign_key_check").fetchall()
    if orphans:
        rep.problems.append(f"{len(orphans)} orphan rows (chunks or vectors without their "
                            "parent); `aspectrag repair` deletes them")
    if n_chunks and embedder is None:
        rep.problems.append("no embedder is recorded for the stored vectors; cannot be "
                            "repaired: " + _reingest(store))
        rep.repairable = False
    specs = store.spaces()
    dtypes = {s.name: store.vector_dtype(s.name) for s in specs}
    rep.notes.append("vector spaces: " + (", ".join(
        f"{s.name} ({s.dim} dims, {s.distance}, {dtypes[s.name]})" for s in specs) or "none"))
    stored = {r[0]: (r[1], r[2], r[3]) for r in conn.execute(
        "SELECT space, COUNT(*), MIN(length(vec)), MAX(length(vec)) FROM vectors GROUP BY space")}
    for s in specs:
        count, lo, hi = stored.pop(s.name, (0, None, None))
        size = itemsize(dtypes[s.name]) * s.dim
        if n_chunks and (count != n_chunks or lo != size or hi != size):
            rep.problems.append(
                f"space {s.name!r}: {count} vectors for {n_chunks} chunks, sizes {lo}-{hi} "
                f"bytes (declared {s.dim} {dtypes[s.name]}); cannot be repaired: "
                + _reingest(store))
            rep.repairable = False
    for name in stored:
        rep.problems.append(f"vectors of undeclared space {name!r}; cannot be repaired: "
                            + _reingest(store))
        rep.repairable = False
    _check_derived(store, conn, rep, [s.name for s in specs])


def _check_derived(store: SQLiteStore, conn: sqlite3.Connection, rep: CheckReport,
                   spaces: list[str]) -> None:
    gen = store.generation
    chunk_rows = np.array([r[0] for r in conn.execute("SELECT id FROM chunks ORDER BY id")],
                          dtype=np.int64)
    folder = store.derived / "bm25"
    if folder.exists():
        bm = BM25Index.load(folder, gen)
        if bm is None and BM25Index.load_any(folder) is not None:
            rep.notes.append("derived BM25 index is stale: brought up to date on the next search")
        elif bm is None and _old_layout(lambda: json.loads((folder / "meta.json").read_text())):
            rep.notes.append("derived BM25 index has an older layout: rebuilt on the next search")
        elif bm is None:
            rep.problems.append("derived BM25 index is unreadable; `aspectrag repair` rebuilds it")
        elif not np.array_equal(bm.live_rowids, chunk_rows):
            rep.problems.append("derived BM25 index does not cover the stored chunks; "
                                "`aspectrag repair` rebuilds it")
    for space in spaces:
        path = store.derived / f"vec-{space}"
        if not path.with_suffix(".npz").exists():
            continue
        dn = DenseIndex.load(path, gen, store.ann_threshold)
        if dn is None:
            if DenseIndex.load(path, None, store.ann_threshold) is not None:
                rep.notes.append(f"derived index of space {space!r} is stale: brought up to "
                                 "date on next use")
            elif _old_layout(lambda path=path: npz_meta(path.with_suffix(".npz"))):
                rep.notes.append(f"derived index of space {space!r} has an older layout: "
                                 "rebuilt on next use")
            else:
                rep.problems.append(f"derived index of space {space!r} is unreadable; "
                                    "`aspectrag repair` rebuilds it")
            continue
        rows = [r[0] for r in conn.execute(
            "SELECT chunk FROM vectors WHERE space=? ORDER BY chunk", (space,))]
        if not np.array_equal(dn.live_rowids, np.array(rows, dtype=np.int64)):
            rep.problems.append(f"derived index of space {space!r} does not cover the stored "
                                "vectors; `aspectrag repair` rebuilds it")
            continue
        live = np.flatnonzero(dn.live)
        dtype = store.vector_dtype(space)
        sample = np.unique(np.linspace(0, len(rows) - 1, min(len(rows), 64)).astype(int))
        for pos in sample:
            blob = conn.execute("SELECT vec FROM vectors WHERE chunk=? AND space=?",
                                (rows[pos], space)).fetchone()[0]
            p, nb = live[pos], len(dn.base_rowids)  # (not dn.vectors: a copy of every row)
            got = dn.base_vectors[p] if p < nb else dn.delta_vectors[p - nb]
            want = decode(blob, dtype)
            if dn.base_vectors.dtype == np.float16:  # a float16 HNSW graph holds the base
                want, got = want.astype(np.float16), got.astype(np.float16)
            if not np.array_equal(want, got):
                rep.problems.append(f"derived index of space {space!r} differs from the stored "
                                    "vectors; `aspectrag repair` rebuilds it")
                break


def _old_layout(read) -> bool:  # type: ignore[no-untyped-def]
    """True when ``read()`` gives the metadata of a derived index saved before segments (it
    has a generation but no base id); False when unreadable or current."""
    try:
        meta = read()
        return "generation" in meta and "base_id" not in meta
    except Exception:  # any damage: unreadable
        return False


def repair_store(store: SQLiteStore) -> list[str]:
    """Rebuild what can be rebuilt (see the module doc) under the writer lock; returns one
    line per action, lines starting with ``"cannot: "`` for what remains broken."""
    before = check_store(store)
    if not store.db_path.is_file():
        return [f"cannot: {p}" for p in before.problems]
    out: list[str] = []
    with store._writer_lock.hold():
        conn = store._conn()
        if any("SQL index damage" in p for p in before.problems):
            conn.execute("REINDEX")
            out.append("rebuilt the SQL indexes (REINDEX)")
        if not before.repairable:
            return out + [f"cannot: {p}" for p in before.problems
                          if "cannot be repaired" in p]
        if any("orphan rows" in p for p in before.problems):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("DELETE FROM vectors WHERE chunk NOT IN (SELECT id FROM chunks)")
            conn.execute("DELETE FROM chunks WHERE doc NOT IN (SELECT id FROM documents)")
            conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 "
                         "WHERE key='generation'")
            conn.execute("COMMIT")
            out.append("deleted orphan rows")
        shutil.rmtree(store.derived, ignore_errors=True)
        with store._lock:
            store._bm25, store._dense, store._stacks = None, {}, {}
        store.refresh()
        out.append("rebuilt the derived indexes (bm25" + "".join(
            f", vec-{s}" for s in store.vector_spaces()) + ")")
    after = check_store(store)
    out += [f"cannot: {p}" for p in after.problems]
    return out

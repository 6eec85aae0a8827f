"""Ingest pipeline and the store: embed first then one short commit, the writer lock, chunk ids,
in-memory documents, limits, progress, and how failures are reported."""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from tests.fakes import HashEmbedder
from typer.testing import CliRunner

from aspectrag.errors import IndexBusyError
from aspectrag.index import Index
from aspectrag.ingest.pipeline import ingest
from aspectrag.store.sqlite import SQLiteStore
from aspectrag.types import Document

ROOT = Path(__file__).resolve().parents[2]


class BatchRecorder(HashEmbedder):
    """HashEmbedder remembering the size of every encode call."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def encode(self, texts, **kw):  # type: ignore[no-untyped-def]
        self.sizes.append(len(texts))
        return super().encode(texts, **kw)


def _corpus(path: Path, ids: list[str], word: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"_id": i, "title": "", "text": f"{word} {i}"}) + "\n"
                            for i in ids))
    return path


def test_corpus_files_sharing_ids_do_not_collide(tmp_path):
    a = _corpus(tmp_path / "a" / "corpus.jsonl", ["d1", "d2"], "apple")
    b = _corpus(tmp_path / "b" / "corpus.jsonl", ["d1", "d3"], "banana")
    idx = Index(tmp_path / "idx", embedder=HashEmbedder())
    rep = idx.ingest([a, b])
    assert rep.ok and rep.added == 4
    chunks = list(idx.store.iter_chunks())
    assert len({c.chunk_id for c in chunks}) == 4
    assert all(c.chunk_id == f"{c.source}#{c.index}" for c in chunks)
    hit = idx.search("banana", k=1, retriever="bm25")[0]
    assert hit.chunk.doc_id in {"d1", "d3"} and hit.chunk.source.startswith(str(b))
    # the BEIR evaluation maps hits to document ids through Chunk.doc_id
    from aspectrag.evaluate.metrics import hits_to_docs

    assert "d1" in hits_to_docs(idx.search("apple d1", k=4, retriever="bm25"), 10)


def test_in_memory_documents(tmp_path):
    idx = Index(tmp_path / "idx", embedder=HashEmbedder())
    docs = [Document("u1", "upload://one", "One", "Parrots can talk.", fingerprint="a"),
            Document("u2", "upload://two", "", "Owls hunt at night.", fingerprint="b")]
    rep = idx.ingest(docs)
    assert rep.ok and rep.added == 2 and sorted(idx.store.sources()) == ["upload://one",
                                                                         "upload://two"]
    rep = idx.ingest([docs[0], Document("u2", "upload://two", "", "Owls sleep by day.",
                                        fingerprint="c")])
    assert (rep.unchanged, rep.updated) == (1, 1)
    assert "sleep" in idx.search("owls", k=1, retriever="bm25")[0].chunk.text
    rep = idx.ingest([Document("x", "upload://x", "", "no fingerprint")])
    assert rep.failed and "fingerprint" in rep.failed[0][1]


def test_large_document_is_embedded_in_bounded_batches_with_progress(tmp_path):
    emb = BatchRecorder()
    big = tmp_path / "big.txt"
    big.write_text("".join(f"Sentence number {i} talks about topic {i % 13}.\n\n"
                           for i in range(3000)))
    seen: list[tuple[int, int]] = []
    store = SQLiteStore(tmp_path / "idx")
    rep = ingest(store, emb, [str(big)], batch_chunks=16, progress=False,
                 on_progress=lambda d, t: seen.append((d, t)))
    assert rep.ok and rep.chunks > 16 * 4
    assert max(emb.sizes) <= 16 and sum(emb.sizes) == rep.chunks
    assert seen[-1] == (rep.chunks, rep.chunks) and len(seen) == len(emb.sizes)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert not (tmp_path / "idx" / "staging").exists() or not any(
        (tmp_path / "idx" / "staging").iterdir())


def test_per_file_size_limit(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "small.txt").write_text("Small file about cats.")
    (docs / "large.txt").write_text("word " * 5000)
    idx = Index(tmp_path / "idx", embedder=HashEmbedder())
    rep = idx.ingest([docs], max_file_bytes=10_000)
    assert rep.added == 1 and len(rep.failed) == 1
    src, reason = rep.failed[0]
    assert src.endswith("large.txt") and "25,000 bytes" in reason and "10,000" in reason


def test_a_failed_file_is_logged_once_and_counted(tmp_path, caplog):
    from aspectrag.cli.main import app

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.txt").write_text("Cats purr.")
    (docs / "bad.txt").write_bytes(b"\x00\xff\x00\xfe" * 64)
    with caplog.at_level(logging.INFO, logger="aspectrag"):
        rep = Index(tmp_path / "idx", embedder=HashEmbedder()).ingest([docs])
    assert len(rep.failed) == 1 and not rep.skipped
    assert sum("bad.txt" in r.getMessage() for r in caplog.records) == 1
    assert all(r.levelno < logging.WARNING for r in caplog.records if "bad.txt" in r.getMessage())
    res = CliRunner().invoke(app, ["ingest", str(docs / "bad.txt"), "--index", str(tmp_path / "i2")])
    assert res.exit_code == 1
    assert res.output.count("bad.txt") == 1 and "0 skipped, 1 failed" in res.output


GATED_SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    sys.path.insert(0, {root!r})
    from aspectrag.index import Index
    from tests.fakes import HashEmbedder

    class Gated(HashEmbedder):  # touches the marker in its first encode, then waits for the gate
        def encode(self, texts, **kw):
            Path({marker!r}).touch()
            deadline = time.time() + 120
            while not Path({gate!r}).exists() and time.time() < deadline:
                time.sleep(0.05)
            return super().encode(texts, **kw)

    rep = Index({index!r}, embedder=Gated()).ingest([{docs!r}])
    print("FINISHED", rep.added)
""")


def _start_gated_ingest(tmp_path: Path, docs: Path) -> subprocess.Popen:  # type: ignore[type-arg]
    """A child process ingesting ``docs`` into ``tmp_path/idx`` that stops in its first
    embedding call until ``tmp_path/gate`` exists."""
    marker = tmp_path / "marker"
    script = GATED_SCRIPT.format(root=str(ROOT), index=str(tmp_path / "idx"), marker=str(marker),
                                 gate=str(tmp_path / "gate"), docs=str(docs))
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    deadline = time.time() + 120
    while not marker.exists():
        assert proc.poll() is None, proc.stderr.read().decode()  # type: ignore[union-attr]
        assert time.time() < deadline, "ingest never reached the embedding stage"
        time.sleep(0.05)
    return proc


def _big(tmp_path: Path, n: int = 120) -> Path:
    big = tmp_path / "big"
    big.mkdir()
    for i in range(n):
        (big / f"doc{i:03d}.txt").write_text(f"Document {i} about topic {i % 7}. " * 40)
    return big


def test_embedding_holds_no_database_lock_and_a_kill_changes_nothing(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "cats.txt").write_text("Cats purr when they are content.")
    idx = Index(tmp_path / "idx", embedder=HashEmbedder())
    idx.ingest([docs])
    before = (idx.store.sources(), idx.store.stats(), idx.store.generation)
    proc = _start_gated_ingest(tmp_path, _big(tmp_path))
    try:
        # while the other process embeds, the database's write lock is free ...
        conn = sqlite3.connect(tmp_path / "idx" / "index.sqlite", timeout=0, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        conn.close()
        # ... and readers get the committed state at once
        t0 = time.perf_counter()
        reader = Index(tmp_path / "idx", embedder=HashEmbedder())
        assert reader.search("cats purr", k=1, retriever="hybrid")[0].chunk.source.endswith(
            "cats.txt")
        assert time.perf_counter() - t0 < 5
        # a second writer is refused at once with --no-wait
        with pytest.raises(IndexBusyError, match=f"pid {proc.pid}"):
            reader.ingest([docs], wait=False)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    after_idx = Index(tmp_path / "idx", embedder=HashEmbedder())
    assert (after_idx.store.sources(), after_idx.store.stats(),
            after_idx.store.generation) == before
    assert after_idx.store.check().ok
    assert after_idx.ingest([tmp_path / "big"]).added == 120  # the staging left over is cleared


def test_second_writer_waits_with_a_message_then_runs(tmp_path):
    from aspectrag.cli.main import app

    proc = _start_gated_ingest(tmp_path, _big(tmp_path, 40))
    try:
        res = CliRunner().invoke(app, ["ingest", str(tmp_path / "big"), "--index",
                                       str(tmp_path / "idx"), "--no-wait"])
        assert res.exit_code == 2
        assert "busy" in res.output and f"pid {proc.pid}" in res.output
        assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1
        messages: list[str] = []
        other = tmp_path / "other.txt"
        other.write_text("Owls hunt at night.")
        t = threading.Thread(target=lambda: messages.append(str(Index(
            tmp_path / "idx", embedder=HashEmbedder()).ingest(
            [other], on_wait=messages.append).added)))
        t.start()
        time.sleep(1.0)
        assert t.is_alive() and messages
        assert f"waiting for the ingest started by pid {proc.pid} at " in messages[0]
    finally:
        (tmp_path / "gate").touch()
        out, err = proc.communicate(timeout=120)
    t.join(60)
    assert b"FINISHED 40" in out, err.decode()
    assert messages[-1] == "1"
    assert len(Index(tmp_path / "idx", embedder=HashEmbedder()).store.sources()) == 41

"""Ingest pipeline: incremental updates, bad input, atomicity under SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from tests.fakes import HashEmbedder

from aspectrag.errors import IndexMismatchError
from aspectrag.index import Index

ROOT = Path(__file__).resolve().parents[2]


def _corpus(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cats.md").write_text("# Cats\n\nCats purr when they are content.\n\n## Food\n\nCats eat fish.\n")
    (folder / "dogs.txt").write_text("Dogs bark at strangers. Dogs are loyal companions.\n")
    (folder / "sub").mkdir(exist_ok=True)
    (folder / "sub" / "birds.txt").write_text("Birds migrate south in winter.\n")
    return folder


def test_ingest_search_incremental_update_remove(tmp_path):
    docs = _corpus(tmp_path / "docs")
    idx = Index(tmp_path / "idx", embedder=HashEmbedder())
    rep = idx.ingest([docs])
    assert rep.ok and rep.added == 3 and rep.chunks >= 3
    hit = idx.search("why do cats purr", k=1, retriever="bm25")[0]
    assert hit.chunk.source.endswith("cats.md") and "purr" in hit.chunk.text
    # unchanged files: nothing to do
    rep2 = idx.ingest([docs])
    assert (rep2.added, rep2.updated, rep2.unchanged, rep2.chunks) == (0, 0, 3, 0)
    # a changed file replaces its chunks
    (docs / "dogs.txt").write_text("Dogs howl at the moon.\n")
    rep3 = idx.ingest([docs])
    assert (rep3.updated, rep3.unchanged) == (1, 2)
    assert idx.search("bark strangers", k=3, retriever="bm25") == []
    assert "howl" in idx.search("howl moon", k=1, retriever="hybrid")[0].chunk.text
    # filter by folder
    hits = idx.search("birds migrate", k=5, retriever="dense", sources=[str(docs / "sub")])
    assert hits and all("/sub/" in h.chunk.source for h in hits)
    # remove one document, then a folder
    assert idx.remove(docs / "cats.md") == 1
    assert not any(s.endswith("cats.md") for s in idx.store.sources())
    assert idx.remove(docs / "sub") == 1
    assert len(idx.store.sources()) == 1


def test_reingested_corpus_file_mirrors_removed_and_changed_lines(tmp_path):
    import json

    corpus = tmp_path / "corpus.jsonl"
    rows = [{"_id": f"d{i}", "title": f"T{i}", "text": f"word{i} shared text"} for i in range(4)]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    idx = Index(tmp_path / "idx", embedder=HashEmbedder())
    assert idx.ingest([corpus]).added == 4
    rows[1]["text"] = "word1 changed"
    del rows[2]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    rep = idx.ingest([corpus])
    assert (rep.added, rep.updated, rep.unchanged, rep.removed) == (0, 1, 2, 1)
    assert sorted(s.rsplit("#", 1)[1] for s in idx.store.sources()) == ["d0", "d1", "d3"]
    assert idx.search("word2", k=3, retriever="bm25") == []
    # a corpus file that fails to parse midway removes nothing
    corpus.write_text(json.dumps(rows[0]) + "\n{not json\n")
    rep = idx.ingest([corpus])
    assert rep.failed and rep.removed == 0 and len(idx.store.sources()) == 3


def test_bad_files_are_reported_and_the_rest_ingested(tmp_path):
    docs = _corpus(tmp_path / "docs")
    (docs / "empty.txt").write_text("")
    (docs / "binary.txt").write_bytes(b"\x00\x01\x02\xff" * 100)
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 this is not a pdf")
    idx = Index(tmp_path / "idx", embedder=HashEmbedder())
    rep = idx.ingest([docs])
    assert rep.added == 3
    bad = {Path(s).name for s, _ in rep.failed} | {Path(s).name for s, _ in rep.skipped}
    assert {"empty.txt", "binary.txt", "broken.pdf"} <= bad
    assert not rep.ok
    assert all(reason for _, reason in rep.failed)


def test_index_refuses_another_embedder(tmp_path):
    docs = _corpus(tmp_path / "docs")
    Index(tmp_path / "idx", embedder=HashEmbedder()).ingest([docs])
    other = HashEmbedder()
    other.name = "test:other"
    with pytest.raises(IndexMismatchError, match="test:hash"):
        Index(tmp_path / "idx", embedder=other).search("cats", retriever="dense")


KILL_SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path
    sys.path.insert(0, {root!r})
    from aspectrag.index import Index
    from tests.fakes import HashEmbedder
    idx = Index({index!r}, embedder=HashEmbedder(delay=0.2, marker=Path({marker!r}), marker_after=2))
    idx.ingest([{docs!r}])
    print("FINISHED")
""")


def test_sigkill_midway_leaves_index_exactly_as_before(tmp_path):
    docs = _corpus(tmp_path / "docs")
    idx = Index(tmp_path / "idx", embedder=HashEmbedder())
    idx.ingest([docs])
    before = (idx.store.sources(), idx.store.stats(), idx.store.generation,
              [h.chunk.chunk_id for h in idx.search("cats fish", k=5)])
    # a second, big ingest that is killed while embedding (after 2 of ~40 batches)
    big = tmp_path / "big"
    big.mkdir()
    for i in range(300):
        (big / f"doc{i:03d}.txt").write_text(f"Document {i} about topic {i % 7}. " * 40)
    marker = tmp_path / "marker"
    script = KILL_SCRIPT.format(root=str(ROOT), index=str(tmp_path / "idx"), marker=str(marker),
                                docs=str(big))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"})
    deadline = time.time() + 120
    while not marker.exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.time() < deadline, "ingest never reached the embedding stage"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert b"FINISHED" not in proc.stdout.read()
    after_idx = Index(tmp_path / "idx", embedder=HashEmbedder())
    after = (after_idx.store.sources(), after_idx.store.stats(), after_idx.store.generation,
             [h.chunk.chunk_id for h in after_idx.search("cats fish", k=5)])
    assert after == before
    # and the index is still writable
    assert after_idx.ingest([big]).added == 300

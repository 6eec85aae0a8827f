"""Concurrency (issue 17 item 9d): 8 reader threads search while a second process ingests;
no reader error and every result equals the before or the after state.

Needs the store helper's lock-free readers (issue 17 item 1): on a store whose open writes
to the database (schema DDL, ``INSERT OR IGNORE`` into meta) while the ingest holds the write
lock for its whole embedding phase, readers die with "database is locked" (here after the
capped 2 s busy timeout instead of 60 s)."""

from __future__ import annotations

import shutil

import pytest
from tests.fakes import HashEmbedder
from tests.faults.harness import expected_results, read_load, write_corpus


@pytest.fixture(scope="module")
def indexes(tmp_path_factory):  # type: ignore[no-untyped-def]
    from aspectrag.index import Index

    root = tmp_path_factory.mktemp("concurrency")
    corpus = write_corpus(root / "corpus", 0)
    before = root / "before"
    Index(before, embedder=HashEmbedder()).ingest([corpus])
    exp_before = expected_results(before, HashEmbedder)
    write_corpus(corpus, 1)
    after = root / "after"
    shutil.copytree(before, after)
    Index(after, embedder=HashEmbedder()).ingest([corpus])
    exp_after = expected_results(after, HashEmbedder)
    assert exp_before != exp_after
    return root, corpus, before, exp_before, exp_after


def test_readers_never_fail_or_see_a_mixed_state_during_an_ingest(indexes):
    root, corpus, before, exp_before, exp_after = indexes
    live = root / "live"
    shutil.copytree(before, live)
    # the writer's embedding takes 3 s (longer than the readers' 2 s busy timeout); the readers
    # run until 0.5 s after it exits, 20 s at most
    writer = ["ingest", str(live), str(corpus), "--embedder", "hash", "--delay", "3"]
    res = read_load(live, exp_before, exp_after, readers=8, seconds=20.0, writer=writer)
    assert res.writer_rc == 0, res.writer_err[-2000:]
    assert not res.errors, f"{len(res.errors)} reader errors, first: {res.errors[0]}"
    assert not res.mismatches, res.mismatches[:3]
    assert res.writer_seconds is not None, "the ingest did not finish while readers were reading"
    assert res.reads > 0 and res.saw == {"before", "after"}
    final = read_load(live, exp_after, None, readers=1, seconds=0.2)
    assert final.reads and not final.errors and not final.mismatches

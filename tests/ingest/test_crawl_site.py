"""Acceptance of the crawler (issue 16) on the whole local site: the 52 lilianweng.github.io
posts and 6 archive pages of ../shared/data/lilianweng-posts, served on 127.0.0.1 with traps
(see crawl_site.py), crawled once with the real embedder in a module-scoped fixture; SIGKILL
mid-crawl and resume; the seed pipeline crawl -> ask through the command line.

The 6 archive pages all declare ``<link rel=canonical href=/posts/>`` (a quirk of the site), so
honouring canonical links they are one page: 52 posts + 1 archive page are indexed.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from urllib.parse import urlsplit

import pytest
from tests.conftest import ROOT, shared_data
from tests.ingest.crawl_site import AGENT, PRINT_SLUGS, Site
from typer.testing import CliRunner

from aspectrag import Index

POSTS = shared_data() / "lilianweng-posts"
LOCAL = ("127.0.0.1",)
OPTS = dict(max_pages=300, max_depth=3, delay=0, concurrency=4, timeout=1.0, allow_hosts=LOCAL)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def crawled(tmp_path_factory):  # type: ignore[no-untyped-def]
    if not POSTS.is_dir():
        pytest.skip(f"shared data folder {POSTS} is absent (set ASPECTRAG_SHARED_DATA)")
    with Site(POSTS) as site:
        idx = Index(tmp_path_factory.mktemp("crawl") / "idx")
        rep = idx.crawl([site.base + "/"], **OPTS)
        print(f"\ncrawl figures: {rep.fetched} pages fetched in {rep.seconds:.1f} s = "
              f"{rep.pages_per_second:.2f} pages/s (delay 0, concurrency 4); "
              f"{len(rep.indexed)} indexed, {len(rep.duplicates)} duplicates, "
              f"{len(rep.skipped)} skipped, {len(rep.failed)} failed, {rep.chunks} chunks; "
              f"stages {json.dumps({k: round(v, 2) for k, v in rep.stages.items()})}; "
              f"reasons {rep.reasons()}")
        yield site, idx, rep


def _path(url: str) -> str:
    p = urlsplit(url)
    return p.path + (f"?{p.query}" if p.query else "")


def test_each_post_indexed_once_every_duplicate_and_trap_skipped(crawled):
    site, idx, rep = crawled
    posts = {f"{site.base}/posts/{s}/" for s in site.posts}
    assert len(posts) == 52
    assert set(idx.store.sources()) == posts | {f"{site.base}/posts/"}
    assert sorted(rep.indexed) == sorted(idx.store.sources())
    for slug in site.posts:  # fetched exactly once, under one of its spellings
        assert sum(p.split("?")[0] in (f"/posts/{slug}/", f"/posts/{slug}",
                                        f"/posts/{slug}/index.html") for p in site.log) == 1
    skipped = {_path(s.url): s for s in rep.skipped}
    variants = [s for s in rep.skipped if "after normalisation" in s.reason]
    assert len({s.duplicate_of for s in variants} & posts) == 52
    for slug in PRINT_SLUGS:
        s = skipped[f"/print/{slug}/"]
        assert s.reason.startswith("near-duplicate") and s.duplicate_of == f"{site.base}/posts/{slug}/"
    archives = [s for s in rep.skipped if s.reason == "its canonical page was already crawled"]
    assert len(archives) == 5 and {s.duplicate_of for s in archives} == {f"{site.base}/posts/"}
    assert skipped["/"].reason.startswith("noindex")
    assert skipped["/old/agent"].duplicate_of == f"{site.base}/posts/{AGENT}/"
    assert "redirect loop" in skipped["/loop/a"].reason
    assert skipped["/private/secret-plans/"].reason == "disallowed by robots.txt"
    assert not any(p.startswith("/private/") for p in site.log)
    assert "deeper than --max-depth 3" in skipped["/calendar/2024/04/"].reason
    failed = dict(rep.failed)
    assert failed[f"{site.base}/slow/"] == "timed out after 1 s"
    assert sum(r == "HTTP 404 Not Found" for r in failed.values()) >= 2
    assert rep.fetched <= OPTS["max_pages"] and not rep.budget_reached
    assert len(site.log) == len(set(site.log))  # nothing requested twice


def test_recrawl_with_nothing_changed_reembeds_nothing(crawled):
    site, idx, _ = crawled
    before = idx.store.stats()
    rep = idx.crawl([site.base + "/"], recrawl=True, **OPTS)
    assert rep.chunks == 0 and rep.indexed == [] and rep.stages["embed"] == 0.0
    assert rep.unchanged == 53 and idx.store.stats() == before


_CHILD = """
import sys
from pathlib import Path
from tests.fakes import HashEmbedder
from aspectrag import Index
Index(Path(sys.argv[1]), embedder=HashEmbedder()).crawl(
    [sys.argv[2]], max_pages=300, max_depth=3, delay=0.03, concurrency=1, timeout=1.0,
    allow_hosts=["127.0.0.1"], batch_pages=4)
"""


def test_sigkill_mid_crawl_then_resume_refetches_no_finished_page(tmp_path):
    if not POSTS.is_dir():
        pytest.skip(f"shared data folder {POSTS} is absent (set ASPECTRAG_SHARED_DATA)")
    from tests.fakes import HashEmbedder

    index = tmp_path / "idx"
    with Site(POSTS) as site:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
        proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(index), site.base + "/"],
                                cwd=ROOT, env=env)
        deadline = time.monotonic() + 120
        while sum(p.startswith("/posts/20") for p in site.log) < 20:
            assert proc.poll() is None, "the crawl ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed_at = len(site.log)
        with sqlite3.connect(index / "crawl.sqlite") as db:
            finished = {_path(u) for (u,) in db.execute(
                "SELECT url FROM urls WHERE status != 'queued' AND fetched_at IS NOT NULL")}
            waiting = db.execute("SELECT COUNT(*) FROM urls WHERE status = 'fetched'").fetchone()[0]
        assert len(finished) >= 15
        idx = Index(index, embedder=HashEmbedder())
        rep = idx.crawl([site.base + "/"], **OPTS)
        refetched = finished & {p for p in site.log[killed_at:]}
        assert not refetched, f"finished pages fetched again after the resume: {refetched}"
        posts = {f"{site.base}/posts/{s}/" for s in site.posts}
        assert set(idx.store.sources()) == posts | {f"{site.base}/posts/"}
        print(f"\nkilled after {killed_at} requests ({len(finished)} pages finished, {waiting} "
              f"fetched but not yet embedded); the resume fetched {rep.fetched} more")


def test_seed_pipeline_crawl_agent_post_then_ask_multiquery(tmp_path):
    if not POSTS.is_dir():
        pytest.skip(f"shared data folder {POSTS} is absent (set ASPECTRAG_SHARED_DATA)")
    from aspectrag.cli.main import app

    runner = CliRunner()
    index = str(tmp_path / "idx")
    with Site(POSTS) as site:
        url = f"{site.base}/posts/{AGENT}/"
        res = runner.invoke(app, ["crawl", url, "--index", index, "--max-depth", "0",
                                  "--delay", "0", "--allow-host", "127.0.0.1"])
        assert res.exit_code == 0, res.output
        assert "1 pages indexed" in res.output
    res = runner.invoke(app, ["ask", "What are the approaches to Task Decomposition?", "-r",
                              "multiquery", "--show-queries", "--index", index, "--no-stream"])
    assert res.exit_code == 0, res.output
    assert "query [" in res.output  # --show-queries
    assert f"[1] {url}" in res.output
    text = " ".join(res.output.split())
    for approach in ("simple prompting", "task-specific instructions", "human inputs"):
        assert approach in text, text

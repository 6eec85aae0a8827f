"""``POST /v1/documents {"crawl": [...]}``: the service's ingest endpoint runs the crawler as a
job (the same crawler as ``aspectrag crawl``), behind the same SSRF guard as URL ingest."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from tests.conftest import shared_data
from tests.fakes import HashEmbedder
from tests.ingest.crawl_site import AGENT, Site

from aspectrag.index import Index
from aspectrag.service import create_app

from .conftest import wait_job

POSTS = shared_data() / "lilianweng-posts"


def test_crawl_job_indexes_the_site_and_loopback_needs_the_allow_list(tmp_path):
    if not POSTS.is_dir():
        pytest.skip(f"shared data folder {POSTS} is absent (set ASPECTRAG_SHARED_DATA)")
    idx = Index(tmp_path / "idx", embedder=HashEmbedder())
    with Site(POSTS, slugs=[AGENT]) as site:
        with TestClient(create_app(idx)) as c:  # no allow-list: loopback is refused at once
            r = c.post("/v1/documents", json={"crawl": [site.base + "/"]})
            assert r.status_code == 400 and "refused" in r.json()["detail"]
        with TestClient(create_app(idx, url_allow=["127.0.0.1"])) as c:
            r = c.post("/v1/documents", json={"crawl": [site.base + "/"], "max_pages": 40})
            assert r.status_code == 202
            job = wait_job(c, r.json()["job"], timeout=120)
            assert job["status"] == "succeeded", job
            assert job["result"]["indexed"] == [f"{site.base}/posts/{AGENT}/"]
            assert job["result"]["skipped"]  # the site's URL variants and traps, with reasons
            hits = c.post("/v1/search", json={"query": "task decomposition",
                                              "retriever": "bm25"}).json()["hits"]
            assert hits[0]["source"] == f"{site.base}/posts/{AGENT}/"

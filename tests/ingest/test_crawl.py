"""The crawler on a small local site (3 posts of ../shared/data/lilianweng-posts plus traps),
with the hashing test embedder so that these tests stay fast. The full 58-page site with the
real embedder is in test_crawl_site.py (slow)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import shared_data
from tests.fakes import HashEmbedder
from tests.ingest.crawl_site import AGENT, Site

from aspectrag import Index
from aspectrag.ingest.crawl.dedup import Deduplicator, content_hash, minhash
from aspectrag.ingest.crawl.page import parse_page, robots_header
from aspectrag.ingest.crawl.urls import Scope, normalize, trap_reason, url_key

POSTS = shared_data() / "lilianweng-posts"
SLUGS = [AGENT, "2018-06-24-attention", "2017-08-20-gan"]
LOCAL = ("127.0.0.1",)
FAST = dict(delay=0, concurrency=3, timeout=1.0, max_depth=3, allow_hosts=LOCAL)


def _need_posts() -> None:
    if not POSTS.is_dir():
        pytest.skip(f"shared data folder {POSTS} is absent (set ASPECTRAG_SHARED_DATA)")


@pytest.fixture()
def site():  # type: ignore[no-untyped-def]
    _need_posts()
    with Site(POSTS, slugs=SLUGS) as s:
        yield s


def _index(tmp_path: Path) -> Index:
    return Index(tmp_path / "idx", embedder=HashEmbedder())


def _rel(site: Site, url: str | None) -> str | None:
    return url.replace(site.base, "") if url else url


def test_url_normalisation():
    assert normalize("HTTP://Example.COM:80/a/b/index.html?utm_source=x&b=2&a=1&fbclid=3"
                     "&gclid=4&sessionid=5&jsessionid=6#frag") == "http://example.com/a/b/?a=1&b=2"
    assert normalize("https://x.org:443/a;jsessionid=99?PHPSESSID=1") == "https://x.org/a"
    assert url_key("http://h/p/") == url_key("http://h/p") == url_key("http://h/p/index.html")
    assert url_key("http://h/p/?utm_medium=mail") == url_key("http://h/p")
    assert url_key("http://h/p?page=2") != url_key("http://h/p")
    with pytest.raises(ValueError):
        normalize("ftp://h/x")
    assert "longer than 50" in trap_reason("http://h/" + "a" * 60, max_length=50,
                                           max_query_params=5)
    assert "3 query parameters" in trap_reason("http://h/?a=1&b=2&c=3", max_length=500,
                                               max_query_params=2)
    scope = Scope("prefix", ["http://h/docs/intro.html"])
    assert "http://h/docs/x" in scope and "http://h/blog/x" not in scope
    assert "http://other/docs/x" not in Scope("host", ["http://h/"])
    assert "http://h/blog/1" in Scope(r"/blog/\d+$", ["http://h/"])


def test_robots_directives_and_links():
    body = (b"<html><head><meta name='robots' content='noindex'><link rel='canonical' "
            b"href='/c/'><base href='http://h/base/'></head><body><article><p>" + b"word " * 80
            + b"</p><a href='rel'>a</a><a rel='nofollow' href='/no'>b</a><a href='#x'>c</a>"
            b"<a href='mailto:x@y'>d</a></article></body></html>")
    page = parse_page(body, url="http://h/p", source="http://h/p", media_type="text/html",
                      charset=None)
    assert page.noindex and not page.nofollow
    assert page.canonical == "http://h/c/"
    assert page.links == ["http://h/base/rel", "http://h/base/"]
    page = parse_page(body, url="http://h/p", source="http://h/p", media_type="text/html",
                      charset=None, x_robots="nofollow")
    assert page.nofollow and page.links == []
    assert robots_header("otherbot: noindex, nofollow", "aspectrag") == set()
    assert robots_header("aspectrag: noindex", "aspectrag") == {"noindex"}
    assert robots_header("none", "aspectrag") == {"none"}


def test_dedup_exact_and_near():
    text = " ".join(f"word{i % 97} filler{i % 13}" for i in range(2000))
    d = Deduplicator(threshold=0.9)
    d.add("a", content_hash(text), minhash(text))
    assert d.duplicate_of("b", content_hash(text.upper()), minhash(text.upper()))[0] == "exact"
    near = text + " one extra sentence at the end of the page"
    kind, other = d.duplicate_of("c", content_hash(near), minhash(near))
    assert kind.startswith("near:") and other == "a" and float(kind[5:]) >= 0.9
    unrelated = " ".join(f"other{i}" for i in range(500))
    assert d.duplicate_of("d", content_hash(unrelated), minhash(unrelated)) is None
    assert d.duplicate_of("a", content_hash(text), minhash(text)) is None  # itself
    raw = Deduplicator.to_bytes(minhash(text))
    assert Deduplicator.from_bytes(raw).jaccard(minhash(text)) == 1.0
    with pytest.raises(ValueError):
        Deduplicator(threshold=1.5)


def test_small_site_each_post_once_traps_skipped_with_reasons(site, tmp_path):
    idx = _index(tmp_path)
    rep = idx.crawl([site.base + "/"], max_pages=60, **FAST)
    posts = {f"{site.base}/posts/{s}/" for s in SLUGS}
    assert set(idx.store.sources()) == posts
    assert sorted(rep.indexed) == sorted(posts)
    skipped = {_rel(site, s.url): (s.reason, _rel(site, s.duplicate_of)) for s in rep.skipped}
    for slug in SLUGS:  # every URL variant of every post: skipped as the same page
        for variant in (f"/posts/{slug}/?utm_source=newsletter&utm_medium=email",
                        f"/posts/{slug}/index.html", f"/posts/{slug}",
                        f"/posts/{slug}/?fbclid=IwAR0xyz&sessionid=8c1f"):
            reason, dup = skipped[variant]
            assert "same page as another URL after normalisation" in reason
            assert dup == f"/posts/{slug}/"
    for slug in SLUGS:  # the print versions: near-duplicates of their post
        reason, dup = skipped[f"/print/{slug}/"]
        assert reason.startswith("near-duplicate (estimated Jaccard") and dup == f"/posts/{slug}/"
    assert skipped["/"][0].startswith("noindex")
    assert skipped["/private/secret-plans/"][0] == "disallowed by robots.txt"
    assert skipped["/old/agent"] == ("redirects to a page already crawled", f"/posts/{AGENT}/")
    assert "redirect loop: " in skipped["/loop/a"][0]
    assert skipped["/calendar/2024/01/"][0].startswith("quality: too little text")
    assert "deeper than --max-depth 3" in skipped["/calendar/2024/04/"][0]
    failed = {_rel(site, u): r for u, r in rep.failed}
    assert failed["/missing-page/"] == "HTTP 404 Not Found" == failed["/gone.html"]
    assert failed["/slow/"] == "timed out after 1 s"
    assert not any("private" in p for p in site.log)  # robots.txt honoured
    for slug in SLUGS:  # each post fetched once (its variants never)
        assert sum(p.split("?")[0] in (f"/posts/{slug}/", f"/posts/{slug}",
                                        f"/posts/{slug}/index.html") for p in site.log) == 1
    assert len(rep.duplicates) >= 3 * 4 + 3
    assert set(rep.stages) == {"fetch", "extract", "dedup", "embed"} and rep.chunks > 0
    assert rep.fetched <= 60 and not rep.budget_reached


def test_redirect_chain_kept_and_final_url_is_the_source(site, tmp_path):
    idx = _index(tmp_path)
    rep = idx.crawl([site.base + "/old/agent"], max_pages=5, **{**FAST, "max_depth": 0})
    agent = f"{site.base}/posts/{AGENT}/"
    assert rep.indexed == [agent]
    doc = idx.store.get_document(agent)
    assert doc.metadata["redirects"] == [f"{site.base}/old/agent", f"{site.base}/moved/1",
                                         f"{site.base}/moved/2"]
    assert doc.metadata["etag"] and doc.metadata["last_modified"] and doc.metadata["fetched_at"]
    assert doc.title == "LLM Powered Autonomous Agents"
    rep = idx.crawl([site.base + "/loop/a"], max_pages=5, **{**FAST, "max_depth": 0,
                                                           "max_redirects": 5})
    assert "redirect loop" in rep.skipped[0].reason


def test_ssrf_guard_without_allow_list_refuses_loopback(site, tmp_path):
    rep = _index(tmp_path).crawl([site.base + "/"], max_pages=5, delay=0)
    assert rep.indexed == [] and site.log == []
    assert "loopback" in rep.skipped[0].reason and "--allow-host" in rep.skipped[0].reason
    rep = _index(tmp_path / "b").crawl(["file:///etc/passwd"], max_pages=5, delay=0)
    assert "only http(s)" in rep.skipped[0].reason


def test_budget_then_resume_refetches_nothing(site, tmp_path):
    idx = _index(tmp_path)
    rep = idx.crawl([site.base + "/"], max_pages=6, **FAST)
    assert rep.fetched == 6 and rep.budget_reached and rep.queued > 0
    first = list(site.log)
    page_requests = [p for p in first if p != "/robots.txt"]
    assert len(page_requests) == 6
    rep2 = idx.crawl([site.base + "/"], max_pages=60, **FAST)
    again = [p for p in site.log[len(first):] if p != "/robots.txt"]
    assert not set(again) & set(page_requests), "a finished page was fetched again"
    assert set(idx.store.sources()) == {f"{site.base}/posts/{s}/" for s in SLUGS}
    assert rep2.fetched + rep.fetched <= 60


def test_recrawl_conditional_get_reembeds_only_changed_pages(site, tmp_path):
    idx = _index(tmp_path)
    idx.crawl([site.base + "/"], max_pages=60, **FAST)
    n = len(site.log)
    rep = idx.crawl([site.base + "/"], max_pages=60, recrawl=True, **FAST)
    assert rep.chunks == 0 and rep.indexed == [] and rep.unchanged == 3
    assert "/print/2017-08-20-gan/" not in site.log[n:]  # skipped pages are not re-checked
    slug = SLUGS[1]
    site.changed[slug] = site.post_body(slug).replace(
        b'<div class="post-content">', b'<div class="post-content"><p>Updated: a new section '
        b'about sparse attention patterns was added to this post.</p>', 1)
    rep = idx.crawl([site.base + "/"], max_pages=60, recrawl=True, **FAST)
    assert rep.indexed == [f"{site.base}/posts/{slug}/"] and rep.unchanged == 2 and rep.chunks > 0
    hits = idx.search("new section about sparse attention patterns", k=3, retriever="bm25")
    assert hits[0].chunk.source == f"{site.base}/posts/{slug}/"


def test_sitemap_and_crawl_delay(tmp_path):
    _need_posts()
    with Site(POSTS, slugs=SLUGS, robots_extra="Crawl-delay: 0.3\n") as site:
        rep = _index(tmp_path).crawl([site.base + "/sitemap-seed"], max_pages=10, sitemap=True,
                                     **{**FAST, "max_depth": 0})
        assert sorted(rep.indexed) == sorted(f"{site.base}/posts/{s}/" for s in SLUGS)
        pages = [t for p, t in zip(site.log, site.times, strict=True)
                 if p.startswith("/posts/")]
        gaps = [b - a for a, b in zip(pages, pages[1:], strict=False)]
        assert len(pages) == 3 and min(gaps) >= 0.28, gaps


def test_quality_filter_boilerplate_ratio(site, tmp_path):
    rep = _index(tmp_path).crawl([f"{site.base}/posts/{AGENT}/"], max_pages=3,
                                 min_content_ratio=0.99, **{**FAST, "max_depth": 0})
    reasons = {s.url: s.reason for s in rep.skipped}
    assert rep.indexed == []
    assert reasons[f"{site.base}/posts/{AGENT}/"].startswith("quality: mostly boilerplate")


def test_duplicates_of_documents_the_index_already_holds(site, tmp_path):
    idx = _index(tmp_path)
    idx.ingest([POSTS / f"{AGENT}.html"])  # the same post, ingested from a file earlier
    rep = idx.crawl([site.base + "/"], max_pages=60, **FAST)
    agent = {s.url: s for s in rep.skipped}[f"{site.base}/posts/{AGENT}/"]
    assert agent.reason.startswith("near-duplicate") and agent.duplicate_of == str(
        (POSTS / f"{AGENT}.html").resolve())
    assert sorted(rep.indexed) == sorted(f"{site.base}/posts/{s}/" for s in SLUGS[1:])


def test_nothing_to_do_note_and_recrawl_restores_a_removed_page(site, tmp_path):
    idx = _index(tmp_path)
    opts = {**FAST, "max_depth": 0}
    url = f"{site.base}/posts/{AGENT}/"
    assert idx.crawl([url], max_pages=3, **opts).indexed == [url]
    rep = idx.crawl([url], max_pages=3, **opts)
    assert rep.fetched == 0 and "use --recrawl" in rep.notes[0]
    assert idx.remove(url) == 1
    rep = idx.crawl([url], max_pages=3, recrawl=True, **opts)
    assert rep.indexed == [url] and idx.store.sources() == [url]

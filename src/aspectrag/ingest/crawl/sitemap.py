"""Sitemaps (sitemaps.org protocol 0.9): ``<urlset>`` page lists and ``<sitemapindex>`` files,
read with lxml; found in robots.txt ``Sitemap:`` lines or at ``/sitemap.xml``."""

from __future__ import annotations

import gzip

from lxml import etree

from aspectrag.ingest.crawl.fetch import Fetcher


def sitemap_urls(fetcher: Fetcher, sitemaps: list[str], *, max_files: int = 20,
                 max_urls: int = 50_000) -> list[str]:
    """Page URLs listed by ``sitemaps`` (sitemap indexes followed, at most ``max_files`` files
    read and ``max_urls`` URLs returned). Unreachable or malformed sitemaps are ignored."""
    todo, seen, out = list(sitemaps), set(), []
    while todo and len(seen) < max_files and len(out) < max_urls:
        url = todo.pop(0)
        if url in seen:
            continue
        seen.add(url)
        res = fetcher.get(url)
        if res.error or res.status != 200 or not res.body:
            continue
        body = res.body
        if body[:2] == b"\x1f\x8b":
            try:
                body = gzip.decompress(body)
            except OSError:
                continue
        try:
            root = etree.fromstring(body, parser=etree.XMLParser(resolve_entities=False,
                                                                 no_network=True))
        except etree.XMLSyntaxError:
            continue
        locs = [(el.text or "").strip() for el in root.iter("{*}loc")]
        if etree.QName(root).localname == "sitemapindex":
            todo += [u for u in locs if u]
        else:
            out += [u for u in locs if u]
    return out[:max_urls]

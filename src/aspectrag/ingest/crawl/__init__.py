"""A polite web crawler feeding the index: robots.txt, per-host pacing, URL normalisation,
redirect and trap guards, quality filter, exact and near-duplicate detection, resumable state.

Entry point: :func:`crawl` (also ``Index.crawl`` and ``aspectrag crawl``).
"""

from aspectrag.ingest.crawl.crawler import USER_AGENT, CrawlOptions, crawl
from aspectrag.ingest.crawl.report import CrawlReport, SkippedPage

__all__ = ["USER_AGENT", "CrawlOptions", "CrawlReport", "SkippedPage", "crawl"]

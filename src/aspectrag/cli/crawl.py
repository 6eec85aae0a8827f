"""``aspectrag crawl``: crawl a web site into the index (see :mod:`aspectrag.ingest.crawl`)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from aspectrag.cli.common import DEFAULT_INDEX, IndexOpt, JsonOpt, console, fail, open_index
from aspectrag.errors import AspectragError


def crawl(
    urls: Annotated[list[str], typer.Argument(help="Seed URLs (http/https).")],
    index: IndexOpt = DEFAULT_INDEX,
    max_pages: Annotated[int, typer.Option(help="Page requests in this crawl (resumes "
                                                "included).")] = 100,
    max_depth: Annotated[int, typer.Option(help="Link hops from a seed.")] = 5,
    scope: Annotated[str, typer.Option(help="host (same host as a seed) | prefix (below a seed's "
                                            "folder) | a regular expression.")] = "host",
    delay: Annotated[float, typer.Option(help="Seconds between requests to one host (a larger "
                                              "robots.txt crawl-delay wins).")] = 1.0,
    concurrency: Annotated[int, typer.Option(help="Requests in flight (per host and in all).")] = 2,
    sitemap: Annotated[bool, typer.Option("--sitemap", help="Also seed from the sites' "
                                                            "sitemaps.")] = False,
    recrawl: Annotated[bool, typer.Option("--recrawl", help="Re-check indexed pages with a "
                                          "conditional GET; re-embed only changed ones.")] = False,
    allow_host: Annotated[list[str] | None, typer.Option(
        "--allow-host", help="Host or CIDR the SSRF guard lets through although it is not "
                             "public (e.g. 127.0.0.1 for a local site). Repeatable.")] = None,
    near_duplicate_threshold: Annotated[float, typer.Option(
        help="MinHash Jaccard similarity from which a page is a near-duplicate.")] = 0.9,
    timeout: Annotated[float, typer.Option(help="Seconds per request, body included.")] = 10.0,
    min_text_chars: Annotated[int, typer.Option(help="Pages with less main text are "
                                                     "skipped.")] = 200,
    max_pages_per_host: Annotated[int | None, typer.Option(help="Page budget per host.")] = None,
    verbose_skips: Annotated[bool, typer.Option("--show-skipped", help="List every skipped "
                                                "page with its reason.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Crawl web pages into the index: polite (robots.txt, crawl-delay), de-duplicated,
    resumable (run it again after an interruption to continue)."""
    idx = open_index(index)
    try:
        rep = idx.crawl(urls, max_pages=max_pages, max_depth=max_depth, scope=scope, delay=delay,
                        concurrency=concurrency, sitemap=sitemap, recrawl=recrawl,
                        allow_hosts=tuple(allow_host or ()),
                        near_duplicate_threshold=near_duplicate_threshold, timeout=timeout,
                        min_text_chars=min_text_chars, max_pages_per_host=max_pages_per_host,
                        progress=sys.stderr.isatty() and not as_json)
    except (AspectragError, ValueError) as e:
        fail(str(e))
    if as_json:
        print(json.dumps(rep.to_dict(), ensure_ascii=False, indent=1))
        return
    for note in rep.notes:
        console.print(note, highlight=False)
    for url, reason in rep.failed:
        console.print(f"[red]failed[/] {url}: {reason}", highlight=False)
    if verbose_skips:
        for s in rep.skipped:
            dup = f" (duplicate of {s.duplicate_of})" if s.duplicate_of else ""
            console.print(f"[yellow]skipped[/] {s.url}: {s.reason}{dup}", highlight=False)
    reasons = ", ".join(f"{n} {r}" for r, n in sorted(rep.reasons().items(), key=lambda kv: -kv[1]))
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in rep.stages.items())
    console.print(
        f"{len(rep.indexed)} pages indexed, {rep.unchanged} unchanged, {len(rep.skipped)} skipped"
        f" ({len(rep.duplicates)} duplicates), {len(rep.failed)} failed; {rep.fetched} fetched in "
        f"{rep.seconds:.1f} s ({rep.pages_per_second:.1f} pages/s; {stages}); {rep.chunks} chunks"
        + (f"; stopped by --max-pages, {rep.queued} URLs left (run again to continue)"
           if rep.budget_reached else "")
        + (f"\nskipped: {reasons}" if reasons else ""), highlight=False)
    if rep.failed and not rep.indexed and not rep.unchanged:
        raise typer.Exit(1)

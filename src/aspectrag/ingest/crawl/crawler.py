"""The crawl loop: frontier -> politeness -> fetch (worker threads) -> extract -> quality ->
de-duplicate -> ingest in batches, every outcome committed to the crawl state."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, Protocol
from urllib.parse import urlsplit

from aspectrag.errors import BlockedURLError
from aspectrag.ingest.crawl.dedup import Deduplicator, content_hash, minhash
from aspectrag.ingest.crawl.fetch import Fetcher, FetchResult
from aspectrag.ingest.crawl.page import parse_page
from aspectrag.ingest.crawl.politeness import HostPacer, Robots
from aspectrag.ingest.crawl.progress import CrawlProgress
from aspectrag.ingest.crawl.report import CrawlReport, SkippedPage
from aspectrag.ingest.crawl.sitemap import sitemap_urls
from aspectrag.ingest.crawl.state import CrawlState, UrlRow
from aspectrag.ingest.crawl.urls import Scope, host_of, normalize, trap_reason, url_key
from aspectrag.types import Document

log = logging.getLogger("aspectrag.crawl")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("aspectrag")
    except PackageNotFoundError:
        return "0"


#: The crawler's ``User-Agent``; robots.txt groups for ``aspectrag`` apply to it.
USER_AGENT = f"aspectrag/{_version()} (+https://github.com/aspectrag/aspectrag)"
STATE_FILE = "crawl.sqlite"
_ALREADY = "redirects to a page already crawled"


class CrawlTarget(Protocol):
    """What the crawler writes into: an ``aspectrag.Index`` (its folder holds the crawl state)."""

    path: Path

    @property
    def store(self) -> Any: ...

    def ingest(self, sources: Sequence[str], *, documents: Sequence[Document] = (),
               progress: bool = False) -> Any: ...


@dataclass(frozen=True, slots=True)
class CrawlOptions:
    """Crawl settings (see :func:`crawl`)."""

    max_pages: int = 100
    max_depth: int = 5
    scope: str = "host"
    delay: float = 1.0
    concurrency: int = 2
    sitemap: bool = False
    recrawl: bool = False
    allow_hosts: tuple[str, ...] = ()
    near_duplicate_threshold: float = 0.9
    timeout: float = 10.0
    max_redirects: int = 5
    max_bytes: int = 10 * 1024 * 1024
    min_text_chars: int = 200
    min_content_ratio: float = 0.05
    max_url_length: int = 512
    max_query_params: int = 5
    max_pages_per_host: int | None = None
    user_agent: str = USER_AGENT
    batch_pages: int = 16
    dedup_index: bool = True
    progress: bool = False


class Crawler:
    """One crawl run over an index (use :func:`crawl`)."""

    def __init__(self, target: CrawlTarget, seeds: Sequence[str], opts: CrawlOptions) -> None:
        if opts.max_pages < 1 or opts.max_depth < 0 or opts.concurrency < 1 or opts.delay < 0:
            raise ValueError("max_pages and concurrency must be >= 1, max_depth and delay >= 0")
        self.target, self.opts = target, opts
        self.seeds = list(seeds)
        self.report = CrawlReport()
        self.state = CrawlState(Path(target.path) / STATE_FILE)
        self.dedup = Deduplicator(opts.near_duplicate_threshold)
        self.fetcher = Fetcher(user_agent=opts.user_agent, timeout=opts.timeout,
                               max_redirects=opts.max_redirects, max_bytes=opts.max_bytes,
                               allow_hosts=opts.allow_hosts)
        self.robots = Robots(self.fetcher, opts.user_agent)
        self.pacer = HostPacer(opts.delay, opts.concurrency)
        self.frontier: deque[UrlRow] = deque()
        self.pending: list[tuple[str, Document]] = []
        self.host_pages: dict[str, int] = {}
        self.variants: set[str] = set()
        self.finished: set[str] = set()  # keys holding a document (read by redirect hop checks)
        self.in_flight: set[str] = set()  # keys being fetched now
        self.scope = Scope(opts.scope, [s for s in self.seeds if _http(s)] or ["http://x/"])

    # -- outcomes ---------------------------------------------------------------------------
    def _skip(self, key: str | None, url: str, reason: str, dup_of: str | None = None,
              fetched: bool = True, **kw: Any) -> None:
        if key is not None:
            self.state.finish(key, "skipped", reason=reason, dup_of=dup_of, fetched=fetched, **kw)
        self.report.skipped.append(SkippedPage(url, reason, dup_of))

    def _fail(self, key: str, url: str, reason: str) -> None:
        self.state.finish(key, "failed", reason=reason)
        self.report.failed.append((url, reason))

    # -- set-up -----------------------------------------------------------------------------
    def _start(self) -> None:
        st = self.state
        queued = st.queued()
        self.pending = st.pending_documents()
        if self.opts.recrawl:
            st.new_generation()
            st.requeue_for_recrawl()
        elif not queued and not self.pending:
            st.new_generation()
        for seed in self.seeds:
            if not _http(seed):
                self._skip(None, seed, f"refused: only http(s) URLs are crawled, not "
                                       f"{urlsplit(seed).scheme or 'a path'}")
                continue
            st.add(url_key(seed), normalize(seed), 0)
        if self.opts.sitemap:
            for seed in self.seeds:
                if not _http(seed):
                    continue
                origin = f"{urlsplit(seed).scheme}://{urlsplit(seed).netloc}"
                maps = self.robots.sitemaps(seed) or [origin + "/sitemap.xml"]
                for url in sitemap_urls(self.fetcher, maps):
                    if _http(url) and normalize(url) in self.scope:
                        st.add(url_key(url), normalize(url), 0)
        self._load_signatures()
        self.frontier = deque(st.queued())
        if not self.frontier and not self.pending and not self.opts.recrawl:
            self.report.notes.append("nothing to do: these seeds were crawled before (use "
                                     "--recrawl to check the pages for changes)")
        self.finished = st.finished_keys()

    def _load_signatures(self) -> None:
        """Signatures of what the index holds: pages of earlier crawls (kept in the state) and
        documents ingested otherwise (files, URLs: computed once from their chunks and kept).
        Signatures of documents no longer in the index are dropped."""
        st, store = self.state, self.target.store
        in_index = set(store.sources())
        crawled = st.crawled_sources()
        rows = st.signatures()
        gone = [src for src, _, _ in rows if src not in in_index and src not in crawled]
        st.drop_signatures(gone)
        known = {src for src, _, _ in rows}
        missing = in_index - known - crawled
        if missing and self.opts.dedup_index:
            texts: dict[str, list[str]] = {}
            for chunk in store.iter_chunks():
                if chunk.source in missing:
                    texts.setdefault(chunk.source, []).append(chunk.text)
            for src, parts in texts.items():
                text = "\n".join(parts)
                sig = minhash(text)
                st.put_signature(src, "index:" + content_hash(text), Deduplicator.to_bytes(sig))
        for src, chash, raw in st.signatures():
            self.dedup.add(src, chash, Deduplicator.from_bytes(raw))

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> CrawlReport:
        t0 = time.perf_counter()
        try:
            self._start()
            self._flush()  # pages fetched by an interrupted crawl, not yet in the index
            with CrawlProgress(self.opts.progress) as bar, ThreadPoolExecutor(
                    self.opts.concurrency, thread_name_prefix="crawl") as pool:
                self._loop(pool, bar, t0)
            self._flush()
        finally:
            self.report.queued = self.state.counts().get("queued", 0)
            self.fetcher.close()
            self.state.close()
            self.report.seconds = time.perf_counter() - t0
        return self.report

    def _budget_left(self) -> int:
        return self.opts.max_pages - self.state.fetched_this_generation()

    def _loop(self, pool: ThreadPoolExecutor, bar: CrawlProgress, t0: float) -> None:
        inflight: dict[Future[FetchResult], tuple[UrlRow, str]] = {}
        submitted = 0
        budget = self._budget_left()
        while self.frontier or inflight:
            now = time.monotonic()
            stop = submitted >= budget
            if stop and self.frontier and not inflight:
                self.report.budget_reached = True
                break
            if not stop:
                for row in list(self.frontier):
                    if len(inflight) >= self.opts.concurrency or submitted >= budget:
                        break
                    host = host_of(row.url)
                    if not self.pacer.ready(host, now):
                        continue
                    self.frontier.remove(row)
                    if not self._admit(row, host):
                        continue
                    self.pacer.start(host, now, self.robots.crawl_delay(row.url))
                    # conditional GET only when the index still holds the page
                    held = row.source is not None and self.target.store.fingerprint(
                        row.source) == row.content_hash
                    fut = pool.submit(self.fetcher.get, row.url,
                                      etag=row.etag if held else None,
                                      last_modified=row.last_modified if held else None,
                                      check_hop=self._hop)
                    inflight[fut] = (row, host)
                    self.in_flight.add(row.key)
                    submitted += 1
            if inflight:
                hosts = {host_of(r.url) for r in self.frontier}
                timeout = self.pacer.wait_hint(hosts, now) if self.frontier else None
                done, _ = wait(list(inflight), timeout=timeout, return_when=FIRST_COMPLETED)
                for fut in done:
                    row, host = inflight.pop(fut)
                    self.pacer.done(host)
                    try:
                        self._handle(row, fut.result())
                    except Exception as exc:  # a parser bug must not end the whole crawl
                        log.exception("crawling %s failed", row.url)
                        self._fail(row.key, row.url, f"{type(exc).__name__}: {exc}")
                    self.in_flight.discard(row.key)
                    bar.update(self.report, len(self.frontier) + len(inflight),
                               time.perf_counter() - t0)
                if len(self.pending) >= self.opts.batch_pages:
                    self._flush()
            elif self.frontier:
                time.sleep(self.pacer.wait_hint({host_of(r.url) for r in self.frontier}, now))
        if self.frontier and submitted >= budget:
            self.report.budget_reached = True

    def _admit(self, row: UrlRow, host: str) -> bool:
        """Checks before fetching: still queued, robots.txt, per-host budget."""
        st = self.state.status(row.key)
        if st is None or st[0] != "queued":
            return False
        if not self.robots.allowed(row.url):
            self._skip(row.key, row.url, "disallowed by robots.txt", fetched=False)
            return False
        per_host = self.opts.max_pages_per_host
        if per_host is not None:
            if host not in self.host_pages:
                origin = f"{urlsplit(row.url).scheme}://{host}/"
                self.host_pages[host] = self.state.pages_of_host(origin)
            if self.host_pages[host] >= per_host:
                self._skip(row.key, row.url, f"per-host page budget reached ({per_host} pages "
                                             f"from {host})", fetched=False)
                return False
            self.host_pages[host] += 1
        return True

    def _hop(self, url: str) -> None:
        """Redirect hop check (the SSRF guard runs separately): scope and robots.txt."""
        norm = normalize(url)
        if norm not in self.scope:
            raise BlockedURLError(url, "redirected out of the crawl scope")
        key = url_key(norm)
        if key in self.finished or key in self.in_flight:
            raise BlockedURLError(norm, _ALREADY)
        self.robots.check(url)

    # -- one fetched page -------------------------------------------------------------------
    def _handle(self, row: UrlRow, res: FetchResult) -> None:
        rep, opts = self.report, self.opts
        rep.fetched += 1
        rep.stages["fetch"] += res.seconds
        if res.kind in ("blocked", "redirect-loop", "redirects"):
            reason = res.error or ""
            if reason == _ALREADY:
                return self._skip(row.key, row.url, reason, dup_of=res.refused_url)
            if res.kind == "redirects":
                reason = f"redirect chain longer than {opts.max_redirects} hops ({reason})"
            elif res.kind == "blocked" and res.refused_url != row.url:
                reason = f"{reason} (redirect hop {res.refused_url})"
            return self._skip(row.key, row.url, reason)
        if res.error:
            return self._fail(row.key, row.url, res.error)
        if res.status == 304:
            self.state.finish(row.key, "unchanged")
            self.finished.add(row.key)
            rep.unchanged += 1
            return None
        if res.status != 200:
            return self._fail(row.key, row.url, f"HTTP {res.status}")
        final = normalize(res.final_url)
        if len(res.chain) > 1:
            final_key = url_key(final)
            if final_key != row.key:
                st = self.state.status(final_key)
                if st is not None and st[0] not in ("queued", "skipped"):
                    return self._skip(row.key, row.url, _ALREADY, dup_of=st[2])
                self._alias(final_key, final, row, "redirect")
        te = time.perf_counter()
        ctype = res.headers.get("content-type", "")
        mime = ctype.split(";")[0].strip().lower()
        charset = _charset(ctype)
        page = parse_page(res.body, url=res.final_url, source=final, media_type=mime,
                          charset=charset, x_robots=res.headers.get("x-robots-tag", ""),
                          agent="aspectrag")
        self._enqueue(row, page.links)
        rep.stages["extract"] += time.perf_counter() - te
        validators = {"etag": res.headers.get("etag"),
                      "last_modified": res.headers.get("last-modified")}
        if page.noindex:
            return self._skip(row.key, row.url, "noindex (robots meta tag / X-Robots-Tag)")
        if page.doc is None:
            return self._skip(row.key, row.url, f"quality: {page.error}")
        source = final
        if page.canonical and _http(page.canonical) and normalize(page.canonical) in self.scope:
            canonical = normalize(page.canonical)
            ckey = url_key(canonical)
            owner = self.state.owner(canonical)
            if owner is not None and owner != row.key:
                return self._skip(row.key, row.url, "its canonical page was already crawled",
                                  dup_of=canonical)
            if ckey not in (row.key, url_key(final)):
                st = self.state.status(ckey)
                if st is not None and st[0] in ("fetched", "indexed", "unchanged"):
                    return self._skip(row.key, row.url, "its canonical page was already crawled",
                                      dup_of=st[2])
                self._alias(ckey, canonical, row, "canonical link")
            source = canonical
        doc = page.doc
        n = len(doc.text)
        if n < opts.min_text_chars:
            return self._skip(row.key, row.url, f"quality: too little text ({n} characters, "
                                                f"minimum {opts.min_text_chars})")
        ratio = n / max(page.page_chars, n, 1)
        if ratio < opts.min_content_ratio:
            return self._skip(row.key, row.url, f"quality: mostly boilerplate (main content "
                                                f"{ratio:.0%} of the page text, minimum "
                                                f"{opts.min_content_ratio:.0%})")
        td = time.perf_counter()
        chash = content_hash(doc.text)
        if (row.content_hash == chash and row.source == source
                and self.target.store.fingerprint(source) == chash):  # recrawl, unchanged
            self.state.finish(row.key, "unchanged", **validators)
            self.finished.add(row.key)
            rep.unchanged += 1
            rep.stages["dedup"] += time.perf_counter() - td
            return None
        sig = minhash(doc.text)
        dup = self.dedup.duplicate_of(source, chash, sig)
        if dup is None:
            self.dedup.add(source, chash, sig)
            self.state.put_signature(source, chash, Deduplicator.to_bytes(sig))
        rep.stages["dedup"] += time.perf_counter() - td
        if dup is not None:
            kind, other = dup
            reason = ("exact duplicate (same normalised text)" if kind == "exact" else
                      f"near-duplicate (estimated Jaccard {kind.split(':')[1]}, threshold "
                      f"{opts.near_duplicate_threshold:g})")
            return self._skip(row.key, row.url, f"{reason} of {other}", dup_of=other)
        doc.source = doc.doc_id = source
        if doc.title == final:
            doc.title = PurePosixPath(urlsplit(final).path).name or urlsplit(final).netloc
        doc.fingerprint = chash
        doc.metadata.update({
            "url": res.final_url, "fetched_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "content_type": mime, "crawl_depth": row.depth, "redirects": res.chain[:-1],
            **{k: v for k, v in validators.items() if v}})
        self.state.finish(row.key, "fetched", source=source, content_hash=chash, document=doc,
                          **validators)
        self.finished.update({row.key, url_key(source)})
        self.pending.append((row.key, doc))
        return None

    def _alias(self, key: str, url: str, row: UrlRow, how: str) -> None:
        """Mark ``key`` as the same page as ``row`` (reached by a redirect / canonical link) so
        it is never fetched on its own."""
        self.state.add(key, url, row.depth, status="skipped")
        self.state.finish(key, "skipped", reason=f"same page as {row.url} ({how})",
                          dup_of=row.url, fetched=False)

    def _enqueue(self, row: UrlRow, links: list[str]) -> None:
        opts = self.opts
        for link in links:
            try:
                norm, key = normalize(link), url_key(link)
            except ValueError:
                continue
            if norm not in self.scope:
                continue
            st = self.state.status(key)
            if st is not None:
                if link != st[1] and link not in self.variants:
                    self.variants.add(link)
                    self.report.skipped.append(SkippedPage(
                        link, "same page as another URL after normalisation (tracking or "
                              "session parameters, trailing slash, index.html, case, port)",
                        st[1]))
                continue
            depth = row.depth + 1
            reason = trap_reason(link, max_length=opts.max_url_length,
                                 max_query_params=opts.max_query_params)
            if depth > opts.max_depth:
                reason = f"deeper than --max-depth {opts.max_depth} (crawler trap guard)"
            if reason:
                self.state.add(key, norm, depth, status="skipped", reason=reason)
                self.report.skipped.append(SkippedPage(link, reason))
                continue
            if self.state.add(key, norm, depth):
                self.frontier.append(UrlRow(key, norm, depth, "queued"))

    def _flush(self) -> None:
        """Write the pages waiting in the state to the index (one ingest transaction)."""
        if not self.pending:
            return
        t = time.perf_counter()
        docs = [d for _, d in self.pending]
        store = self.target.store
        changed = [d.source for d in docs if store.fingerprint(d.source) != d.fingerprint]
        rep = self.target.ingest([], documents=docs, progress=False)
        self.state.mark_indexed([k for k, _ in self.pending])
        self.report.indexed += changed
        self.report.chunks += rep.chunks
        self.report.stages["embed"] += time.perf_counter() - t
        self.pending = []


def _http(url: str) -> bool:
    return url[:8].lower().startswith(("http://", "https://"))


def _charset(ctype: str) -> str | None:
    for part in ctype.split(";")[1:]:
        name, _, value = part.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            return value.strip().strip('"')
    return None


def crawl(target: CrawlTarget, seeds: Sequence[str], **options: Any) -> CrawlReport:
    """Crawl web pages from ``seeds`` into ``target`` (an :class:`aspectrag.Index`).

    Breadth-first from the seeds, within ``scope``; pages become documents (source: the final
    normalised URL, or the page's canonical URL; fingerprint: SHA-256 of the normalised text;
    metadata: redirect chain, fetched-at, ETag, Last-Modified) written through the normal ingest
    pipeline in batches of ``batch_pages``. The frontier and visited set live in
    ``<index>/crawl.sqlite``: a crawl interrupted (even by SIGKILL) resumes on the next call
    without refetching finished pages.

    Options (keywords, see :class:`CrawlOptions`): ``max_pages`` (page requests per crawl,
    resumes included), ``max_depth`` (link hops from a seed), ``scope`` (``"host"``,
    ``"prefix"`` or a regular expression), ``delay`` (seconds between requests to one host; a
    larger robots.txt crawl-delay wins), ``concurrency`` (requests in flight, per host and in
    all), ``sitemap`` (also seed from sitemaps), ``recrawl`` (re-check every indexed page with a
    conditional GET; only changed pages are re-embedded), ``allow_hosts`` (hosts / CIDRs the
    SSRF guard lets through), ``near_duplicate_threshold`` (MinHash Jaccard), ``timeout``
    (seconds per request, body included), ``max_redirects``, ``max_bytes``, ``min_text_chars``,
    ``min_content_ratio`` (main text / page text), ``max_url_length``, ``max_query_params``,
    ``max_pages_per_host``, ``user_agent``, ``batch_pages``, ``dedup_index`` (also treat
    documents the index got from file / URL ingest as originals: their MinHash signatures are
    computed once from their chunks), ``progress``.

    Returns:
        The :class:`CrawlReport` of this run.

    Raises:
        ValueError: invalid options (a bad scope regex, a threshold outside (0, 1]).
    """
    opts = dict(options)
    opts["allow_hosts"] = tuple(opts.get("allow_hosts", ()))
    return Crawler(target, seeds, CrawlOptions(**opts)).run()

"""Politeness: robots.txt (Protego, Scrapy's parser of Google's robots.txt rules / RFC 9309),
crawl-delay, and per-host pacing and concurrency."""

from __future__ import annotations

import threading
from urllib.parse import urlsplit

from protego import Protego

from aspectrag.errors import BlockedURLError
from aspectrag.ingest.crawl.fetch import Fetcher


class Robots:
    """robots.txt rules per host, fetched once per crawl (with the page fetcher: same SSRF guard
    and user agent).

    Per RFC 9309 §2.3.1: 4xx (no robots.txt) allows everything; 5xx or an unreachable host
    disallows everything for this crawl.
    """

    def __init__(self, fetcher: Fetcher, user_agent: str) -> None:
        self.fetcher, self.user_agent = fetcher, user_agent
        self._rules: dict[str, Protego | None | bool] = {}
        self._lock = threading.Lock()
        self.fetches = 0

    def _origin(self, url: str) -> str:
        p = urlsplit(url)
        return f"{p.scheme.lower()}://{p.netloc.lower()}"

    def rules(self, url: str) -> Protego | None | bool:
        """Parsed rules of ``url``'s host: a ``Protego``, None (allow all) or False (deny all)."""
        origin = self._origin(url)
        with self._lock:
            if origin not in self._rules:
                res = self.fetcher.get(origin + "/robots.txt")
                self.fetches += 1
                if res.status == 200 and not res.error:
                    self._rules[origin] = Protego.parse(res.body.decode("utf-8", "replace"))
                elif res.kind == "blocked":
                    self._rules[origin] = None  # the page fetch itself reports the refusal
                elif 400 <= res.status < 500:
                    self._rules[origin] = None
                else:
                    self._rules[origin] = False
            return self._rules[origin]

    def allowed(self, url: str) -> bool:
        rules = self.rules(url)
        if rules is None or rules is True:
            return True
        if rules is False:
            return False
        return bool(rules.can_fetch(url, self.user_agent))

    def check(self, url: str) -> None:
        """Raise ``BlockedURLError`` when robots.txt disallows ``url`` (a redirect hop check)."""
        if not self.allowed(url):
            raise BlockedURLError(url, "disallowed by robots.txt")

    def crawl_delay(self, url: str) -> float:
        rules = self.rules(url)
        if isinstance(rules, Protego):
            return float(rules.crawl_delay(self.user_agent) or 0.0)
        return 0.0

    def sitemaps(self, url: str) -> list[str]:
        rules = self.rules(url)
        return list(rules.sitemaps) if isinstance(rules, Protego) else []


class HostPacer:
    """Per-host rate limit and concurrency: at most ``concurrency`` requests in flight per host
    and requests started at least ``delay`` seconds apart (the larger of ``--delay`` and the
    host's crawl-delay). Used from the scheduling thread only."""

    def __init__(self, delay: float, concurrency: int) -> None:
        self.delay, self.concurrency = delay, concurrency
        self._next: dict[str, float] = {}
        self._busy: dict[str, int] = {}

    def ready(self, host: str, now: float) -> bool:
        return (self._busy.get(host, 0) < self.concurrency
                and self._next.get(host, 0.0) <= now)

    def wait_hint(self, hosts: set[str], now: float) -> float:
        """Seconds until one of ``hosts`` may be fetched again (0.05 s at least)."""
        waits = [self._next.get(h, 0.0) - now for h in hosts if self._busy.get(h, 0)
                 < self.concurrency]
        return max(min(waits, default=0.05), 0.05)

    def start(self, host: str, now: float, delay: float) -> None:
        self._busy[host] = self._busy.get(host, 0) + 1
        self._next[host] = now + max(self.delay, delay)

    def done(self, host: str) -> None:
        self._busy[host] -= 1

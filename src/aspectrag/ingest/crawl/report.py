"""The outcome of one crawl run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(slots=True)
class SkippedPage:
    """A URL the crawl did not index: ``reason`` (one line) and, for duplicates, the page it
    duplicates (``duplicate_of``: a URL / document source)."""

    url: str
    reason: str
    duplicate_of: str | None = None


@dataclass(slots=True)
class CrawlReport:
    """What one crawl run did.

    Attributes:
        indexed: sources (final normalised URLs) written to the index as new or changed pages.
        unchanged: pages re-checked by ``recrawl`` that had not changed (304 or same content).
        fetched: page requests made (robots.txt and sitemaps not counted).
        skipped: every URL not indexed with its reason (duplicates, traps, robots, noindex,
            quality, refused by the SSRF guard, depth / budget limits).
        failed: ``(url, reason)`` for HTTP errors, timeouts, connection failures.
        queued: URLs left in the frontier (the page budget stopped the crawl, or it was
            interrupted); a later crawl of the same index resumes them.
        chunks: chunks embedded.
        seconds: wall time; ``stages``: seconds per stage (``fetch`` sums the request times of
            the worker threads, so it can exceed wall time with concurrency > 1; ``extract``,
            ``dedup``, ``embed`` run in the main thread).
        budget_reached: the page budget stopped the crawl.
        notes: things the user should know (e.g. "nothing to do: already crawled").
    """

    indexed: list[str] = field(default_factory=list)
    unchanged: int = 0
    fetched: int = 0
    skipped: list[SkippedPage] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    queued: int = 0
    chunks: int = 0
    seconds: float = 0.0
    stages: dict[str, float] = field(
        default_factory=lambda: {"fetch": 0.0, "extract": 0.0, "dedup": 0.0, "embed": 0.0})
    budget_reached: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def pages_per_second(self) -> float:
        """Pages fetched per second of wall time."""
        return self.fetched / self.seconds if self.seconds > 0 else 0.0

    @property
    def duplicates(self) -> list[SkippedPage]:
        """Skipped pages that duplicate another one (URL variants, canonical, exact, near)."""
        return [s for s in self.skipped if s.duplicate_of is not None]

    def reasons(self) -> dict[str, int]:
        """Skipped pages counted by the kind of reason (the reason text up to its first ``(``
        or ``:``)."""
        out: dict[str, int] = {}
        for s in self.skipped:
            kind = s.reason.split(" (")[0].split(":")[0].strip()
            out[kind] = out.get(kind, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["pages_per_second"] = self.pages_per_second
        d["duplicates"] = len(self.duplicates)
        return d

"""The crawl's progress line (rich): pages fetched / queued / skipped / failed and pages/s."""

from __future__ import annotations

from aspectrag.ingest.crawl.report import CrawlReport


class CrawlProgress:
    """A live status line on stderr, or nothing when ``show`` is False."""

    def __init__(self, show: bool) -> None:
        self.show = show

    def __enter__(self) -> CrawlProgress:
        if self.show:
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._p = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                               TimeElapsedColumn(), transient=False)
            self._p.start()
            self._task = self._p.add_task("crawling", total=None)
        return self

    def update(self, report: CrawlReport, queued: int, seconds: float) -> None:
        if self.show:
            rate = report.fetched / seconds if seconds > 0 else 0.0
            self._p.update(self._task, description=(
                f"crawling: {report.fetched} fetched, {queued} queued, {len(report.skipped)} "
                f"skipped, {len(report.failed)} failed, {len(report.indexed)} indexed "
                f"({rate:.1f} pages/s)"))

    def __exit__(self, *exc: object) -> None:
        if self.show:
            self._p.stop()

"""The ingest pipeline: discover -> load -> split -> embed -> write, all in one transaction.

An ingest either commits completely or leaves the index exactly as it was (one SQLite
transaction; a SIGKILL midway rolls back). Unchanged sources (same fingerprint) are skipped;
changed ones replace their chunks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from aspectrag.config import ChunkingConfig
from aspectrag.embed.base import Embedder
from aspectrag.errors import IndexMismatchError, LoadError
from aspectrag.ingest.base import Splitter
from aspectrag.store.base import Store
from aspectrag.types import Chunk, Document

log = logging.getLogger("aspectrag.ingest")


@dataclass(slots=True)
class IngestReport:
    """What an ingest did. ``failed`` and ``skipped`` hold ``(source, reason)`` pairs;
    ``removed`` counts documents deleted because a re-ingested corpus file no longer has them;
    ``skipped_types`` counts files of folders skipped for an unsupported extension, by extension;
    ``seconds`` is wall time, ``embed_seconds`` the part spent in the embedder."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    chunks: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    skipped_types: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    embed_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when no source failed."""
        return not self.failed

    @property
    def chunks_per_second(self) -> float:
        return self.chunks / self.seconds if self.seconds > 0 else 0.0


def make_splitter(embedder: Embedder, config: ChunkingConfig | None = None) -> Splitter:
    """Recursive character splitter whose sizes are counted in the embedder's tokens."""
    from aspectrag.ingest.length import TokenLength
    from aspectrag.ingest.splitter import RecursiveCharacterSplitter

    config = config or ChunkingConfig()
    tokenizer = getattr(embedder, "tokenizer", None)
    length = TokenLength(tokenizer) if tokenizer is not None else embedder.count_tokens
    # the indexed text (header + chunk) must fit the embedder's limit less [CLS] and [SEP]
    return RecursiveCharacterSplitter(config.chunk_size, config.chunk_overlap,
                                      length_function=length, max_length=embedder.max_tokens - 2)


def check_embedder(store: Store, embedder: Embedder) -> None:
    """Raise :class:`IndexMismatchError` if ``store`` was built with another embedder."""
    recorded = store.get_meta("embedder")
    if recorded is not None and recorded != embedder.name:
        raise IndexMismatchError(
            f"this index was built with embedder '{recorded}' but '{embedder.name}' is in use; "
            "use the same embedder (and adapter) or a new --index folder")


def ingest(
    store: Store,
    embedder: Embedder,
    sources: Sequence[str],
    *,
    glob: str | None = None,
    splitter: Splitter | None = None,
    batch_chunks: int = 256,
    progress: bool = True,
    allow_hosts: Sequence[str] = (),
    documents: Sequence[Document] = (),
) -> IngestReport:
    """Ingest files, folders (recursive; ``glob`` filters names) and http(s) URLs into ``store``.

    Args:
        store: the destination; written in one transaction.
        embedder: computes every named vector space of each chunk (texts: ``Chunk.index_text()``).
        sources: paths or URLs.
        batch_chunks: chunks per embedding call.
        progress: show progress bars (reading, then embedding with chunks/s).
        allow_hosts: hosts / CIDRs the URL loader's SSRF guard lets through (default: loopback,
            private, link-local and metadata addresses are refused).
        documents: already loaded documents (e.g. crawled pages) ingested with ``sources``;
            ``source`` and ``fingerprint`` must be set (an unchanged fingerprint is skipped).

    Returns:
        The :class:`IngestReport`; sources that failed to load are listed, not raised.

    Raises:
        IndexMismatchError: the index was built with another embedder.
    """
    from aspectrag.ingest.loaders import discover, load

    t0 = time.perf_counter()
    check_embedder(store, embedder)
    splitter = splitter or make_splitter(embedder)
    report = IngestReport()
    pending: list[tuple[Document, list[Chunk], bool]] = []  # (doc, chunks, is_update)
    files = discover(list(sources), glob, skipped_types=report.skipped_types)
    seen: set[str] = set()
    stale: list[str] = []  # documents of a container file (corpus.jsonl) no longer in it

    def take(doc: Document) -> bool:
        if doc.source in seen:
            return False
        seen.add(doc.source)
        old = store.fingerprint(doc.source)
        if old is not None and old == doc.fingerprint:
            report.unchanged += 1
            return True
        chunks = splitter.split(doc)
        if not chunks:
            report.skipped.append((doc.source, "no text to index"))
            return True
        pending.append((doc, chunks, old is not None))
        return True

    for doc in documents:
        if not doc.source or not doc.fingerprint:
            raise ValueError(f"document {doc.doc_id!r}: source and fingerprint are required")
        take(doc)
    with _bar(progress, "reading", len(files), "file") as bar:
        for src in files:
            try:
                loaded = [doc.source for doc in load(src, allow_hosts=allow_hosts) if take(doc)]
                stale += _stale_members(store, src, loaded)
            except LoadError as e:
                report.failed.append((e.source, e.reason))
                log.warning("skipped %s: %s", e.source, e.reason)
            except Exception as e:  # a loader bug must not lose the rest of the ingest
                report.failed.append((src, f"{type(e).__name__}: {e}"))
                log.exception("failed to load %s", src)
            bar.advance()

    total = sum(len(c) for _, c, _ in pending)
    report.removed = len(stale)
    if not pending and not stale:  # nothing to write: no write transaction, so concurrent readers never wait
        report.seconds = time.perf_counter() - t0
        return report
    from aspectrag.retrieve.heads import HeadStatsTracker

    heads = HeadStatsTracker(store, embedder)  # multi-head statistics, kept exact (MRAG)
    with store.writer() as w, _bar(progress, "embedding", total, "chunk") as bar:
        if pending and store.get_meta("embedder") is None:
            store.set_meta("embedder", embedder.name)
        heads.removing([doc.source for doc, _, is_update in pending if is_update] + stale)
        for source in stale:
            w.delete(source)
        i = 0
        while i < len(pending):
            group, n = [], 0
            while i < len(pending) and (n == 0 or n + len(pending[i][1]) <= batch_chunks):
                group.append(pending[i])
                n += len(pending[i][1])
                i += 1
            texts = [c.index_text() for _, chunks, _ in group for c in chunks]
            te = time.perf_counter()
            vectors = embedder.encode(texts, kind="document")
            report.embed_seconds += time.perf_counter() - te
            heads.added(vectors)
            off = 0
            for doc, chunks, is_update in group:
                sl = slice(off, off + len(chunks))
                w.upsert(doc, chunks, {s: np.asarray(v[sl]) for s, v in vectors.items()})
                off += len(chunks)
                report.chunks += len(chunks)
                report.updated += is_update
                report.added += not is_update
            bar.advance(n)
        heads.save()
    _refresh(store)
    report.seconds = time.perf_counter() - t0
    return report


def remove(store: Store, source: str) -> int:
    """Delete the document(s) of ``source`` (a file path, URL, or folder / corpus-file prefix).

    Returns the number of documents removed (0 if none matched).
    """
    targets = [s for s in store.sources()
               if s == source or s.startswith(source.rstrip("/") + "/") or s.startswith(source + "#")]
    if not targets:
        return 0
    from aspectrag.retrieve.heads import HeadStatsTracker

    heads = HeadStatsTracker(store)
    with store.writer() as w:
        heads.removing(targets)
        for s in targets:
            w.delete(s)
        heads.save()
    _refresh(store)
    return len(targets)


def _stale_members(store: Store, src: str, loaded: Sequence[str]) -> list[str]:
    """Documents the index holds for container file ``src`` (``"<src>#<id>"``, a BEIR
    corpus.jsonl) that its fully read new version no longer has: they are deleted with the
    ingest, so re-ingesting an edited corpus file mirrors it."""
    from aspectrag.ingest.loaders.beir import is_beir_corpus

    prefixes = {s.rsplit("#", 1)[0] for s in loaded if "#" in s}
    if not is_beir_corpus(src) or len(prefixes) != 1:
        return []
    prefix = f"{prefixes.pop()}#"
    keep = set(loaded)
    return [s for s in store.sources() if s.startswith(prefix) and s not in keep]


def _refresh(store: Store) -> None:
    refresh = getattr(store, "refresh", None)
    if callable(refresh):  # embedded store: rebuild derived indexes now, not on first query
        refresh()


class _bar:
    """A rich progress bar with a rate column (or nothing when disabled)."""

    def __init__(self, show: bool, desc: str, total: int, unit: str) -> None:
        self.show, self.desc, self.total, self.unit = show and total > 0, desc, total, unit

    def __enter__(self) -> _bar:
        if self.show:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TaskProgressColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                               TaskProgressColumn(),
                               TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                               TimeRemainingColumn(), transient=False)
            self._p.start()
            self._task = self._p.add_task(self.desc, total=self.total, rate="")
            self._t0 = time.perf_counter()
        return self

    def advance(self, n: int = 1) -> None:
        if self.show:
            task = self._p.tasks[0]
            done = task.completed + n
            rate = done / max(time.perf_counter() - self._t0, 1e-9)
            self._p.update(self._task, advance=n, rate=f"{rate:,.1f} {self.unit}s/s")

    def __exit__(self, *exc: object) -> None:
        if self.show:
            self._p.stop()

"""The ingest pipeline: discover -> load -> split -> stage -> embed -> one write transaction.

An ingest either commits completely or leaves the index exactly as it was. It holds the
store's exclusive writer lock (``Store.write_lock``: one writer per index across processes;
a second one waits, or fails at once with ``wait=False``) from start to end, but SQLite's
write lock only for the final copy: every source is read, split and staged on disk
(``ingest/staging.py``), the staged chunks are embedded in batches of ``batch_chunks``, and
then one short transaction writes them (a SIGKILL at any point leaves the index as before,
or, after the commit, as after). Memory is bounded by one embedding batch plus the largest
document, which ``max_file_bytes`` caps. Unchanged sources (same fingerprint) are skipped;
changed ones replace their chunks. Chunk ids are ``chunk_key(source, i)``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from aspectrag.config import ChunkingConfig
from aspectrag.embed.base import Embedder
from aspectrag.errors import IndexMismatchError, LoadError
from aspectrag.ingest.base import IngestHook, Splitter
from aspectrag.ingest.staging import Staging
from aspectrag.store.base import (
    CAP_DERIVED_INDEXES,
    CAP_SIDE_FILES,
    SpaceSpec,
    Store,
    chunk_key,
    source_matches,
    specs_of_vectors,
)
from aspectrag.types import Chunk, Document

log = logging.getLogger("aspectrag.ingest")

#: default per-file size limit (bytes), like the URL loader's
DEFAULT_MAX_FILE_BYTES = 50 * 2**20


EMPTY_DOCUMENT = "empty document (neither title nor text)"
"""``IngestReport.skipped`` reason of a corpus document without title and text (not a failure)."""


@dataclass(slots=True)
class IngestReport:
    """What an ingest did. ``failed`` and ``skipped`` hold ``(source, reason)`` pairs;
    ``removed`` counts documents deleted because a re-ingested corpus file no longer has them;
    ``skipped_types`` counts files skipped in folders for an unsupported extension, by
    extension (filled when discovery reports them); ``seconds`` is wall time excluding
    ``wait_seconds`` (waiting for another writer), ``embed_seconds`` the part spent in the
    embedder."""

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
    wait_seconds: float = 0.0

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
    sources: Sequence[str | Document],
    *,
    glob: str | None = None,
    splitter: Splitter | None = None,
    batch_chunks: int = 256,
    progress: bool = True,
    hooks: Sequence[IngestHook] = (),
    on_progress: Callable[[int, int], None] | None = None,
    wait: bool = True,
    on_wait: Callable[[str], None] | None = None,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    allow_hosts: Sequence[str] = (),
) -> IngestReport:
    """Ingest files, folders (recursive; ``glob`` filters names), http(s) URLs and in-memory
    :class:`~aspectrag.types.Document` s into ``store``, all or nothing.

    Args:
        store: the destination; written in one transaction, under its writer lock.
        embedder: computes every named vector space of each chunk (texts: ``Chunk.index_text()``).
        sources: paths, URLs or Documents (a Document needs ``source`` and ``fingerprint``;
            an unchanged fingerprint skips it, like a file).
        batch_chunks: chunks per embedding call (a large document spans several).
        progress: show progress bars (reading, then embedding with chunks/s).
        hooks: index-level state kept exact (see :class:`~aspectrag.ingest.base.IngestHook`).
        on_progress: ``on_progress(done_chunks, total_chunks)`` after each embedded batch.
        wait: wait for another writer of the index (False: raise ``IndexBusyError`` at once).
        on_wait: called with "waiting for the ingest started by pid N at TIME" when waiting.
        max_file_bytes: per-file size limit (bytes) for local files read whole, and per-document
            text limit (characters) for documents of corpus files and in-memory ones;
            larger ones are listed in ``failed``.
        allow_hosts: hosts / CIDRs the URL loader's SSRF guard lets through (default: loopback,
            private, link-local and metadata addresses are refused).

    Returns:
        The :class:`IngestReport`; sources that failed to load are listed, not raised.

    Raises:
        IndexMismatchError: the index was built with another embedder.
        IndexBusyError: ``wait`` is False and another process is writing the index.
        StoreError: the index is damaged (failed its quick check), read-only or locked.
    """
    t0 = time.perf_counter()
    check_embedder(store, embedder)
    splitter = splitter or make_splitter(embedder)
    report = IngestReport()
    with store.write_lock(wait=wait, on_wait=on_wait):
        report.wait_seconds = time.perf_counter() - t0
        check_embedder(store, embedder)
        parent = store.side_path("staging") if CAP_SIDE_FILES in store.capabilities else None
        with Staging(parent) as stage:
            stale = _read(store, splitter, sources, glob, max_file_bytes, stage, report, progress,
                          allow_hosts)
            report.removed = len(stale)
            if not stage.documents and not stale:  # nothing to write: no write transaction
                report.seconds = time.perf_counter() - t0 - report.wait_seconds
                return report
            specs = _embed(embedder, stage, batch_chunks, hooks, on_progress, report, progress)
            commit_staged(store, embedder, stage, stale, specs, hooks, report)
    refresh_derived(store)
    report.seconds = time.perf_counter() - t0 - report.wait_seconds
    return report


@dataclass(slots=True)
class SourceTally:
    """What reading one discovered source gave besides the documents to stage: ``loaded``
    every document source it held (in order, unchanged and failed ones included), the
    ``unchanged`` sources, and the ``failed`` and ``skipped`` ``(source, reason)`` pairs."""

    loaded: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def into(self, report: IngestReport) -> None:
        """Add these counts and pairs to ``report``."""
        report.unchanged += len(self.unchanged)
        report.failed += self.failed
        report.skipped += self.skipped


def discover_items(sources: Sequence[str | Document], glob: str | None,
                   report: IngestReport) -> list[str | Document]:
    """The sources to read, in order: the discovered files / URLs, then the in-memory
    documents (skipped file types are counted into ``report.skipped_types``)."""
    from aspectrag.ingest.loaders import discover

    files = discover([s for s in sources if not isinstance(s, Document)], glob,
                     skipped_types=report.skipped_types)
    return [*files, *(s for s in sources if isinstance(s, Document))]


def source_name(item: str | Document) -> str:
    """The name a failure of ``item`` is reported under."""
    return item if isinstance(item, str) else (item.source or "<document>")


def read_source(item: str | Document, splitter: Splitter,
                fingerprint: Callable[[str], str | None], seen: set[str], max_bytes: int,
                allow_hosts: Sequence[str], tally: SourceTally,
                ) -> Iterator[tuple[Document, list[Chunk], bool]]:
    """Load and split one discovered source: yields ``(document, chunks, is_update)`` for each
    new or changed document (chunk ids ``chunk_key(source, i)``); documents whose source is
    in ``seen`` are ignored (and their sources added to it), unchanged, too large and empty
    ones are counted in ``tally``. ``fingerprint(source)`` is the indexed version's
    fingerprint (None: not indexed).

    Raises:
        LoadError: the source cannot be loaded (documents yielded before stay valid); any
            other exception of a loader likewise (see :func:`failure`).
    """
    for doc in _documents(item, max_bytes, allow_hosts):
        if doc.source in seen:
            continue
        seen.add(doc.source)
        tally.loaded.append(doc.source)
        if len(doc.text) > max_bytes:
            tally.failed.append((doc.source, _too_large(len(doc.text), max_bytes, "characters")))
            continue
        old = fingerprint(doc.source)
        if old is not None and old == doc.fingerprint:
            tally.unchanged.append(doc.source)
            continue
        chunks = [dataclasses.replace(c, chunk_id=chunk_key(doc.source, c.index))
                  for c in splitter.split(doc)]
        if not chunks:
            tally.skipped.append((doc.source, EMPTY_DOCUMENT
                                  if doc.metadata.get("empty") else "no text to index"))
            continue
        yield doc, chunks, old is not None


def failure(name: str, e: Exception) -> tuple[str, str]:
    """The ``(source, reason)`` a failed read of source ``name`` is reported as (logged at
    INFO; a loader bug other than :class:`LoadError` also logs its traceback at DEBUG)."""
    if isinstance(e, LoadError):
        log.info("failed %s: %s", e.source, e.reason)
        return e.source, e.reason
    log.info("failed %s: %s: %s", name, type(e).__name__, e)
    log.debug("traceback of the failure of %s", name, exc_info=True)
    return name, f"{type(e).__name__}: {e}"


def stale_members(store: Store, item: str | Document, loaded: Sequence[str]) -> list[str]:
    """The indexed documents of container file ``item`` that its fully read new version
    (``loaded``: its document sources) no longer has; [] for other sources."""
    return _stale_members(store, item, loaded) if isinstance(item, str) else []


def _read(store: Store, splitter: Splitter, sources: Sequence[str | Document],
          glob: str | None, max_bytes: int, stage: Staging, report: IngestReport,
          progress: bool, allow_hosts: Sequence[str] = ()) -> list[str]:
    """Load, split and stage every source; returns the stale corpus-file members to delete."""
    items = discover_items(sources, glob, report)
    seen: set[str] = set()
    stale: list[str] = []  # documents of a container file (corpus.jsonl) no longer in it
    with StageBar(progress, "reading", len(items), "file") as bar:
        for item in items:
            tally = SourceTally()
            try:
                for doc, chunks, is_update in read_source(item, splitter, store.fingerprint, seen,
                                                          max_bytes, allow_hosts, tally):
                    stage.add(doc, chunks, is_update)
                stale += stale_members(store, item, tally.loaded)
            except Exception as e:  # a loader bug must not lose the rest of the ingest
                tally.failed.append(failure(source_name(item), e))
            tally.into(report)
            bar.advance()
    return stale


def commit_staged(store: Store, embedder: Embedder, stage: Staging, stale: Sequence[str],
                  specs: Sequence[SpaceSpec], hooks: Sequence[IngestHook],
                  report: IngestReport) -> None:
    """The one write transaction of an ingest (caller holds ``store.write_lock``): declare
    the spaces, record the embedder, let the hooks see the removals, delete ``stale``, copy
    every staged document with its vectors, save the hooks; counts into ``report``. All or
    nothing: an exception rolls the transaction back."""
    with store.writer() as w:
        if specs:
            w.declare_spaces(specs)
        if stage.documents and store.get_meta("embedder") is None:
            w.set_meta("embedder", embedder.name)
        for h in hooks:
            h.removing(stage.updates + list(stale))
        for source in stale:
            w.delete(source)
        for doc, chunks, vectors, is_update in stage.staged():
            w.upsert(doc, chunks, vectors)
            report.chunks += len(chunks)
            report.updated += is_update
            report.added += not is_update
        for h in hooks:
            h.save(w)


def _documents(item: str | Document, max_bytes: int,
               allow_hosts: Sequence[str] = ()) -> Iterator[Document]:
    """The documents of one discovered source (or the in-memory document itself)."""
    from aspectrag.ingest.loaders import load
    from aspectrag.ingest.loaders.beir import is_beir_corpus
    from aspectrag.ingest.loaders.url import is_url

    if isinstance(item, Document):
        if not item.source or not item.fingerprint:
            raise LoadError(item.source or "<document>",
                            "an in-memory Document needs a source and a fingerprint")
        yield item
        return
    if not is_url(item) and not is_beir_corpus(item):  # a corpus file streams line by line
        try:
            size = os.path.getsize(item)
        except OSError:
            size = 0  # missing/unreadable: the loader says why
        if size > max_bytes:
            raise LoadError(item, _too_large(size, max_bytes, "bytes"))
    yield from load(item, allow_hosts=allow_hosts)


def _too_large(size: int, limit: int, unit: str) -> str:
    return (f"{size:,} {unit} is over the per-file limit of {limit:,} "
            "(raise it with --max-file-size / max_file_bytes)")


def _embed(embedder: Embedder, stage: Staging, batch_chunks: int, hooks: Sequence[IngestHook],
           on_progress: Callable[[int, int], None] | None, report: IngestReport,
           progress: bool) -> list[SpaceSpec]:
    """Embed the staged chunks in batches (vectors back into the staging file); returns the
    space specs of the embedder's output."""
    specs: list[SpaceSpec] = []
    done, total = 0, stage.total_chunks
    with StageBar(progress, "embedding", total, "chunk") as bar:
        for start, chunks in stage.chunk_batches(max(1, batch_chunks)):
            te = time.perf_counter()
            vectors = embedder.encode([c.index_text() for c in chunks], kind="document")
            report.embed_seconds += time.perf_counter() - te
            if not specs:
                specs = specs_of_vectors(vectors)
            for h in hooks:
                h.added(vectors)
            stage.put_vectors(start, vectors)
            done += len(chunks)
            bar.advance(len(chunks))
            if on_progress is not None:
                on_progress(done, total)
    return specs


def remove(store: Store, source: str, *, hooks: Sequence[IngestHook] = (), wait: bool = True,
           on_wait: Callable[[str], None] | None = None) -> int:
    """Delete the document(s) of ``source`` (a file path, URL, or folder / corpus-file prefix:
    the store's source filter, :func:`aspectrag.store.base.source_matches`).

    Returns the number of documents removed (0 if none matched; then nothing is written).

    Raises:
        IndexBusyError: ``wait`` is False and another process is writing the index.
    """
    if not any(source_matches(s, [source]) for s in store.sources()):
        return 0
    with store.write_lock(wait=wait, on_wait=on_wait):
        targets = [s for s in store.sources() if source_matches(s, [source])]
        if not targets:
            return 0
        with store.writer() as w:
            for h in hooks:
                h.removing(targets)
            for s in targets:
                w.delete(s)
            for h in hooks:
                h.save(w)
    refresh_derived(store)
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


def refresh_derived(store: Store) -> None:
    """Rebuild the store's derived indexes now (BM25...), not on the first query."""
    if CAP_DERIVED_INDEXES in store.capabilities:  # rebuild derived indexes now, not on first query
        store.refresh()


class StageBar:
    """A rich progress bar with a rate column (or nothing when disabled)."""

    def __init__(self, show: bool, desc: str, total: int, unit: str) -> None:
        self.show, self.desc, self.total, self.unit = show and total > 0, desc, total, unit

    def __enter__(self) -> StageBar:
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

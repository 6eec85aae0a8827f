"""The Python API: an ``Index`` folder you ingest into, search and ask questions of.

Example::

    from aspectrag import Index
    idx = Index("./.aspectrag")
    idx.ingest(["docs/"])
    hits = idx.search("task decomposition", k=5)
    answer = idx.ask("What are the approaches to Task Decomposition?")
    print(answer.answer, [c.chunk.source for c in answer.citations])
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aspectrag.config import ChunkingConfig, default_index_path
from aspectrag.embed.base import Embedder
from aspectrag.generate.base import Generator
from aspectrag.ingest.base import IngestHook
from aspectrag.ingest.pipeline import (
    DEFAULT_MAX_FILE_BYTES,
    IngestReport,
    check_embedder,
    make_splitter,
)
from aspectrag.ingest.pipeline import ingest as _ingest
from aspectrag.ingest.pipeline import remove as _remove
from aspectrag.multihead.layout import META_KEY as HEADS_META_KEY
from aspectrag.multihead.stats import HeadStatsTracker
from aspectrag.retrieve.base import Retriever
from aspectrag.settings import get_settings
from aspectrag.store.base import Store
from aspectrag.types import Answer, Document, Hit, SearchResult
from aspectrag.validate import require_index, validate_k, validate_query

if TYPE_CHECKING:
    from aspectrag.ingest.crawl.report import CrawlReport

from aspectrag.retrieve.factory import DEFAULT_RETRIEVER  # noqa: E402  (re-exported)


class Index:
    """A document index at a location (default ``ASPECTRAG_INDEX`` or ``./.aspectrag``).

    Args:
        path: index location: a folder (created on first ingest) or ``scheme://...`` of a
            registered store backend (see :func:`aspectrag.store.factory.build_store`).
        embedder: embedder to use (default: the bundled all-MiniLM-L6-v2); must match the one
            that built the index.
        store: a ready :class:`~aspectrag.store.base.Store` (default: SQLite store in ``path``).
        chunking: chunk size / overlap in embedder tokens (default: the settings). An index
            records its chunking at its first ingest and later ingests keep it; an explicit
            ``chunking`` that differs from the record raises ConfigError on ingest
            (:mod:`aspectrag.ingest.chunking`).
        readonly: open the store for reading only (ingest/remove raise ``StoreError``).
        embedder_factory: a picklable zero-argument callable that builds ``embedder`` (default:
            the bundled model in the index's layout); the Ray engine builds one embedder per
            actor with it.
        for_queries: this ``Index`` mostly encodes queries (the CLI's search and ask): an index
            built by the torch runtime then encodes with its torch-free fp32 ONNX twin when
            that is ready (:func:`aspectrag.embed.factory.query_twin`; same vectors to 1e-5).

    Attributes:
        location: the location string; ``path``: it as a ``Path`` for a local folder, else None.

    Raises:
        aspectrag.errors.IndexMismatchError: on ingest/search if the index was built with another
            embedder.

        aspectrag.errors.IndexNotFoundError: on search/ask/retriever when ``path`` holds no
            index (reading never creates one).
        aspectrag.errors.InvalidRequestError: on search/ask for ``k`` < 1 or a query without a
            searchable word (see :mod:`aspectrag.validate`).

    Searching never writes and keeps no per-call state, so one ``Index`` serves concurrent
    searches (:meth:`search_result` returns each search's own diagnostics). Process-wide
    thread settings are not changed here: call :func:`aspectrag.config.setup_threads` once at
    start-up for the measured torch / BLAS split (the command line does).
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        embedder: Embedder | None = None,
        store: Store | None = None,
        chunking: ChunkingConfig | None = None,
        readonly: bool = False,
        embedder_factory: Callable[[], Embedder] | None = None,
        for_queries: bool = False,
    ) -> None:
        from aspectrag.store.factory import is_local

        self.location = str(path) if path is not None else str(default_index_path())
        self.path: Path | None = Path(self.location) if is_local(self.location) else None
        self.readonly = readonly
        self._embedder = embedder
        self._embedder_factory = embedder_factory
        self._store = store
        self._index_found = False
        self.for_queries = for_queries
        self.chunking = chunking or get_settings().chunking
        self.chunking_explicit = chunking is not None

    @cached_property
    def store(self) -> Store:
        if self._store is not None:
            return self._store
        from aspectrag.store.factory import build_store

        return build_store(self.location, readonly=self.readonly)

    @cached_property
    def embedder(self) -> Embedder:
        if self._embedder is not None:
            return self._embedder
        if self._embedder_factory is not None:
            return self._embedder_factory()
        return self._bundled(for_queries=self.for_queries)()

    @cached_property
    def embedder_factory(self) -> Callable[[], Embedder]:
        """A picklable zero-argument callable building this index's *document* embedder (the
        Ray engine's actors and the service's embedding child call it): the one given, else
        the bundled model in the index's layout (with per-head vectors when it stores them),
        in the runtime that built the index even when ``for_queries`` gives this ``Index`` the
        ONNX query twin (both carry the same name). An explicit ``embedder`` without a factory
        is shipped pickled as it is."""
        if self._embedder_factory is not None:
            return self._embedder_factory
        if self._embedder is not None:
            return functools.partial(_same, self._embedder)
        return self._bundled(for_queries=False)

    def _bundled(self, *, for_queries: bool) -> Callable[[], Embedder]:
        """The factory of the bundled model in this index's layout and runtime."""
        from aspectrag.embed.factory import build_embedder

        heads = None  # an existing index keeps its layout (with or without per-head vectors)
        if self.store.stats()["chunks"]:
            heads = self.store.get_meta(HEADS_META_KEY) is not None
        return functools.partial(build_embedder, recorded=self.store.get_meta("embedder"),
                                 heads=heads, for_queries=for_queries)

    @property
    def embedder_rebuildable(self) -> bool:
        """Whether :attr:`embedder_factory` builds the embedder anew in another process (false
        for an ``embedder`` object given without a factory: it would be shipped pickled, and
        its class may not be importable there)."""
        return self._embedder is None or self._embedder_factory is not None

    def ingest(self, sources: Sequence[str | Path | Document], *, glob: str | None = None,
               progress: bool = False, wait: bool = True,
               on_wait: Callable[[str], None] | None = None,
               on_progress: Callable[[int, int], None] | None = None,
               max_file_bytes: int = DEFAULT_MAX_FILE_BYTES, allow_hosts: Sequence[str] = (),
               documents: Sequence[Document] = (), engine: str = "inprocess",
               ray_address: str | None = None, workers: int = 1) -> IngestReport:
        """Ingest files, folders, URLs and in-memory Documents (see
        :func:`aspectrag.ingest.pipeline.ingest`), holding the index's exclusive writer lock
        for the whole ingest: with ``wait`` False a busy index raises
        :class:`~aspectrag.errors.IndexBusyError` at once, else ``on_wait(message)`` (default:
        a warning log line) says whose ingest it waits for. ``allow_hosts``: hosts / CIDRs the
        URL loader's SSRF guard lets through; ``documents``: loaded documents ingested along
        (as if they were in ``sources``).

        ``engine``: ``"inprocess"`` (default) or ``"ray"``: loading and splitting as Ray tasks
        and embedding in ``workers`` Ray actors (:func:`aspectrag.ingest.ray_engine.ingest_ray`,
        the same resulting index), on the cluster at ``ray_address`` (default: a local one).

        Raises:
            ConfigError: unknown ``engine``; MissingExtraError: ``"ray"`` without Ray
                installed (``pip install 'aspectrag[ray]'``).
        """
        from aspectrag.errors import ConfigError
        from aspectrag.ingest.chunking import ChunkingRecorder, resolve_chunking

        if engine not in ("inprocess", "ray"):
            raise ConfigError(f"unknown ingest engine '{engine}': use inprocess or ray")
        items = [s if isinstance(s, Document) else str(s) for s in sources] + list(documents)
        t0 = time.perf_counter()
        # the chunking is decided under the writer lock (re-entrant: the pipeline takes it
        # again), so two ingests into a new index cannot each record their own chunking
        with self.store.write_lock(wait=wait, on_wait=on_wait):
            waited = time.perf_counter() - t0
            chunking = resolve_chunking(self.store, self.chunking,
                                        explicit=self.chunking_explicit, location=self.location)
            splitter = make_splitter(self.embedder, chunking)
            hooks = [*self._hooks(self.embedder), ChunkingRecorder(self.store, chunking)]
            common: dict[str, Any] = dict(
                glob=glob, splitter=splitter, progress=progress, hooks=hooks, wait=wait,
                on_progress=on_progress, max_file_bytes=max_file_bytes, allow_hosts=allow_hosts)
            if engine == "ray":
                from aspectrag.ingest.ray_engine import ingest_ray

                report = ingest_ray(self.store, self.embedder, self.embedder_factory, items,
                                    address=ray_address, workers=workers, **common)
            else:
                report = _ingest(self.store, self.embedder, items, **common)
        report.wait_seconds += waited
        return report

    def crawl(self, seeds: Sequence[str], **options: Any) -> CrawlReport:
        """Crawl web pages from ``seeds`` into this index (see
        :func:`aspectrag.ingest.crawl.crawl` for the options); returns a ``CrawlReport``.

        Raises:
            aspectrag.extras.MissingExtraError: the ``crawl`` extra is not installed.
        """
        from aspectrag.extras import optional_import

        for module in ("courlan", "protego", "datasketch"):
            optional_import(module, "crawling")
        from aspectrag.ingest.crawl import crawl

        return crawl(self, seeds, **options)

    def remove(self, source: str | Path, *, wait: bool = True,
               on_wait: Callable[[str], None] | None = None) -> int:
        """Delete a document (or every document under a folder / in a corpus file).
        Returns the number of documents removed."""
        src = str(source)
        if not src.startswith(("http://", "https://")) and Path(src).exists():
            src = str(Path(src).resolve())
        return _remove(self.store, src, hooks=self._hooks(self._embedder), wait=wait,
                       on_wait=on_wait)

    def _hooks(self, embedder: Embedder | None) -> list[IngestHook]:
        """The ingest hooks of this index: the multi-head statistics (MRAG head importance;
        ``embedder``'s head config is recorded with the first head vectors)."""
        return [HeadStatsTracker(self.store, embedder)]

    def retriever(self, name: str = DEFAULT_RETRIEVER, **options: Any) -> Retriever:
        """Build a retriever by name (``bm25``, ``dense``, ``hybrid``, ...) over this index."""
        from aspectrag.retrieve.factory import build_retriever

        self._require_index()
        check_embedder(self.store, self.embedder)
        return build_retriever(name, self.store, self.embedder, **options)

    def search(self, query: str, k: int = 10, *, retriever: str | Retriever = DEFAULT_RETRIEVER,
               sources: Sequence[str] | None = None, **options: Any) -> list[Hit]:
        """Top-``k`` chunks for ``query``; ``sources`` restricts to files/folders/URLs.

        ``options`` go to the retriever (``weight`` for hybrid...); an option the retriever
        does not declare raises ConfigError naming the valid ones.

        Raises:
            InvalidRequestError: ``k`` < 1 or no searchable word in ``query``.
            IndexNotFoundError: no index at ``path``.
        """
        r, k = self._prepare(query, k, retriever, options)
        with self.store.reading():  # one committed state, even while an ingest commits
            return r.retrieve(query, k, _resolve_sources(sources))

    def search_result(self, query: str, k: int = 10, *,
                      retriever: str | Retriever = DEFAULT_RETRIEVER,
                      sources: Sequence[str] | None = None, **options: Any) -> SearchResult:
        """:meth:`search` with the search's own diagnostics: the queries searched (multi-query),
        timings by stage in seconds, retriever facts (``SearchResult.info``). Safe to call from
        several threads on one ``Index`` (and one retriever).

        Raises:
            InvalidRequestError: ``k`` < 1 or no searchable word in ``query``.
            IndexNotFoundError: no index at ``path``.
        """
        r, k = self._prepare(query, k, retriever, options)
        with self.store.reading():  # one committed state, even while an ingest commits
            return r.search(query, k, _resolve_sources(sources))

    def _prepare(self, query: str, k: int, retriever: str | Retriever,
                 options: dict[str, Any]) -> tuple[Retriever, int]:
        """The validated ``k`` and the retriever of a search request."""
        k = self.check_request(query, k)
        r = self.retriever(retriever, **options) if isinstance(retriever, str) else retriever
        return r, k

    def generator(self, llm: str | None = None, *, decoding: str = "concat") -> Generator:
        """The answer generator: ``llm`` spec (``openai:MODEL``, ``hf:PATH``, ``extractive``) or
        the configured default (OpenAI-compatible endpoint if set, else extractive).

        ``decoding``: "concat" (all passages in one prompt), "rag-sequence" or "rag-token"
        (Lewis et al. 2020, see :func:`~aspectrag.generate.factory.build_generator`).

        Raises:
            aspectrag.errors.ConfigError: unknown spec/decoding or one the backend cannot do.
        """
        from aspectrag.generate.factory import build_generator

        return build_generator(llm, self.embedder, decoding=decoding)

    def ask(self, question: str, k: int = 5, *, retriever: str | Retriever = DEFAULT_RETRIEVER,
            llm: str | None = None, decoding: str = "concat",
            sources: Sequence[str] | None = None, **options: Any) -> Answer:
        """Retrieve ``k`` chunks and answer with numbered citations [1].. [k].

        ``llm`` and ``decoding`` pick the generator (:meth:`generator`); ``options`` go to the
        retriever (e.g. ``weight`` for hybrid). ``extras["supported"]`` is False when the
        answer cites none of the passages (:func:`~aspectrag.generate.citations.mark_support`).

        Raises:
            InvalidRequestError: ``k`` < 1 or no searchable word in ``question``.
            IndexNotFoundError: no index at ``path``.
        """
        from aspectrag.generate.citations import mark_support

        k = self.check_request(question, k, field="question")
        hits = self.search(question, k, retriever=retriever, sources=sources, **options)
        return mark_support(self.generator(llm, decoding=decoding).generate(question, hits))

    def _require_index(self) -> None:
        # a store given by the caller is its own business; an index once found stays (a stat
        # per search released the GIL and cost ~3% of a bm25 search in the service)
        if self._store is None and not self._index_found:
            require_index(self.location if self.path is None else self.path)
            self._index_found = True

    def check_request(self, query: str, k: int, *, field: str = "query") -> int:
        """Validate a search/ask request; returns ``k``. Every entry point calls it first (the
        CLI and HTTP API before building a retriever, so a bad request costs no model load).

        Raises:
            InvalidRequestError: ``k`` < 1 (``field="k"``) or no searchable word in ``query``
                (``field``).
            IndexNotFoundError: no index at ``path``.
        """
        k = validate_k(k)
        self._require_index()
        validate_query(query, get_tokenizer=lambda: getattr(self.embedder, "tokenizer", None),
                       field=field)
        return k


def _same(embedder: Embedder) -> Embedder:
    """The embedder itself (the factory of an explicitly given embedder)."""
    return embedder


def _resolve_sources(sources: Sequence[str] | None) -> list[str] | None:
    if not sources:
        return None
    out = []
    for s in sources:
        p = Path(s)
        out.append(str(p.resolve()) if not s.startswith(("http://", "https://")) and p.exists()
                   else s)
    return out


def ingest(sources: Sequence[str | Path], index: str | Path | None = None, **kw: Any) -> IngestReport:
    """``Index(index).ingest(sources, **kw)``."""
    return Index(index).ingest(sources, **kw)


def search(query: str, index: str | Path | None = None, **kw: Any) -> list[Hit]:
    """``Index(index).search(query, **kw)``."""
    return Index(index).search(query, **kw)


def ask(question: str, index: str | Path | None = None, **kw: Any) -> Answer:
    """``Index(index).ask(question, **kw)``."""
    return Index(index).ask(question, **kw)

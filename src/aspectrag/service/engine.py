"""The service's one door into retrieval and answering: every call the HTTP layer makes into
``Index`` search / ask / ingest goes through this module, so the API stays the same when the
library's calls move (e.g. to ``Index.search_result``).

All functions are synchronous and thread-safe for concurrent readers: retrievers are cached per
configuration and every search returns its own diagnostics (``SearchResult``), so requests
share nothing per call. At most ``max_searches`` searches run at once (the others wait their
turn): searches are CPU-bound, and more threads than cores searching together only slow each
other down (GIL hand-offs around every SQLite / numpy call: measured in
``benchmarks/service_load.py``, bm25 in-process 1311 searches/s from 1 thread, 454 from 32;
after the session-15 query path, ``benchmarks/search_threads.py``: 3,739 from 1, 1,400 from 32).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from aspectrag.generate.base import Generator, StreamingGenerator
from aspectrag.index import Index
from aspectrag.retrieve.base import Retriever
from aspectrag.service.embed_process import ProcessEmbedder
from aspectrag.service.encoding import ModelThreads
from aspectrag.store.base import chunk_key
from aspectrag.types import Answer, Chunk, Citation, Hit, SearchResult

#: Retriever options a request may set (anything else is refused: some options read server files).
ALLOWED_OPTIONS = frozenset({"fusion", "weight", "depth", "queries", "keep_original",
                             "original_weight", "max_queries"})


@dataclass(frozen=True, slots=True)
class SearchSpec:
    """What to search with: retriever name, the base of a multi-query retriever, a reranker
    and its depth, and extra retriever options (keys in ``ALLOWED_OPTIONS``)."""

    retriever: str = "auto"
    base: str | None = None
    rerank: str | None = None
    rerank_depth: int = 100
    options: tuple[tuple[str, Any], ...] = ()

    def build_options(self) -> dict[str, Any]:
        opts = dict(self.options)
        if self.retriever in ("multiquery", "auto"):
            opts.setdefault("base", self.base or "hybrid")
        return opts


def uses_model(spec: SearchSpec) -> bool:
    """Whether a search with ``spec`` may run a model (encode a query, rerank): anything but
    plain BM25. Such searches run on the engine's model threads."""
    return spec.retriever != "bm25" or spec.rerank is not None


class SearchQueueTimeout(TimeoutError):
    """A search waited longer than ``Engine.queue_timeout`` seconds for its turn."""


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_max_searches() -> int:
    """Searches at once per process by default: cores / intra-op threads, at least 1 (see
    ``Engine``'s ``max_searches``)."""
    from aspectrag.config import runtime_threads

    return max(1, available_cores() // max(1, runtime_threads()))


class Engine:
    """Retrieval, answers and ingest over one ``Index`` for the HTTP service.

    Args:
        index: the index served.
        allowed_llms: ``llm`` specs a request may name besides ``None`` (the server default),
            ``"extractive"`` and ``"openai:*"``; e.g. ``{"hf:/models/qwen"}``.
        max_searches: searches run at once (others wait); 0: the process's cores
            (:func:`available_cores`) divided by the model runtime's intra-op threads
            (:func:`aspectrag.config.runtime_threads`), at least 1: one search's query
            encoding already uses that many cores, so more searches at once only oversubscribe
            them. On 2 cores with 2 torch threads that is 1; measured against 2 with
            ``service_load.py --interleave 3`` (1 worker, session 15): hybrid p50 overhead at
            1 client -0.20 to +0.73 ms over 3 runs against +0.11 to +4.52 over 5, one of
            them under load (once a 32-client burst had started a second search thread, later
            1-client hybrid searches took 18-22 ms instead of 15-16.5), at the cost of hybrid
            throughput at 32
            clients: 0.93-1.07x against 1.13-1.28x the in-process maximum (bm25 unchanged,
            0.22-0.24x). Raise it when searches mostly wait on a remote LLM
            (multi-query with ``openai:`` query generation).
        inline_below: seconds of CPU; a search whose configuration's recent searches took less
            than this on average (:meth:`search_now`) runs on the calling thread (the event
            loop) instead of a worker thread. 0 turns this off. The hop to a worker thread and back
            costs about 0.45 ms of CPU per request (GIL hand-offs: 12-13 context switches per
            bm25 request at 32 clients), more than a bm25 search of a small index (0.27 ms),
            while a search this short holds the loop about as long as its HTTP handling does.
        queue_timeout: seconds a search may wait for its turn before ``SearchQueueTimeout``
            (the HTTP layer has answered 503 by then; the wait ends so no stale work runs).
        ingest_nice: ingests embed their documents in a child process at this CPU priority
            (nice increment 0-19; :class:`~aspectrag.service.embed_process.ProcessEmbedder`),
            so searches keep the cores while an ingest runs; None embeds in this process. An
            ``index`` given an embedder object without an ``embedder_factory`` always embeds
            in this process (the child could not rebuild it).
        encode_lock: a lock file shared by the processes serving this index (``serve
            --workers N``): their searches and answers that use a model then run one at a
            time. None: no lock. Either way that work runs on ``max_searches`` long-lived
            threads (:class:`~aspectrag.service.encoding.ModelThreads`: one OpenMP team each);
            BM25-only searches run where they are called, and ingests never go through them
            (their document encodes run in the child process, or with ``ingest_nice`` None on
            the writer thread).
    """

    def __init__(self, index: Index, *, allowed_llms: Sequence[str] = (), max_searches: int = 0,
                 queue_timeout: float = 60.0, ingest_nice: int | None = None,
                 inline_below: float = 0.001, encode_lock: str | os.PathLike[str] | None = None,
                 ) -> None:
        if ingest_nice is not None and not 0 <= ingest_nice <= 19:
            from aspectrag.errors import ConfigError

            raise ConfigError(f"service.ingest_nice (ASPECTRAG_SERVICE_INGEST_NICE) is "
                              f"{ingest_nice}: give a nice increment from 0 to 19")
        self.index = index
        self.ingest_nice = ingest_nice
        self.max_searches = max_searches if max_searches > 0 else default_max_searches()
        self._models = ModelThreads(self.max_searches, lock_path=encode_lock)
        self._writer: Index | None = None
        self._child: ProcessEmbedder | None = None
        self.allowed_llms = set(allowed_llms)
        self.queue_timeout = queue_timeout
        self.inline_below = inline_below
        # running means of each configuration's search seconds: CPU, wall-clock (search_now)
        self._cost: dict[SearchSpec, tuple[float, float]] = {}
        self._seen: dict[SearchSpec, int | None] = {}  # store generation at its last search
        self._turns = threading.BoundedSemaphore(self.max_searches)
        self._retrievers: dict[SearchSpec, Retriever] = {}
        self._generators: dict[tuple[str | None, str], Generator] = {}
        self._lock = threading.Lock()
        from aspectrag.store import bm25_index

        # a long-lived process: BM25 over 100k chunks or more scores with bm25s' numba backend
        # (its ~8 s compile is paid once; ``store/bm25_index.NUMBA_MIN_DOCS``)
        bm25_index.NUMBA_MIN_DOCS = 100_000
        from aspectrag.retrieve.factory import available

        available()  # load the retriever plugins now: the factory's lazy loading is not thread-safe

    # -- reading ----------------------------------------------------------------------------
    def warm_up(self) -> None:
        """Load the embedder and the derived indexes (so the first request is not slow; over
        100k chunks this compiles bm25s' numba scorer, see ``__init__``)."""
        if self.index.store.stats()["chunks"]:
            self.search("warm up", 1, SearchSpec("hybrid"))

    def retriever(self, spec: SearchSpec) -> Retriever:
        """The retriever for ``spec`` (cached unless multi-query).

        Raises:
            ValueError: unknown retriever or option; ConfigError from the factories.
        """
        bad = [k for k, _ in spec.options if k not in ALLOWED_OPTIONS]
        if bad:
            raise ValueError(f"options: {', '.join(bad)} not allowed; allowed: "
                             f"{', '.join(sorted(ALLOWED_OPTIONS))}")
        q = dict(spec.options).get("queries")
        if isinstance(q, str) and q.startswith("hf:") and q not in self.allowed_llms:
            raise ValueError("options.queries: local models (hf:) are not enabled on this server")
        with self._lock:  # retrievers keep no per-call state (results carry diagnostics)
            r = self._retrievers.get(spec)
        if r is not None:
            return r
        r = self.index.retriever(spec.retriever, **spec.build_options())
        if spec.rerank:
            from aspectrag.rerank.factory import with_reranker

            r = with_reranker(r, spec.rerank, depth=spec.rerank_depth,
                              embedder=self.index.embedder, index_path=self.index.path)
        with self._lock:
            return self._retrievers.setdefault(spec, r)

    def search(self, query: str, k: int, spec: SearchSpec,
               sources: Sequence[str] | None = None) -> SearchResult:
        """Top-``k`` hits for ``query`` with the generated queries of a multi-query retriever.

        Raises:
            ValueError / AspectragError: bad retriever, option or query.
            SearchQueueTimeout: no turn within ``queue_timeout`` seconds.
        """
        r = self.retriever(spec)
        t0 = time.perf_counter()
        if not self._turns.acquire(timeout=self.queue_timeout):
            raise SearchQueueTimeout(f"no search turn within {self.queue_timeout:g} s")
        return self._search_turn(r, query, k, spec, sources, t0)

    def search_now(self, query: str, k: int, spec: SearchSpec,
                   sources: Sequence[str] | None = None) -> SearchResult | None:
        """:meth:`search` on the calling thread if it is expected to be short, else None (the
        caller then runs :meth:`search` in a worker thread; the HTTP layer calls this on its
        event loop first, ``ServiceState.search``). It takes no search turn: the loop runs one
        such search at a time, and it is short, so a process runs at most ``max_searches`` + 1
        searches at once.

        Short: over this ``spec``'s earlier searches (running means, weight 0.2 on the latest)
        the searching thread's CPU time is below ``inline_below`` and the wall-clock time below
        10x that. CPU time, because a search in a worker thread beside a busy loop waits for
        the GIL (a bm25 search of 0.27 ms took 1.0-1.4 ms of wall-clock time at 32 clients);
        the wall-clock bound keeps a search that waits on the network (a remote store, an LLM)
        off the loop. The first search of ``spec`` and its first after a commit (the store
        generation changed) may load or update a derived index (tens of milliseconds or more):
        they always go to a worker thread, and their times are not counted; so does every
        search with a source filter (a new filter first scans the document table).

        Raises: as :meth:`search` (never ``SearchQueueTimeout``).
        """
        cost = self._cost.get(spec)
        if cost is None or cost[0] >= self.inline_below or cost[1] >= 10 * self.inline_below \
                or sources:  # a new source filter scans the document table first
            return None
        gen = self._generation()
        if gen != self._seen.get(spec):
            return None  # a commit since: the first search of it may load a derived index
        return self._timed(self.retriever(spec), query, k, spec, sources, time.perf_counter(),
                           gen)

    def _generation(self) -> int | None:
        return getattr(self.index.store, "generation", None)

    def _search_turn(self, r: Retriever, query: str, k: int, spec: SearchSpec,
                     sources: Sequence[str] | None, t0: float) -> SearchResult:
        try:  # the caller holds a turn
            return self._timed(r, query, k, spec, sources, t0)
        finally:
            self._turns.release()

    def _timed(self, r: Retriever, query: str, k: int, spec: SearchSpec,
               sources: Sequence[str] | None, t0: float, gen: Any = ...) -> SearchResult:
        if gen is ...:  # read before the search: a commit during it shows at the next
            gen = self._generation()
        measured = spec in self._seen and self._seen[spec] == gen
        self._seen[spec] = gen
        t1 = time.perf_counter()

        def call() -> SearchResult:
            return self.index.search_result(query, k, retriever=r,
                                            sources=list(sources) if sources else None)

        if uses_model(spec):  # on a model thread (one OpenMP team; the workers' lock)
            res, cpu = self._models.run(call)
        else:
            c1 = time.thread_time()
            res = call()
            cpu = time.thread_time() - c1
        took = time.perf_counter() - t1
        if measured:  # not the first search of spec, nor its first of a new generation
            last = self._cost.get(spec)
            self._cost[spec] = (cpu, took) if last is None else \
                (0.8 * last[0] + 0.2 * cpu, 0.8 * last[1] + 0.2 * took)
        res.timings["search"] = took
        res.timings["queued"] = t1 - t0
        return res

    def generator(self, llm: str | None, decoding: str = "concat") -> Generator:
        """The answer generator for ``llm`` (None: the server's default), cached.

        Raises:
            ValueError: an ``llm`` spec this server does not allow.
        """
        if llm not in (None, "extractive") and not llm.startswith("openai:") \
                and llm not in self.allowed_llms:
            raise ValueError(f"llm {llm!r} is not enabled on this server; use extractive, "
                             "openai:MODEL or leave it out for the default")
        key = (llm, decoding)
        with self._lock:
            g = self._generators.get(key)
        if g is None:
            g = self.index.generator(llm, decoding=decoding)
            with self._lock:
                self._generators.setdefault(key, g)
        return g

    def ask_events(self, question: str, k: int, spec: SearchSpec, *, llm: str | None = None,
                   decoding: str = "concat", sources: Sequence[str] | None = None,
                   context: str = "") -> Iterator[tuple[str, Any]]:
        """Answer ``question`` as a sequence of ``(event, data)``: ``("queries", [...])``,
        ``("hits", [...])``, ``("token", str)``..., ``("citations", [...])``,
        ``("done", {"answer", "mode", ...})``. ``context``: earlier conversation, given to an
        LLM generator before the question (not used for retrieval or extractive answers).

        Raises (before the first event): ValueError / AspectragError for a bad request.
        """
        gen = self.generator(llm, decoding)
        t0 = time.perf_counter()
        out = self.search(question, k, spec, sources)
        yield "queries", out.queries
        yield "hits", [hit_json(h) for h in out.hits]
        asked = question
        if context and gen.name != "extractive":
            asked = f"Conversation so far:\n{context}\n\nQuestion: {question}"
        if gen.name == "extractive":  # it embeds the sentences: on a model thread
            stream, _ = self._models.run(lambda: gen.stream(asked, out.hits))  # type: ignore[attr-defined]
            for piece in stream:  # computed at once: only the pieces remain
                yield "token", piece
            ans = stream.answer
        elif isinstance(gen, StreamingGenerator):
            stream = gen.stream(asked, out.hits)
            for piece in stream:
                yield "token", piece
            ans = stream.answer
        else:
            ans = gen.generate(asked, out.hits)
            yield "token", ans.answer
        yield "citations", [citation_json(c) for c in ans.citations]
        done = answer_json(ans)
        done["timings"] = {**out.timings, "total": time.perf_counter() - t0}
        yield "done", done

    def ask(self, question: str, k: int, spec: SearchSpec, **kw: Any) -> dict[str, Any]:
        """Non-streaming ``ask``: the ``done`` event's data plus ``queries`` and ``hits``."""
        result: dict[str, Any] = {}
        for event, data in self.ask_events(question, k, spec, **kw):
            if event in ("queries", "hits"):
                result[event] = data
            elif event == "done":
                result = {**data, **result}
        return result

    # -- index facts ------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Documents, chunks, embedder, vector spaces and store generation of the index."""
        store = self.index.store
        s = dict(store.stats())
        s["embedder"] = store.get_meta("embedder")
        s["vector_spaces"] = store.vector_spaces()
        gen = getattr(store, "generation", None)
        if gen is not None:
            s["generation"] = int(gen)
        from aspectrag.retrieve.factory import available

        s["retrievers"] = available()
        return s

    def sources(self) -> list[str]:
        """Every document source in the index, in insertion order."""
        return self.index.store.sources()

    def document(self, source: str) -> dict[str, Any] | None:
        """``{"source", "title", "text"}`` of an indexed document, or None. The store keeps
        chunks, not whole texts: the text is rebuilt by placing each chunk at its character
        offsets (gaps the splitter dropped become spaces), so chunk offsets index into it."""
        store = self.index.store
        get = getattr(store, "get_document", None)
        doc = get(source) if callable(get) else None
        if doc is None:
            return None
        chunks: list[Chunk] = []
        while True:
            ids = [chunk_key(doc.source, i) for i in range(len(chunks), len(chunks) + 64)]
            try:
                got = store.get_chunks(ids)
            except KeyError:
                got = []
                for cid in ids:
                    try:
                        got += store.get_chunks([cid])
                    except KeyError:
                        break
            chunks += got
            if len(got) < len(ids):
                break
        text = [" "] * max((c.end for c in chunks), default=0)
        for c in chunks:
            text[c.start:c.end] = c.text
        return {"source": doc.source, "title": doc.title, "text": "".join(text)}

    # -- writing (called only from the service's writer thread) -------------------------------
    def writer_index(self) -> Index:
        """The ``Index`` ingests go through: the served one, or (``ingest_nice`` set) one on
        the same store whose document encodes run in the low-priority child process."""
        idx = self.index
        if self.ingest_nice is None or not idx.embedder_rebuildable:
            return idx
        if self._writer is None:
            self._child = ProcessEmbedder(idx.embedder, idx.embedder_factory,
                                          nice=self.ingest_nice)
            self._writer = Index(idx.location, store=idx.store, embedder=self._child,
                                 embedder_factory=idx.embedder_factory,
                                 chunking=idx.chunking if idx.chunking_explicit else None)
        return self._writer

    def close(self) -> None:
        """Stop the embedding child process, if one runs, and the model threads."""
        if self._child is not None:
            self._child.close()
        self._models.close()

    def ingest(self, sources: Sequence[str], *, allow_hosts: Sequence[str] = (),
               on_progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
        """Ingest files/URLs into the index (one transaction); the report as JSON.

        ``on_progress(done_chunks, total_chunks)`` after each embedded batch; ``allow_hosts``:
        URL hosts / CIDRs exempt from the SSRF guard.
        """
        rep = self.writer_index().ingest(list(sources), on_progress=on_progress,
                                         allow_hosts=list(allow_hosts))
        return {"added": rep.added, "updated": rep.updated, "unchanged": rep.unchanged,
                "removed": rep.removed, "chunks": rep.chunks,
                "failed": [{"source": s, "reason": r} for s, r in rep.failed],
                "skipped": [{"source": s, "reason": r} for s, r in rep.skipped],
                "seconds": rep.seconds, "chunks_per_second": rep.chunks_per_second}

    def crawl(self, seeds: Sequence[str], *, allow_hosts: Sequence[str] = (),
              **options: Any) -> dict[str, Any]:
        """Crawl ``seeds`` into the index (:meth:`aspectrag.index.Index.crawl`: polite,
        de-duplicated, resumable); the crawl report as JSON."""
        rep = self.writer_index().crawl(list(seeds), allow_hosts=tuple(allow_hosts),
                                        progress=False, **options)
        return jsonable(rep.to_dict())

    def remove(self, source: str) -> int:
        """Delete the document(s) of ``source``; returns how many."""
        return self.index.remove(source)


def jsonable(x: Any) -> Any:
    """``x`` with numpy scalars/arrays and tuples turned into JSON types."""
    if isinstance(x, Mapping):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


def chunk_json(c: Chunk) -> dict[str, Any]:
    """A chunk's fields for the API, plus ``location`` and ``link`` (the URL for web sources)."""
    return {"chunk_id": c.chunk_id, "doc_id": c.doc_id, "source": c.source, "title": c.title,
            "location": c.location, "page": c.page, "heading": c.heading, "start": c.start,
            "end": c.end, "text": c.text,
            "link": c.source if c.source.startswith(("http://", "https://")) else None}


def hit_json(h: Hit) -> dict[str, Any]:
    """``{"rank", "score", chunk fields..., "provenance"}``."""
    d = hit_fields(h)
    d["provenance"] = jsonable(h.provenance)
    return d


def hit_fields(h: Hit) -> dict[str, Any]:
    """:func:`hit_json` with ``provenance`` as the retriever left it (numpy scalars, tuples,
    non-string keys): for an encoder that takes those, as ``orjson`` with
    ``OPT_SERIALIZE_NUMPY | OPT_NON_STR_KEYS`` does (same JSON, no walk over every value)."""
    return {"rank": h.rank, "score": float(h.score), **chunk_json(h.chunk),
            "provenance": h.provenance}


def citation_json(c: Citation) -> dict[str, Any]:
    """``{"n", "quote", chunk fields...}``: ``quote`` is the cited text, ``text`` the passage."""
    return {"n": c.n, "quote": c.text, **chunk_json(c.chunk)}


def answer_json(a: Answer) -> dict[str, Any]:
    """``{"answer", "mode", "citations", extras...}``."""
    d: dict[str, Any] = jsonable(a.extras)
    d.update({"answer": a.answer, "mode": a.mode,
              "citations": [citation_json(c) for c in a.citations]})
    return d



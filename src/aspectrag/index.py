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

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aspectrag.config import ChunkingConfig, default_index_path
from aspectrag.embed.base import Embedder
from aspectrag.generate.base import Generator
from aspectrag.ingest.pipeline import IngestReport, check_embedder, make_splitter
from aspectrag.ingest.pipeline import ingest as _ingest
from aspectrag.ingest.pipeline import remove as _remove
from aspectrag.retrieve.base import Retriever
from aspectrag.store.base import Store
from aspectrag.types import Answer, Document, Hit

if TYPE_CHECKING:
    from aspectrag.ingest.crawl.report import CrawlReport

DEFAULT_RETRIEVER = "hybrid"


class Index:
    """A document index in one folder (default ``ASPECTRAG_INDEX`` or ``./.aspectrag``).

    Args:
        path: index folder (created on first ingest).
        embedder: embedder to use (default: the bundled all-MiniLM-L6-v2); must match the one
            that built the index.
        store: a ready :class:`~aspectrag.store.base.Store` (default: SQLite store in ``path``).
        chunking: chunk size / overlap in embedder tokens.

    Raises:
        aspectrag.errors.IndexMismatchError: on ingest/search if the index was built with another
            embedder.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        embedder: Embedder | None = None,
        store: Store | None = None,
        chunking: ChunkingConfig | None = None,
    ) -> None:
        self.path = Path(path) if path is not None else default_index_path()
        self._embedder = embedder
        self._store = store
        self.chunking = chunking or ChunkingConfig()

    @cached_property
    def store(self) -> Store:
        if self._store is not None:
            return self._store
        from aspectrag.store.factory import build_store

        return build_store(self.path)

    @cached_property
    def embedder(self) -> Embedder:
        if self._embedder is not None:
            return self._embedder
        from aspectrag.embed.factory import build_embedder

        heads = None  # an existing index keeps its layout (with or without per-head vectors)
        if self.store.stats()["chunks"]:
            heads = self.store.get_meta("multihead.config") is not None
        return build_embedder(recorded=self.store.get_meta("embedder"), heads=heads)

    def ingest(self, sources: Sequence[str | Path], *, glob: str | None = None,
               progress: bool = False, allow_hosts: Sequence[str] = (),
               documents: Sequence[Document] = ()) -> IngestReport:
        """Ingest files, folders and URLs (see :func:`aspectrag.ingest.pipeline.ingest`);
        ``allow_hosts``: hosts / CIDRs the SSRF guard lets through; ``documents``: already
        loaded documents ingested along."""
        return _ingest(self.store, self.embedder, [str(s) for s in sources], glob=glob,
                       splitter=make_splitter(self.embedder, self.chunking), progress=progress,
                       allow_hosts=allow_hosts, documents=documents)

    def crawl(self, seeds: Sequence[str], **options: Any) -> CrawlReport:
        """Crawl web pages from ``seeds`` into this index (see
        :func:`aspectrag.ingest.crawl.crawl` for the options); returns a ``CrawlReport``."""
        from aspectrag.ingest.crawl import crawl

        return crawl(self, seeds, **options)

    def remove(self, source: str | Path) -> int:
        """Delete a document (or every document under a folder / in a corpus file).
        Returns the number of documents removed."""
        src = str(source)
        if not src.startswith(("http://", "https://")) and Path(src).exists():
            src = str(Path(src).resolve())
        return _remove(self.store, src)

    def retriever(self, name: str = DEFAULT_RETRIEVER, **options: Any) -> Retriever:
        """Build a retriever by name (``bm25``, ``dense``, ``hybrid``, ...) over this index."""
        from aspectrag.retrieve.factory import build_retriever

        check_embedder(self.store, self.embedder)
        return build_retriever(name, self.store, self.embedder, **options)

    def search(self, query: str, k: int = 10, *, retriever: str | Retriever = DEFAULT_RETRIEVER,
               sources: Sequence[str] | None = None, **options: Any) -> list[Hit]:
        """Top-``k`` chunks for ``query``; ``sources`` restricts to files/folders/URLs."""
        r = self.retriever(retriever, **options) if isinstance(retriever, str) else retriever
        return r.retrieve(query, k, _resolve_sources(sources))

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
        retriever (e.g. ``weight`` for hybrid)."""
        hits = self.search(question, k, retriever=retriever, sources=sources, **options)
        return self.generator(llm, decoding=decoding).generate(question, hits)


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

"""Core data types shared by every stage of the pipeline (ingest -> store -> retrieve -> generate).

Offsets are always *character* offsets into ``Document.text`` (Python ``str`` indices).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Section:
    """A span of a document's text that shares one page number and/or heading.

    ``start``/``end`` are character offsets into ``Document.text`` (end exclusive).
    ``page`` is 1-based (PDF pages); ``heading`` is the nearest heading above the span.
    """

    start: int
    end: int
    page: int | None = None
    heading: str | None = None


@dataclass(slots=True)
class Document:
    """One loaded source document, before chunking.

    Attributes:
        doc_id: stable identifier (for files the resolved path or URL; for BEIR corpora the ``_id``).
        source: where it came from: absolute file path, URL, or ``corpus.jsonl#<_id>``.
        title: document title ('' if unknown).
        text: the extracted plain text (main content only for HTML).
        sections: page / heading spans over ``text`` (may be empty).
        fingerprint: hex digest of the raw input bytes; equal fingerprints mean unchanged input.
        metadata: free-form JSON-serialisable extras (e.g. content type, BEIR fields).
    """

    doc_id: str
    source: str
    title: str
    text: str
    sections: list[Section] = field(default_factory=list)
    fingerprint: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Chunk:
    """A passage of a document: the unit that is indexed, retrieved and cited.

    Attributes:
        chunk_id: stable id ``"<doc_id>#<index>"``.
        doc_id, source, title: copied from the parent ``Document``.
        index: 0-based position of the chunk inside its document.
        text: the chunk text (a slice of ``Document.text``: ``doc.text[start:end]``).
        start, end: character offsets of the chunk in ``Document.text`` (end exclusive).
        page: 1-based page number of the chunk start (PDFs), else None.
        heading: nearest heading above the chunk start, if known.
    """

    chunk_id: str
    doc_id: str
    source: str
    title: str
    index: int
    text: str
    start: int
    end: int
    page: int | None = None
    heading: str | None = None

    @property
    def location(self) -> str:
        """Human-readable location: ``"p. 3"``, ``"§ Heading"``, and character offsets."""
        parts: list[str] = []
        if self.page is not None:
            parts.append(f"p. {self.page}")
        if self.heading:
            parts.append(f"§ {self.heading}")
        parts.append(f"chars {self.start}-{self.end}")
        return ", ".join(parts)

    def index_text(self) -> str:
        """Text that is embedded and BM25-indexed: title and heading prepended to the chunk
        ("contextual chunk header"), so a chunk keeps the context its document gives it."""
        head = " — ".join(p for p in (self.title, self.heading) if p)
        return f"{head}\n{self.text}" if head else self.text


@dataclass(slots=True)
class Hit:
    """One retrieved chunk.

    Attributes:
        chunk: the retrieved chunk.
        score: retriever-specific relevance score (higher is better; not comparable across retrievers).
        rank: 1-based rank in the result list.
        provenance: how the hit was found, e.g. ``{"bm25": 3, "dense": 1}`` (per-list 1-based ranks)
            or, for multi-query retrieval, ``{"queries": [{"query": q, "rank": r}, ...]}``.
    """

    chunk: Chunk
    score: float
    rank: int
    provenance: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class SearchResult:
    """The hits of one search together with its own diagnostics (nothing is kept on the
    retriever, so concurrent searches never see each other's queries or timings).

    Attributes:
        hits: the ranked hits (best first, ranks 1..k).
        queries: the queries searched, ``[{"query": str, "weight": float, "kind": str}]``
            (``kind``: the query's origin, e.g. ``"original"``, ``"sentences"``, ``"llm"``);
            ``[]`` for single-query retrievers.
        timings: wall-clock seconds by stage, e.g. ``{"first_stage": .., "rerank": ..}``.
        info: retriever-specific facts (rerank cache statistics, head statistics source, ...).
    """

    hits: list[Hit]
    queries: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: hits as ``{rank, score, chunk_id, doc_id, source, location, text,
        provenance}`` plus ``queries``, ``timings`` and ``info``."""
        return {
            "hits": [
                {
                    "rank": h.rank,
                    "score": h.score,
                    "chunk_id": h.chunk.chunk_id,
                    "doc_id": h.chunk.doc_id,
                    "source": h.chunk.source,
                    "location": h.chunk.location,
                    "text": h.chunk.text,
                    "provenance": h.provenance,
                }
                for h in self.hits
            ],
            "queries": [dict(q) for q in self.queries],
            "timings": dict(self.timings),
            "info": dict(self.info),
        }


@dataclass(slots=True)
class Citation:
    """A numbered citation ``[n]`` in an answer, pointing at the chunk it came from."""

    n: int
    chunk: Chunk
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "source": self.chunk.source,
            "chunk_id": self.chunk.chunk_id,
            "location": self.chunk.location,
            "text": self.text,
        }


@dataclass(slots=True)
class Answer:
    """A generated or extractive answer with the citations it actually uses.

    ``mode`` is ``"llm"`` or ``"extractive"``; ``extras`` holds backend details (e.g. posterior
    weights per document for RAG-Token / RAG-Sequence, removed invalid citations).
    """

    answer: str
    mode: str
    citations: list[Citation]
    extras: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "answer": self.answer,
            "mode": self.mode,
            "citations": [c.to_dict() for c in self.citations],
        }
        d.update(self.extras)
        return d

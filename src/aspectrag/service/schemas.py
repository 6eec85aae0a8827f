"""Request bodies of the HTTP API (pydantic models; they make the OpenAPI document)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from aspectrag.service.engine import SearchSpec


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SearchRequest(_Body):
    """``POST /v1/search``."""

    query: str = Field(min_length=1, max_length=4000, description="The search query.")
    k: int = Field(10, ge=1, le=100, description="Number of hits.")
    retriever: str = Field("auto", description="auto | bm25 | dense | hybrid | multiquery | multihead")
    base: str | None = Field(None, description="multiquery: the retriever it wraps (default hybrid)")
    sources: list[str] | None = Field(None, description="Only these sources (file, folder, URL).")
    rerank: str | None = Field(None, description="late-interaction | cross-encoder | bi-encoder")
    rerank_depth: int = Field(100, ge=1, le=1000)
    options: dict[str, Any] = Field(default_factory=dict,
                                    description="Retriever options: fusion, weight, depth, queries, "
                                                "keep_original, original_weight, max_queries.")

    def spec(self) -> SearchSpec:
        return SearchSpec(self.retriever, self.base, self.rerank, self.rerank_depth,
                          tuple(sorted((k, _hashable(v)) for k, v in self.options.items())))


class AskRequest(SearchRequest):
    """``POST /v1/ask``: a search request plus the generator and ``stream``."""

    query: str = Field("", max_length=4000, description="Alias of question.")
    question: str = Field("", max_length=4000, description="The question.")
    k: int = Field(5, ge=1, le=100)
    llm: str | None = Field(None, description="extractive | openai:MODEL (default: the server's)")
    decoding: Literal["concat", "rag-token", "rag-sequence"] = "concat"
    stream: bool = Field(False, description="Server-Sent Events: queries, hits, token..., "
                                            "citations, done (or error).")


class TextDocument(_Body):
    """``POST /v1/documents`` with a JSON text document."""

    text: str = Field(min_length=1)
    title: str = ""
    source: str = Field(min_length=1, max_length=200,
                        description="A name for the document (its source in the index).")


class UrlDocument(_Body):
    """``POST /v1/documents`` with a URL to fetch."""

    url: str = Field(min_length=8, max_length=2000)


class CrawlDocuments(_Body):
    """``POST /v1/documents`` with web pages to crawl (``aspectrag crawl``'s options)."""

    crawl: list[str] = Field(min_length=1, max_length=20, description="Seed URLs.")
    max_pages: int = Field(100, ge=1, le=10_000)
    max_depth: int = Field(3, ge=0, le=20)
    scope: str = Field("host", max_length=200, description="host | prefix | a regex")
    sitemap: bool = False
    recrawl: bool = False


class ChatMessage(BaseModel):
    """One message of an OpenAI chat request (text content or text parts)."""

    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return " ".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")
        return self.content or ""


class ChatRequest(BaseModel):
    """``POST /v1/chat/completions`` (OpenAI-compatible; unknown fields are ignored)."""

    model_config = ConfigDict(extra="allow")
    model: str = "aspectrag"
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    k: int = Field(5, ge=1, le=100)


def _hashable(v: Any) -> Any:
    if isinstance(v, dict):
        return tuple(sorted((k, _hashable(x)) for k, x in v.items()))
    if isinstance(v, list):
        return tuple(_hashable(x) for x in v)
    return v

"""Query generators for multi-query retrieval: LLM (OpenAI-compatible, local HF), replay, rules."""

from aspectrag.retrieve.query_gen.base import QueryGenerator, SubQuery
from aspectrag.retrieve.query_gen.parse import clean_query, parse_queries

__all__ = ["QueryGenerator", "SubQuery", "clean_query", "parse_queries"]

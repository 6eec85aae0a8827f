"""Builds a query generator from a spec string: the one place mapping names to generators.

Specs: ``rules`` (optionally ``rules:paragraphs+sentences+keywords``), ``openai:MODEL``
(endpoint from the ``llm`` settings: ``ASPECTRAG_LLM_BASE_URL`` / ``ASPECTRAG_LLM_API_KEY`` or
the config files), ``hf:PATH`` (local language-model folder), ``replay:PATH`` (recorded
queries), ``none`` (no generation: the question only). ``auto`` (default): the configured
OpenAI-compatible LLM when ``llm.configured`` (base URL and model set, from the environment or
the config files: the rule ``ask`` uses too), else ``rules``.
"""

from __future__ import annotations

from typing import Any

from aspectrag.errors import ConfigError
from aspectrag.retrieve.base import Retriever
from aspectrag.retrieve.query_gen.base import QueryGenerator


def build_query_generator(
    spec: str | None = "auto",
    *,
    feedback: Retriever | None = None,
    n: int = 3,
    **llm_options: Any,
) -> QueryGenerator | None:
    """The generator for ``spec`` (see the module docstring); None for ``none``.

    Args:
        feedback: retriever for rule-based pseudo-relevance feedback (BM25 over the index).
        n: number of LLM variants (LLM generators; a cap for replay).
        llm_options: ``template``, ``temperature``, ``timeout`` ... for LLM generators.

    Raises:
        ConfigError: unknown spec, or an LLM spec without the settings it needs.
        aspectrag.errors.LoadError: unreadable replay file.
    """
    spec = (spec or "auto").strip()
    kind, _, arg = spec.partition(":")
    if kind == "auto":
        from aspectrag.llm import resolve_llm

        cfg = resolve_llm()
        if cfg.configured:
            kind, arg = "openai", cfg.model or ""
        else:
            kind, arg = "rules", ""
    if kind == "none":
        return None
    if kind == "rules":
        from aspectrag.retrieve.query_gen.rules import DEFAULT_PIECES, RuleBasedQueryGenerator

        pieces = [p for p in arg.split("+") if p] if arg else list(DEFAULT_PIECES)
        try:
            return RuleBasedQueryGenerator(pieces, feedback=feedback)
        except ValueError as e:
            raise ConfigError(f"query generator {spec!r}: {e}") from e
    if kind == "replay":
        from aspectrag.retrieve.query_gen.replay import ReplayQueryGenerator

        if not arg:
            raise ConfigError("query generator 'replay:PATH' needs the recording's path")
        return ReplayQueryGenerator(arg)
    if kind == "openai":
        from aspectrag.llm import resolve_llm
        from aspectrag.retrieve.query_gen.llm import OpenAIQueryGenerator

        cfg = resolve_llm(arg or None)
        if not cfg.model:
            raise ConfigError(
                "query generator 'openai' needs a model: openai:MODEL or ASPECTRAG_LLM_MODEL"
            )
        return OpenAIQueryGenerator(
            cfg.model, base_url=cfg.base_url, api_key=cfg.api_key, n=n, **llm_options
        )
    if kind == "hf":
        from aspectrag.retrieve.query_gen.llm import HFQueryGenerator

        if not arg:
            raise ConfigError("query generator 'hf:PATH' needs a model folder")
        return HFQueryGenerator(arg, n=n, **llm_options)
    raise ConfigError(
        f"unknown query generator {spec!r}; use auto, rules[:piece+piece], openai:MODEL, "
        "hf:PATH, replay:PATH or none"
    )

"""OpenAI-compatible endpoints (OpenAI, vLLM, llama.cpp server, Ollama...): which endpoint to
use (``resolve_llm``: explicit values > ``llm`` settings) and the one ``openai.OpenAI`` client
construction (``openai_client``; needs the ``llm`` extra)."""

from __future__ import annotations

from typing import Any

from aspectrag.extras import optional_import
from aspectrag.settings import LLMSettings, get_settings

NO_KEY = "not-needed"
"""Sent as the API key when none is configured (local servers accept any)."""


def resolve_llm(
    model: str | None = None,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
    context_tokens: int | None = None,
    settings: LLMSettings | None = None,
) -> LLMSettings:
    """The LLM endpoint: each argument given (not None) wins over ``settings`` (default
    ``get_settings().llm``: environment > config files > defaults). ``ask`` and
    ``--query-generator auto`` both resolve the endpoint here.

    Raises:
        ConfigError: invalid settings (from ``get_settings``).
    """
    base = settings if settings is not None else get_settings().llm
    given = {
        "model": model or None,
        "base_url": base_url or None,
        "api_key": api_key or None,
        "timeout": timeout,
        "max_retries": max_retries,
        "context_tokens": context_tokens,
    }
    from dataclasses import replace

    return replace(base, **{k: v for k, v in given.items() if v is not None})


def openai_client(
    *,
    base_url: str | None,
    api_key: str | None,
    timeout: float,
    max_retries: int,
) -> Any:
    """An ``openai.OpenAI`` client.

    Args:
        base_url: endpoint root, e.g. ``http://127.0.0.1:8000/v1`` (None: api.openai.com).
        api_key: bearer token (None: ``NO_KEY``).
        timeout: seconds per HTTP request.
        max_retries: retries with the client's exponential backoff (0.5 s doubling, capped at
            8 s, honouring ``Retry-After``) on connection errors, 408, 409, 429 and 5xx.

    Raises:
        aspectrag.extras.MissingExtraError: ``openai`` is not installed (extra ``llm``).
    """
    openai = optional_import("openai", "an OpenAI-compatible LLM")
    return openai.OpenAI(
        base_url=base_url, api_key=api_key or NO_KEY, timeout=timeout, max_retries=max_retries
    )

"""Build a ``Generator`` from a spec string (CLI ``--llm``) and the index's embedder."""

from __future__ import annotations

from typing import Any, Literal

from aspectrag.embed.base import Embedder
from aspectrag.errors import ConfigError
from aspectrag.generate.base import Generator

Decoding = Literal["concat", "rag-token", "rag-sequence"]
DECODINGS: tuple[str, ...] = ("concat", "rag-token", "rag-sequence")


def build_generator(
    spec: str | None,
    embedder: Embedder | None = None,
    *,
    decoding: str = "concat",
    **options: Any,
) -> Generator:
    """Generator for ``spec``.

    Specs:
        None: ``openai`` if an LLM endpoint is configured (``llm`` settings: base URL and model,
            from the environment or the config files; the same rule as
            ``--query-generator auto``), else extractive.
        "extractive": ``ExtractiveGenerator(embedder)``.
        "openai" / "openai:MODEL": OpenAI-compatible chat API (model from the spec or the
            ``llm.model`` setting; base URL and key from ``options`` or the settings).
        "openai-completions:MODEL": the same over the completions API; with
            ``decoding="rag-token"`` the top-logprobs RAG-Token approximation.
        "hf:PATH": local Hugging Face causal or seq2seq model folder.

    Args:
        spec: see above.
        embedder: needed by the extractive answerer.
        decoding: "concat" (all passages in one prompt; default), "rag-token" or
            "rag-sequence" (Lewis et al. 2020; local HF models, and rag-token also over an
            OpenAI-compatible completions endpoint that returns top logprobs).
        options: passed to the backend's constructor (e.g. ``timeout``, ``max_tokens``).

    Raises:
        ConfigError: unknown spec or decoding, a decoding the backend cannot do, or no embedder
            for the extractive answerer.
    """
    from aspectrag.settings import get_settings

    if decoding not in DECODINGS:
        raise ConfigError(f"--decoding {decoding!r}: expected one of {', '.join(DECODINGS)}")
    if spec is None:
        spec = "openai" if get_settings().llm.configured else "extractive"
    kind, _, arg = spec.partition(":")
    if kind == "extractive":
        if decoding != "concat":
            raise ConfigError(f"--decoding {decoding} needs an LLM (--llm hf:PATH or openai:MODEL)")
        if embedder is None:
            raise ConfigError("the extractive answerer needs the index's embedder")
        from aspectrag.generate.extractive import ExtractiveGenerator

        return ExtractiveGenerator(embedder, **options)
    if kind in ("openai", "openai-completions"):
        api = "chat" if kind == "openai" else "completions"
        if decoding == "rag-token":
            from aspectrag.generate.openai_ragtoken import OpenAIRagTokenGenerator

            return OpenAIRagTokenGenerator(arg or None, **options)
        if decoding != "concat":
            raise ConfigError(
                f"--decoding {decoding} needs per-token scores under every passage: use "
                "--llm hf:PATH (or rag-token over an OpenAI-compatible completions endpoint)"
            )
        from aspectrag.generate.openai_chat import OpenAIGenerator

        return OpenAIGenerator(arg or None, api=api, **options)
    if kind == "hf":
        if not arg:
            raise ConfigError("--llm hf:PATH needs the folder of a Hugging Face model")
        if decoding == "concat":
            from aspectrag.generate.hf import HFGenerator

            return HFGenerator(arg, **options)
        from aspectrag.generate.rag import RagGenerator

        return RagGenerator(arg, decoding=decoding, **options)
    raise ConfigError(
        f"--llm {spec!r}: expected extractive, openai[:MODEL], openai-completions:MODEL or hf:PATH"
    )

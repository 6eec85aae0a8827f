"""The one LLM client layer, shared by generation (``aspectrag.generate``) and query rewriting
(``aspectrag.retrieve.query_gen``): an OpenAI-compatible client (``endpoint``) and a local
Hugging Face language-model loader (``local``).

Layer: imports only ``aspectrag.settings``, ``aspectrag.errors``, ``aspectrag.extras`` and
``aspectrag.config`` (thread setup), so that both retrieve/ and generate/ may import it.
"""

from aspectrag.llm.endpoint import NO_KEY, openai_client, resolve_llm
from aspectrag.llm.local import check_model_folder, load_model, load_tokenizer, pick_device

__all__ = [
    "NO_KEY",
    "check_model_folder",
    "load_model",
    "load_tokenizer",
    "openai_client",
    "pick_device",
    "resolve_llm",
]

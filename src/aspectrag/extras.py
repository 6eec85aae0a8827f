"""Optional dependencies (txtai's pattern): heavy features live in pip extras, imported only
when the feature is used; a missing one raises ``MissingExtraError`` naming the extra.

| extra    | packages               | feature                                        |
|----------|------------------------|------------------------------------------------|
| llm      | openai                 | OpenAI-compatible LLM answers / query rewriting |
| ann      | faiss-cpu              | HNSW search on large indexes (else exact)       |
| plots    | matplotlib             | ``heads --plot``, MRAG report figures           |
| html     | trafilatura, lxml      | HTML files and web pages                        |
| pdf      | pypdf                  | PDF files                                       |
| eval     | ranx                   | BEIR / dev-set metrics                          |
| onnx     | onnxruntime, onnx      | ONNX Runtime embedder (also base dependencies)  |
| qdrant   | qdrant-client          | the Qdrant store (``qdrant://``, ``qdrant+local://``) |
| ray      | ray[data]              | ``ingest --engine ray`` (Ray Data ingestion)    |
| all      | all of the above       |                                                 |
"""

from __future__ import annotations

import importlib
from types import ModuleType

from aspectrag.errors import ConfigError

EXTRAS: dict[str, tuple[str, str]] = {
    # import name -> (extra, pip package)
    "openai": ("llm", "openai"),
    "faiss": ("ann", "faiss-cpu"),
    "matplotlib": ("plots", "matplotlib"),
    "trafilatura": ("html", "trafilatura"),
    "lxml": ("html", "lxml"),
    "pypdf": ("pdf", "pypdf"),
    "ranx": ("eval", "ranx"),
    "onnxruntime": ("onnx", "onnxruntime"),
    "onnx": ("onnx", "onnx"),
    "ray": ("ray", "ray[data]"),
    "courlan": ("crawl", "courlan"),
    "protego": ("crawl", "protego"),
    "datasketch": ("crawl", "datasketch"),
    "docx": ("office", "python-docx"),
    "pptx": ("office", "python-pptx"),
    "openpyxl": ("office", "openpyxl"),
    "ebooklib": ("office", "ebooklib"),
    "qdrant_client": ("qdrant", "qdrant-client"),
}


class MissingExtraError(ConfigError):
    """An optional package is not installed; the message names the pip extra to install.

    Attributes:
        module: the import name; extra: the aspectrag extra that provides it.
    """

    def __init__(self, module: str, feature: str) -> None:
        extra, package = EXTRAS[module.split(".")[0]]
        super().__init__(
            f"{feature} needs the optional package {package}: "
            f"install aspectrag[{extra}] (pip install 'aspectrag[{extra}]')"
        )
        self.module = module
        self.extra = extra


def optional_import(module: str, feature: str) -> ModuleType:
    """Import ``module`` (a key of ``EXTRAS`` or a submodule of one).

    Args:
        feature: what needs it, for the message (e.g. "reading PDF files").

    Raises:
        MissingExtraError: the package is not installed.
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingExtraError(module, feature) from e


def available(module: str) -> bool:
    """Whether the optional ``module`` can be imported (imports it)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True

"""The layer order of aspectrag's modules: each module imports only from its own layer or
lower ones (checked, with the absence of import cycles, by ``tests/test_layers.py``, which
reads every module's imports, function-level ones included, with ``ast``).

A module belongs to the layer of the longest prefix in :data:`LAYERS` that names it or one of
its packages (the bare ``aspectrag`` names the package root only). The pipeline reads bottom-up: documents are embedded, stored, ingested,
retrieved, reranked, answered, evaluated; facades and command lines sit on top.

- ``foundation``: data types, errors, configuration and settings: imported by everyone.
- ``llm``: the one OpenAI-compatible client construction and local language-model loader,
  shared by generation and query rewriting.
- ``embed``: text -> named vectors (the ``Embedder`` protocol, Hugging Face models, pooling,
  LoRA adapter loading).
- ``store``: the ``Store`` protocol and its backends.
- ``ingest``: loaders, splitters, the ingest pipeline and its hooks (never imports retrieval
  or multi-head: the ``Index`` facade hands it the multi-head statistics as an ingest hook).
- ``retrieve``: the ``Retriever`` protocol, BM25 / dense / hybrid, multi-query and query
  generation.
- ``rerank``: second stages over any retriever (depend on the ``TransformerEmbedder``
  protocol, not on a concrete embedder).
- ``multihead``: Multi-Head RAG in one package: layout, model surgery, the embedder, head
  statistics (an ingest hook), the voting retriever. It needs embed, store and retrieve.
- ``runtimes``: other model runtimes of the embedders (ONNX Runtime, ``embed/onnx*.py``): they
  subclass the Hugging Face and multi-head embedders and export the per-head outputs, so they
  sit above ``multihead``.
- ``factories``: composition roots that map names to implementations of the layers below,
  the multi-head ones included (``embed.factory`` builds the multi-head embedder by default,
  ``retrieve.factory`` lists every retriever).
- ``generate``: answers with citations from hits.
- ``facade``: the ``Index`` Python API (ingest with hooks, retriever by name, search, ask).
- ``evaluate``: benchmarks over retrievers (BEIR, MRAG; indexes built through ``Index``) and
  the shared metrics.
- ``train``: fine-tuning the embedder (uses the shared metrics for its dev set).
- ``edge``: command line, service, HTTP client, the package root: the process edge, where
  process-wide settings (threads) are applied.
"""

from __future__ import annotations

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundation", ("aspectrag.types", "aspectrag.errors", "aspectrag.config",
                    "aspectrag.settings", "aspectrag.layers", "aspectrag.extras",
                    "aspectrag.progress", "aspectrag.validate")),
    ("llm", ("aspectrag.llm",)),
    ("embed", ("aspectrag.embed",)),
    ("store", ("aspectrag.store",)),
    ("ingest", ("aspectrag.ingest",)),
    ("retrieve", ("aspectrag.retrieve",)),
    ("rerank", ("aspectrag.rerank",)),
    ("multihead", ("aspectrag.multihead",)),
    ("runtimes", ("aspectrag.embed.onnx", "aspectrag.embed.onnx_export")),
    ("factories", ("aspectrag.embed.factory", "aspectrag.retrieve.factory")),
    ("generate", ("aspectrag.generate",)),
    ("facade", ("aspectrag.index",)),
    ("evaluate", ("aspectrag.evaluate",)),
    ("train", ("aspectrag.train",)),
    ("edge", ("aspectrag.cli", "aspectrag.service", "aspectrag.client", "aspectrag.adapters",
              "aspectrag")),
)
"""``(layer name, module prefixes)`` from the lowest layer to the highest."""


def layer_of(module: str) -> int:
    """Index in :data:`LAYERS` of the layer of ``module`` (a dotted name), by longest prefix.

    Raises:
        KeyError: the module is outside every listed prefix (add it to the table).
    """
    best, depth = -1, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            inside = module == p or ("." in p and module.startswith(p + "."))
            if inside and p.count(".") > depth:
                best, depth = i, p.count(".")
    if best < 0:
        raise KeyError(f"{module}: in no layer of aspectrag.layers.LAYERS")
    return best

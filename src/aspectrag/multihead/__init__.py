"""Multi-Head RAG (Besta et al. 2024, arXiv 2406.05085) in one package.

- ``layout``: what the head spaces are (config, space names, stored vector layout, query vectors);
- ``model``: model surgery (where the per-head attention context is tapped);
- ``embedder``: :class:`~aspectrag.multihead.embedder.MultiHeadEmbedder`, standard + per-head
  vectors from one forward pass;
- ``stats``: head statistics kept exact at ingest (an ingest hook) and read at query time;
- ``retriever``: per-head voting retrieval.

Layering: this package sits above ``retrieve`` and ``rerank`` and below the factories and
``evaluate`` (see ``aspectrag/layers.py``).
"""

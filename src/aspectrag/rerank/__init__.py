"""Second-stage reranking of a first stage's top-N candidates (two-stage retrieval).

- ``base``: the ``Reranker`` protocol and ``RerankingRetriever`` (first stage + reranker).
- ``cross_encoder``: query and chunk encoded together by a sequence-classification model.
- ``late_interaction``: ColBERT-style MaxSim over the embedder's token vectors.
- ``bi_encoder``: cosine of separately encoded query and full chunk text.
- ``tokens``: windowed token vectors of a ``TransformerEmbedder`` (``embed/base.py``);
  ``cache``: token vectors on disk.
- ``factory``: ``build_reranker(name, ...)``.
"""

from aspectrag.rerank.base import Reranker, RerankingRetriever
from aspectrag.rerank.factory import RERANKERS, build_reranker, with_reranker

__all__ = ["RERANKERS", "Reranker", "RerankingRetriever", "build_reranker", "with_reranker"]

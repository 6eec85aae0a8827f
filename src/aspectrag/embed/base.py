"""The ``Embedder`` protocol: text -> named vectors.

An embedder returns a mapping of *named vector spaces* (as Qdrant calls them): at least
``"dense"`` (the model's standard sentence embedding), optionally more (the multi-head
embedder adds one space per attention head). Every array is ``float32`` with one row per text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

TextKind = Literal["query", "document"]


@runtime_checkable
class Embedder(Protocol):
    """Encodes texts into named vector spaces.

    Attributes:
        name: identity string recorded in the index (model path/name plus adapter, pooling...);
            an index refuses vectors from an embedder with a different name.
        dim: size of the ``"dense"`` vectors.
        max_tokens: the model's input limit in tokens (longer inputs are truncated).
    """

    name: str
    dim: int
    max_tokens: int

    def encode(
        self, texts: Sequence[str], *, kind: TextKind = "document", show_progress: bool = False
    ) -> Mapping[str, np.ndarray]:
        """Encode ``texts``; returns ``{space: float32 array of shape (len(texts), d_space)}``
        with at least the ``"dense"`` space, L2-normalised for inner-product search."""
        ...

    def count_tokens(self, text: str) -> int:
        """Number of model tokens in ``text`` (without special tokens)."""
        ...


@runtime_checkable
class TransformerEmbedder(Embedder, Protocol):
    """An embedder that also exposes its Hugging Face tokenizer and model (a transformers
    encoder whose ``last_hidden_state`` gives token vectors): what late interaction and
    full-text bi-encoder rescoring need (``rerank/tokens.py``). ``HFEmbedder`` and the
    multi-head embedder implement it.

    Attributes:
        tokenizer: a fast ``transformers`` tokenizer (loaded on first use).
        model: the ``transformers`` model (loaded on first use), in eval mode on ``device``.
        device: torch device string.
        batch_size: texts per forward pass.

    Note: ``isinstance(x, TransformerEmbedder)`` reads these attributes, which loads the model.
    """

    tokenizer: Any
    model: Any
    device: str
    batch_size: int

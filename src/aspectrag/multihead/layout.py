"""What the multi-head vector spaces are: their config, names, stored layout and query vectors.

Method: Besta et al. 2024, "Multi-Head RAG" (arXiv 2406.05085), section 3.1 (per-head
embeddings = the last block's attention context before the output projection, one vector per
head). This module holds no model code; :mod:`aspectrag.multihead.embedder` produces the vectors.

Named vector spaces (see ``embed/base.py``):

- ``"dense"``: the model's standard sentence embedding, L2-normalised, shape ``(n, d)``;
- ``"head0"`` ... ``"head{G-1}"``: one space per head (or head group), shape ``(n, d_head + 1)``,
  holding ``[v / |v|, 1 / |v|]`` for the pooled head vector ``v``;
- ``"split0"`` ... (optional): segments of the standard embedding (Split RAG baseline).

Why the extra component: searching a head with a query ``[q, 0]`` ranks by cosine (the paper's
reference code searches each head with cosine distance), and searching it with
``[q - mu, -(q - mu) . mu]`` ranks by ``(q - mu) . (v - mu) / |v|``, i.e. by *centred* vectors
with the corpus mean ``mu`` chosen at query time. Centring each head (removing the large
component all vectors of a head share) is what makes MiniLM's heads useful for retrieval
(measured in ``benchmarks/mrag_explore.py``), and the corpus mean changes as documents come
and go: this layout lets the retriever always use the current, exactly maintained mean
(``multihead/stats.py``) without re-writing stored vectors. Dividing by ``|v|`` rather than
``|v - mu|`` measured the same retrieval quality on the MRAG Wikipedia set. The raw vector is
recoverable as ``v = x[:d_head] / x[d_head]`` (:func:`unpack_heads`).

Index meta keys: :data:`META_KEY` (the :class:`MultiHeadConfig` the head spaces were built
with) and :data:`STATS_KEY` (the head statistics, ``multihead/stats.py``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from aspectrag.embed.pooling import POOLINGS  # noqa: F401  (re-exported: the valid head poolings)
from aspectrag.errors import ConfigError

Pooling = Literal["mean", "cls", "last"]
META_KEY = "multihead.config"
"""Index meta key under which :meth:`MultiHeadConfig.to_json` is recorded."""
STATS_KEY = "multihead.stats"
"""Index meta key of the head statistics (:class:`~aspectrag.multihead.stats.HeadStats`)."""
HEAD_PREFIX = "head"


def head_space(i: int) -> str:
    """Name of the vector space of head (or head group) ``i``: ``"head{i}"``."""
    return f"{HEAD_PREFIX}{i}"


def is_head_space(name: str) -> bool:
    """True for ``"head0"``, ``"head1"``, ... (a per-head space), False for ``"dense"`` etc."""
    return name.startswith(HEAD_PREFIX) and name[len(HEAD_PREFIX):].isdigit()


def head_spaces_of(names: Iterable[str]) -> list[str]:
    """The head spaces among ``names`` in order ``head0, head1, ...`` (stops at the first gap)."""
    have = set(names)
    out: list[str] = []
    while head_space(len(out)) in have:
        out.append(head_space(len(out)))
    return out


@dataclass(slots=True)
class MultiHeadConfig:
    """What an index's head spaces were built with (recorded in the index meta).

    Attributes:
        layer: transformer block whose attention output is tapped (negative = from the end).
        pooling: per-head token pooling: ``"mean"`` (non-padding tokens), ``"cls"`` (first
            token) or ``"last"`` (last non-padding token).
        heads: number of attention heads H of the model.
        head_dim: size d_head of one head vector.
        groups: number G of head groups stored (G = H: one space per head; G < H: adjacent
            heads averaged, after grouped-query attention, Ainslie et al. 2023).
    """

    layer: int = -1
    pooling: str = "cls"
    heads: int = 12
    head_dim: int = 32
    groups: int = 12

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> MultiHeadConfig:
        """Parse :meth:`to_json` output. Raises ConfigError on malformed input."""
        try:
            return cls(**json.loads(text))
        except (TypeError, ValueError) as e:
            raise ConfigError(f"index meta {META_KEY!r} is malformed ({e}); re-ingest") from e



def group_heads(heads: np.ndarray, groups: int) -> np.ndarray:
    """Average adjacent heads into ``groups`` groups: ``(n, H, dh) -> (n, G, dh)`` float32.

    G = H returns the input; G = 1 averages all heads. Raises ConfigError if G does not divide H.
    """
    n, h, dh = heads.shape
    if groups <= 0 or h % groups:
        raise ConfigError(f"groups={groups} must divide the number of heads ({h})")
    if groups == h:
        return heads
    return heads.reshape(n, groups, h // groups, dh).mean(axis=2, dtype=np.float32)


def split_space(i: int) -> str:
    """Name of segment ``i`` of the standard embedding (Split RAG baseline): ``"split{i}"``."""
    return f"split{i}"


MIN_NORM = 1e-6
"""Head vectors shorter than this are treated as having this norm (avoids 1/0)."""


def pack_heads(v: np.ndarray) -> np.ndarray:
    """Raw head vectors ``(n, G, dh)`` -> stored layout ``(n, G, dh + 1)`` float32:
    ``[v / |v|, 1 / |v|]`` (see the module doc)."""
    norms = np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), MIN_NORM)
    return np.concatenate([v / norms, 1.0 / norms], axis=-1).astype(np.float32)


def unpack_heads(x: np.ndarray) -> np.ndarray:
    """Stored layout ``(..., dh + 1)`` -> raw head vectors ``(..., dh)`` float32."""
    return (x[..., :-1] / x[..., -1:]).astype(np.float32)


def head_queries(q: np.ndarray, centre: np.ndarray | None = None) -> np.ndarray:
    """Raw query head vectors ``(n, G, dh)`` -> search vectors ``(n, G, dh + 1)`` float32.

    Without ``centre``: ``[q / |q|, 0]``, whose inner product with a stored vector is the
    cosine. With ``centre`` ``mu`` ``(G, dh)``: ``[c, -c . mu] / |c|`` with ``c = q - mu``, whose
    inner product with ``[v / |v|, 1 / |v|]`` is ``c . (v - mu) / (|c| |v|)`` (centred cosine,
    normalised by the stored vector's raw norm).
    """
    q = np.asarray(q, dtype=np.float64)
    if centre is None:
        c, last = q, np.zeros(q.shape[:-1] + (1,))
    else:
        mu = np.asarray(centre, dtype=np.float64)[None]
        c = q - mu
        last = -(c * mu).sum(-1, keepdims=True)
    norms = np.maximum(np.linalg.norm(c, axis=-1, keepdims=True), MIN_NORM)
    return (np.concatenate([c, last], axis=-1) / norms).astype(np.float32)

"""Multi-head embeddings: the standard sentence embedding plus one vector per attention head.

Method: Besta et al. 2024, "Multi-Head RAG: Solving Multi-Aspect Problems with LLMs"
(arXiv 2406.05085), section 3.1: the per-head embeddings are the last transformer block's
multi-head attention outputs taken *before* the output projection W_o (the concatenated
per-head context vectors), split into H vectors of size d_head. The reference code taps the
input of ``o_proj`` with a forward hook and takes the last token (decoder model); for an encoder
(MiniLM: 12 heads x 32 dims) we pool each head over tokens (mean over non-padding tokens by
default, CLS or last token as settings). Both come out of ONE forward pass.

Named vector spaces returned by :meth:`MultiHeadEmbedder.encode` (see ``embed/base.py``):

- ``"dense"``: the model's standard sentence embedding, L2-normalised, shape ``(n, d)``;
- ``"head0"`` ... ``"head{G-1}"``: one space per head (or head group), shape ``(n, d_head + 1)``,
  holding ``[v / |v|, 1 / |v|]`` for the pooled head vector ``v``.

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
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from aspectrag.embed.base import TextKind
from aspectrag.embed.hf import HFEmbedder, _progress
from aspectrag.errors import ConfigError

log = logging.getLogger("aspectrag.embed")

Pooling = Literal["mean", "cls", "last"]
POOLINGS: tuple[str, ...] = ("mean", "cls", "last")
META_KEY = "multihead.config"
"""Index meta key under which :meth:`MultiHeadConfig.to_json` is recorded."""


def head_space(i: int) -> str:
    """Name of the vector space of head (or head group) ``i``: ``"head{i}"``."""
    return f"head{i}"


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


def locate_attention_output(model, layer: int):  # type: ignore[no-untyped-def]
    """The module whose *input* is the concatenated per-head context of block ``layer``.

    BERT family: ``encoder.layer[layer].attention.output.dense``; Llama/Mistral/Qwen family:
    ``layers[layer].self_attn.o_proj`` (also under ``.model`` for ``*ForCausalLM``).

    Returns:
        ``(module, family)`` with family ``"encoder"`` or ``"decoder"``.

    Raises:
        ConfigError: the architecture has neither layout (name the model and what is supported).
    """
    base = getattr(model, "base_model", model)
    for root in (base, getattr(base, "model", None)):
        if root is None:
            continue
        enc = getattr(root, "encoder", None)
        if enc is not None and hasattr(enc, "layer"):
            blocks = enc.layer
            try:
                return blocks[layer].attention.output.dense, "encoder"
            except (AttributeError, IndexError):
                pass
        blocks = getattr(root, "layers", None)
        if blocks is not None:
            try:
                return blocks[layer].self_attn.o_proj, "decoder"
            except (AttributeError, IndexError):
                pass
    raise ConfigError(
        f"{type(model).__name__}: cannot find the attention output projection of layer {layer}; "
        "supported: BERT-like encoders (encoder.layer[i].attention.output.dense) and "
        "Llama/Mistral-like decoders (layers[i].self_attn.o_proj)"
    )


def pool_tokens(x, mask, pooling: str):  # type: ignore[no-untyped-def]
    """Pool token vectors ``x`` (torch, ``(B, L, D)``) with ``mask`` (``(B, L)``, 1 = token).

    ``"mean"``: mean over tokens with mask 1; ``"cls"``: position 0; ``"last"``: the last
    position with mask 1 (works for left and right padding). Returns ``(B, D)``.
    """
    import torch

    if pooling == "mean":
        m = mask.unsqueeze(-1).to(x.dtype)
        return (x * m).sum(1) / m.sum(1).clamp(min=1e-9)
    if pooling == "cls":
        return x[:, 0]
    if pooling == "last":
        length = mask.shape[1]
        last = (length - 1) - torch.argmax(mask.flip(1).to(torch.int64), dim=1)
        return x[torch.arange(x.shape[0], device=x.device), last]
    raise ConfigError(f"pooling {pooling!r} unknown; use one of {', '.join(POOLINGS)}")


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


class MultiHeadEmbedder(HFEmbedder):
    """Standard embedding + per-head embeddings from one forward pass (MRAG, arXiv 2406.05085).

    A forward pre-hook on the attention output projection of block ``layer`` captures its
    input, the concatenation of the H head contexts ``(B, L, H * d_head)``; each head is pooled
    over tokens, grouped (``groups``) and stored as ``[v / |v|, 1 / |v|]`` (module doc).

    Args:
        model_path: Hugging Face model folder (default: the bundled all-MiniLM-L6-v2).
        pooling: per-head pooling (``"mean"``, ``"cls"``, ``"last"``); default ``"cls"`` for
            encoders (best measured on MRAG Wikipedia with MiniLM, see
            ``benchmarks/mrag_explore.py``) and ``"last"`` for decoders (the paper's choice).
        dense_pooling: pooling of the standard embedding (last hidden state); default
            ``"mean"`` for encoders (Sentence-BERT) and ``"last"`` for decoders.
        layer: block index (default -1: the last block, as in the paper).
        groups: number of head groups G stored (default: H, one space per head).
        split: also emit ``"split0".."split{H-1}"``: the standard embedding cut into H equal
            segments, each L2-normalised (the paper's Split RAG baseline; off by default).
        batch_size, max_tokens, device, hf_options: as for :class:`HFEmbedder` (e.g. a LoRA
            ``adapter``).

    Attributes:
        name: identity of the ``"dense"`` space (same as ``HFEmbedder`` for mean pooling, so
            an index built by either embedder serves the other's dense search).
        config: the :class:`MultiHeadConfig` of the head spaces.
    """

    def __init__(
        self,
        model_path: str | None = None,
        *,
        pooling: str | None = None,
        dense_pooling: str | None = None,
        layer: int = -1,
        groups: int | None = None,
        split: bool = False,
        batch_size: int = 32,
        max_tokens: int | None = None,
        device: str = "cpu",
        **hf_options: Any,
    ) -> None:
        super().__init__(
            model_path, batch_size=batch_size, max_tokens=max_tokens, device=device, **hf_options
        )
        for p in (pooling, dense_pooling):
            if p is not None and p not in POOLINGS:
                raise ConfigError(f"pooling {p!r} unknown; use one of {', '.join(POOLINGS)}")
        self._pooling = pooling
        self._dense_pooling = dense_pooling
        self.layer = layer
        self._groups = groups
        self.split = split

    @property  # type: ignore[override]
    def name(self) -> str:
        """``HFEmbedder``'s name, suffixed with the dense pooling when it is not ``"mean"``."""
        if self.dense_pooling == "mean":
            return self._base_name
        return f"{self._base_name}:{self.dense_pooling}"

    @name.setter
    def name(self, value: str) -> None:
        self._base_name = value

    # -- model structure -------------------------------------------------------------------
    @property
    def family(self) -> str:
        """``"encoder"`` (BERT-like) or ``"decoder"`` (Llama-like)."""
        return locate_attention_output(self.model, self.layer)[1]

    @property
    def num_heads(self) -> int:
        return int(self.model.config.num_attention_heads)

    @property
    def head_dim(self) -> int:
        cfg = self.model.config
        return int(getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads)

    @property
    def pooling(self) -> str:
        return self._pooling or ("last" if self.family == "decoder" else "cls")

    @property
    def dense_pooling(self) -> str:
        if self._dense_pooling:
            return self._dense_pooling
        return "last" if self.family == "decoder" else "mean"

    @property
    def groups(self) -> int:
        return self._groups or self.num_heads

    @property
    def config(self) -> MultiHeadConfig:
        return MultiHeadConfig(
            layer=self.layer,
            pooling=self.pooling,
            heads=self.num_heads,
            head_dim=self.head_dim,
            groups=self.groups,
        )

    def apply_config(self, cfg: MultiHeadConfig) -> None:
        """Adopt an index's head settings (so queries are encoded like its chunks).

        Raises ConfigError when the index was built with a model of another head layout.
        """
        if (cfg.heads, cfg.head_dim) != (self.num_heads, self.head_dim):
            raise ConfigError(
                f"index heads {cfg.heads}x{cfg.head_dim} differ from the model's "
                f"{self.num_heads}x{self.head_dim}: use the embedder the index was built with"
            )
        self.layer, self._pooling, self._groups = cfg.layer, cfg.pooling, cfg.groups

    # -- encoding ------------------------------------------------------------------------------
    def encode_raw(
        self,
        texts: Sequence[str],
        *,
        layers: Sequence[int] | None = None,
        poolings: Sequence[str] | None = None,
        show_progress: bool = False,
    ) -> tuple[np.ndarray, dict[tuple[int, str], np.ndarray]]:
        """One forward pass per batch; raw pooled head contexts, no grouping/centring/norm.

        Args:
            texts: input texts (truncated at ``max_tokens`` tokens).
            layers: blocks to tap (default ``[self.layer]``).
            poolings: per-head poolings to compute (default ``[self.pooling]``).

        Returns:
            ``(dense, heads)``: ``dense`` float32 ``(n, d)`` L2-normalised standard embedding;
            ``heads[(layer, pooling)]`` float32 ``(n, H, d_head)``.
        """
        import torch

        layers = list(layers) if layers is not None else [self.layer]
        poolings = list(poolings) if poolings is not None else [self.pooling]
        n, h, dh = len(texts), self.num_heads, self.head_dim
        dense = np.zeros((n, self.dim), dtype=np.float32)
        heads = {(ly, p): np.zeros((n, h, dh), dtype=np.float32) for ly in layers for p in poolings}
        if n == 0:
            return dense, heads
        captured: dict[int, object] = {}
        handles = []
        for ly in layers:
            module, _ = locate_attention_output(self.model, ly)

            def hook(_mod, args, _ly=ly):  # type: ignore[no-untyped-def]
                captured[_ly] = args[0]

            handles.append(module.register_forward_pre_hook(hook))
        order = np.argsort([-len(t) for t in texts], kind="stable")
        batches = [order[i : i + self.batch_size] for i in range(0, n, self.batch_size)]
        progress = _progress(show_progress, n)
        try:
            with torch.inference_mode():
                for idx in batches:
                    enc = self.tokenize([texts[i] for i in idx])
                    mask = enc["attention_mask"]
                    hidden = self.model(**enc).last_hidden_state
                    pooled = pool_tokens(hidden, mask, self.dense_pooling)
                    dense[idx] = torch.nn.functional.normalize(pooled.float(), dim=-1).numpy()
                    for ly in layers:
                        ctx = captured.pop(ly)
                        for p in poolings:
                            v = pool_tokens(ctx, mask, p).float().reshape(len(idx), h, dh)
                            heads[(ly, p)][idx] = v.cpu().numpy()
                    if progress is not None:
                        progress.update(len(idx))
        finally:
            for hd in handles:
                hd.remove()
            if progress is not None:
                progress.close()
        return dense, heads

    def encode_heads(
        self, texts: Sequence[str], *, show_progress: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(dense (n, d), grouped raw head vectors (n, G, d_head))``, float32, one pass."""
        dense, raw = self.encode_raw(texts, show_progress=show_progress)
        return dense, group_heads(raw[(self.layer, self.pooling)], self.groups)

    def encode(
        self, texts: Sequence[str], *, kind: TextKind = "document", show_progress: bool = False
    ) -> Mapping[str, np.ndarray]:
        """Embed ``texts`` into ``{"dense", "head0".."head{G-1}"}`` (+ ``split*``), see the
        module doc.

        ``kind`` is accepted for protocol compatibility (queries and documents are encoded the
        same way; the retriever builds query vectors with :func:`head_queries`). Shapes:
        ``dense`` ``(n, d)`` L2-normalised; ``head{i}`` ``(n, d_head + 1)``; all float32.
        """
        dense, heads = self.encode_heads(texts, show_progress=show_progress)
        packed = pack_heads(heads)
        out: dict[str, np.ndarray] = {"dense": dense}
        for g in range(packed.shape[1]):
            out[head_space(g)] = np.ascontiguousarray(packed[:, g])
        if self.split:
            h = self.num_heads
            seg = dense.reshape(len(dense), h, -1)
            seg = seg / np.maximum(np.linalg.norm(seg, axis=-1, keepdims=True), MIN_NORM)
            for i in range(h):
                out[split_space(i)] = np.ascontiguousarray(seg[:, i], dtype=np.float32)
        return out

"""Multi-head embeddings: the standard sentence embedding plus one vector per attention head.

Method: Besta et al. 2024, "Multi-Head RAG: Solving Multi-Aspect Problems with LLMs"
(arXiv 2406.05085), section 3.1: the per-head embeddings are the last transformer block's
multi-head attention outputs taken *before* the output projection W_o (the concatenated
per-head context vectors), split into H vectors of size d_head. The reference code taps the
input of ``o_proj`` with a forward hook and takes the last token (decoder model); for an encoder
(MiniLM: 12 heads x 32 dims) we pool each head over tokens (mean over non-padding tokens by
default, CLS or last token as settings). Both come out of ONE forward pass.

The vector spaces and their stored layout are defined in :mod:`aspectrag.multihead.layout`;
where the head contexts are tapped in :mod:`aspectrag.multihead.model`.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from aspectrag.embed.base import TextKind
from aspectrag.embed.batching import length_batches
from aspectrag.embed.hf import HFEmbedder
from aspectrag.embed.pooling import POOLINGS, pool_tokens
from aspectrag.errors import ConfigError
from aspectrag.multihead.layout import (
    MIN_NORM,
    MultiHeadConfig,
    group_heads,
    head_space,
    pack_heads,
    split_space,
)
from aspectrag.multihead.model import input_tap, locate_attention_output

log = logging.getLogger("aspectrag.embed")


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
        raw_cache: a :class:`RawCache` that memoises :meth:`encode_raw` per text (shared by
            the copies :meth:`with_layout` / :meth:`with_config` make; an evaluation that builds
            several index layouts runs one forward pass per text). None: no memo.

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
        raw_cache: RawCache | None = None,
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
        self.raw_cache = raw_cache

    # -- copies sharing the loaded model -----------------------------------------------------
    @classmethod
    def from_embedder(cls, embedder: Any) -> MultiHeadEmbedder:
        """A multi-head embedder over the same model as ``embedder``: a shallow copy of a
        ``MultiHeadEmbedder``; for a plain :class:`HFEmbedder`, a new one on its model folder
        and adapter that reuses its already loaded model and tokenizer.

        Raises:
            ConfigError: ``embedder`` is not a Hugging Face embedder.
        """
        if isinstance(embedder, MultiHeadEmbedder):
            return copy.copy(embedder)  # shares the loaded model, tokenizer and raw cache
        if not isinstance(embedder, HFEmbedder):
            raise ConfigError(
                f"multi-head retrieval needs a Hugging Face embedder, got {type(embedder).__name__}"
            )
        opts = {"adapter": embedder.adapter} if embedder.adapter else {}
        mh = cls(embedder.model_path, batch_size=embedder.batch_size, device=embedder.device,
                 **opts)
        for attr in ("model", "tokenizer"):  # cached_property values: reuse, do not reload
            if attr in vars(embedder):
                vars(mh)[attr] = vars(embedder)[attr]
        return mh

    def with_layout(
        self, *, pooling: str | None = None, groups: int | None = None, split: bool = False
    ) -> MultiHeadEmbedder:
        """A shallow copy (same model and raw cache) with other head options: ``pooling`` and
        ``groups`` (None keeps this embedder's), ``split`` (the Split RAG spaces)."""
        if pooling is not None and pooling not in POOLINGS:
            raise ConfigError(f"pooling {pooling!r} unknown; use one of {', '.join(POOLINGS)}")
        e = copy.copy(self)
        e._pooling = pooling if pooling is not None else self._pooling
        e._groups = groups if groups is not None else self._groups
        e.split = split
        return e

    def with_config(self, cfg: MultiHeadConfig) -> MultiHeadEmbedder:
        """A shallow copy that encodes like an index built with ``cfg`` (:meth:`apply_config`).

        Raises ConfigError when the index was built with a model of another head layout."""
        e = copy.copy(self)
        e.apply_config(cfg)
        return e

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
        """``"encoder"`` (BERT-like) or ``"decoder"`` (Llama-like).

        Read from the folder's ``config.json`` for the BERT family (so ``name``, which an
        index is checked against before every search, loads neither torch nor the model);
        other models are loaded and their structure inspected."""
        if "model" not in vars(self):
            family = _family_from_config(self.model_path)
            if family is not None:
                return family
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
        layers = list(layers) if layers is not None else [self.layer]
        poolings = list(poolings) if poolings is not None else [self.pooling]
        cache = self.raw_cache
        if cache is not None and cache.covers(layers, poolings):
            return cache.lookup(self, list(texts), layers, poolings, show_progress)
        return self._encode_raw(texts, layers, poolings, show_progress)

    def _raw_buffers(
        self, n: int, layers: Sequence[int], poolings: Sequence[str]
    ) -> tuple[np.ndarray, dict[tuple[int, str], np.ndarray]]:
        """Zeroed outputs of :meth:`encode_raw` for ``n`` texts (shapes as documented there),
        filled batch by batch by every runtime's ``_encode_raw``."""
        h, dh = self.num_heads, self.head_dim
        heads = {(ly, p): np.zeros((n, h, dh), dtype=np.float32) for ly in layers for p in poolings}
        return np.zeros((n, self.dim), dtype=np.float32), heads

    def _encode_raw(
        self, texts: Sequence[str], layers: list[int], poolings: list[str], show_progress: bool
    ) -> tuple[np.ndarray, dict[tuple[int, str], np.ndarray]]:
        import torch

        dense, heads = self._raw_buffers(len(texts), layers, poolings)
        if len(texts) == 0:
            return dense, heads
        h, dh = self.num_heads, self.head_dim
        taps = {ly: input_tap(locate_attention_output(self.model, ly)[0]) for ly in layers}
        with contextlib.ExitStack() as stack, torch.inference_mode():
            for tap in taps.values():
                stack.enter_context(tap.capture())
            for idx in length_batches(texts, self.batch_size, show_progress=show_progress):
                enc = self.tokenize([texts[i] for i in idx])
                mask = enc["attention_mask"]
                hidden = self.model(**enc).last_hidden_state
                pooled = pool_tokens(hidden, mask, self.dense_pooling)
                dense[idx] = torch.nn.functional.normalize(pooled.float(), dim=-1).numpy()
                for ly in layers:
                    ctx = taps[ly].pop()
                    for p in poolings:
                        v = pool_tokens(ctx, mask, p).float().reshape(len(idx), h, dh)
                        heads[(ly, p)][idx] = v.cpu().numpy()
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


class RawCache:
    """Memo of :meth:`MultiHeadEmbedder.encode_raw` per text, for fixed ``layers`` x
    ``poolings`` (default: the last block, CLS and mean pooling: what the MRAG evaluation's
    index variants need), so several index layouts and strategies share one forward pass per
    text. Texts not cached yet are encoded in one call (all layers and poolings at once).
    Thread-safe; unbounded (meant for an evaluation's fixed corpus and queries).
    """

    def __init__(self, layers: Sequence[int] = (-1,), poolings: Sequence[str] = ("cls", "mean")):
        self.layers, self.poolings = list(layers), list(poolings)
        self._items: dict[str, tuple[np.ndarray, dict[tuple[int, str], np.ndarray]]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def covers(self, layers: Sequence[int], poolings: Sequence[str]) -> bool:
        """True when every requested layer and pooling is one the cache holds."""
        return set(layers) <= set(self.layers) and set(poolings) <= set(self.poolings)

    def lookup(
        self,
        embedder: MultiHeadEmbedder,
        texts: list[str],
        layers: list[int],
        poolings: list[str],
        show_progress: bool = False,
    ) -> tuple[np.ndarray, dict[tuple[int, str], np.ndarray]]:
        """``encode_raw``'s output for ``texts`` from the cache, encoding the missing ones."""
        with self._lock:
            missing = [t for t in dict.fromkeys(texts) if t not in self._items]
            if missing:
                dense, raw = embedder._encode_raw(missing, self.layers, self.poolings,
                                                  show_progress)
                for i, t in enumerate(missing):
                    self._items[t] = (dense[i], {key: v[i] for key, v in raw.items()})
            got = [self._items[t] for t in texts]
        if not got:
            heads = np.zeros((0, embedder.num_heads, embedder.head_dim), np.float32)
            return np.zeros((0, embedder.dim), np.float32), {
                (ly, p): heads for ly in layers for p in poolings}
        dense_out = np.stack([g[0] for g in got])
        return dense_out, {
            (ly, p): np.stack([g[1][(ly, p)] for g in got]) for ly in layers for p in poolings
        }


#: ``model_type`` values whose ``AutoModel`` has the BERT layout ``encoder.layer[i]``
#: (:func:`~aspectrag.multihead.model.locate_attention_output` finds them as "encoder").
_BERT_LAYOUT_TYPES = frozenset({"bert", "roberta", "xlm-roberta", "camembert", "electra"})


def _family_from_config(model_path: str) -> str | None:
    """``"encoder"`` when ``model_path/config.json`` names a BERT-layout ``model_type`` (and
    no adapter changes the architecture: LoRA keeps it), else None (unknown: load the model)."""
    import json
    from pathlib import Path

    try:
        cfg = json.loads((Path(model_path) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return "encoder" if cfg.get("model_type") in _BERT_LAYOUT_TYPES else None

"""ONNX Runtime embedders: :class:`HFEmbedder` / :class:`MultiHeadEmbedder` without torch.

The model is exported once by :mod:`aspectrag.embed.onnx_export` (cached by model hash); the
encode path uses only ``onnxruntime``, ``tokenizers`` (``tokenizer.json``) and numpy, and reads
dims/heads/family from ``config.json``. ``.model`` / ``.tokenizer`` stay the lazily loaded
torch/transformers objects of the parent classes (late-interaction reranking, training): they
load only when touched. Runtimes: ``"onnx-int8"`` (dynamic int8, per-channel weights) and
``"onnx-fp32"``; the embedder ``name`` gets the suffix ``@onnx-int8`` / ``@onnx-fp32`` so an
index records which runtime built it (vectors of two runtimes are never mixed silently).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import uuid
from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from aspectrag.embed.base import TextKind
from aspectrag.embed.batching import length_batches
from aspectrag.embed.hf import HFEmbedder
from aspectrag.embed.late import SpanPlan, active_plan, forward_texts, pool_rows, span_rows
from aspectrag.errors import ConfigError
from aspectrag.multihead.embedder import MultiHeadEmbedder

log = logging.getLogger("aspectrag.embed")

ONNX_RUNTIMES: tuple[str, ...] = ("onnx-int8", "onnx-fp32")
_DECODER_TYPES = {"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "phi3",
                  "mixtral", "olmo", "olmo2", "granite"}


def runtime_suffix(runtime: str) -> str:
    """The embedder-name suffix of an ONNX ``runtime``: ``"@onnx-int8"`` / ``"@onnx-fp32"``."""
    return f"@{runtime}"


def pool_np(x: np.ndarray, mask: np.ndarray, pooling: str) -> np.ndarray:
    """Numpy twin of :func:`aspectrag.embed.pooling.pool_tokens`: ``x`` float32 ``(B, L, D)``,
    ``mask`` int ``(B, L)`` -> ``(B, D)`` float32 (mean / cls / last non-padding token)."""
    if pooling == "mean":
        m = mask[..., None].astype(np.float32)
        return (x * m).sum(1) / np.maximum(m.sum(1), 1e-9)
    if pooling == "cls":
        return x[:, 0]
    if pooling == "last":
        length = mask.shape[1]
        last = (length - 1) - np.argmax(mask[:, ::-1].astype(np.int64), axis=1)
        return x[np.arange(x.shape[0]), last]
    raise ConfigError(f"pooling {pooling!r} unknown; use one of mean, cls, last")


def _normalize(v: np.ndarray) -> np.ndarray:
    return (v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


class _OnnxRuntime:
    """Session, tokenizer and config handling shared by the two ONNX embedders (a mixin over
    :class:`HFEmbedder`; attributes ``model_path``, ``adapter``, ``batch_size``)."""

    model_path: str
    adapter: str | None
    runtime: str
    threads: int
    spin: bool
    cache_dir: Path
    query_layers: tuple[int, ...] | None = None
    """Set by :func:`aspectrag.embed.factory.query_twin`: the layers whose session
    :meth:`start_preload` opens (None: it does nothing)."""

    def _init_onnx(self, runtime: str, threads: int | None, cache_dir: Path | None) -> None:
        if runtime not in ONNX_RUNTIMES:
            raise ConfigError(f"ONNX runtime {runtime!r} unknown; use one of {ONNX_RUNTIMES}")
        from aspectrag.settings import get_settings

        s = get_settings()
        self.runtime = runtime
        self.threads = s.threads if threads is None else threads
        self.spin = s.embedder.onnx_spin
        self.cache_dir = Path(cache_dir) if cache_dir is not None else Path(s.cache_dir)
        self._sessions: dict[tuple[int, ...], Any] = {}
        self._sessions_lock = threading.Lock()
        self._tok_lock = threading.Lock()

    @cached_property
    def hf_config(self) -> dict[str, Any]:
        """The model folder's ``config.json`` as a dict."""
        return json.loads((Path(self.model_path) / "config.json").read_text())

    @property
    def dim(self) -> int:
        return int(self.hf_config["hidden_size"])

    @property
    def max_tokens(self) -> int:
        if self._max_tokens is not None:  # type: ignore[attr-defined]
            return int(self._max_tokens)  # type: ignore[attr-defined]
        folder = Path(self.model_path)
        st = folder / "sentence_bert_config.json"
        if st.exists():
            return int(json.loads(st.read_text()).get("max_seq_length", 256))
        tc = folder / "tokenizer_config.json"
        limit = 512
        if tc.exists():
            limit = int(min(json.loads(tc.read_text()).get("model_max_length", 512), 512))
        return limit

    # -- tokenizer -------------------------------------------------------------------------
    @cached_property
    def _fast(self) -> tuple[Any] | None:
        """``(batch tokenizer with padding + truncation,)`` from ``tokenizer.json``, or None
        when the folder has none (then transformers' is used). The counting tokenizer is
        :attr:`_plain`, loaded only when tokens are counted (ingest), not on the query path."""
        path = Path(self.model_path) / "tokenizer.json"
        if not path.exists():
            return None
        from tokenizers import Tokenizer

        batch = Tokenizer.from_file(str(path))
        tc_path = Path(self.model_path) / "tokenizer_config.json"
        tc = json.loads(tc_path.read_text()) if tc_path.exists() else {}
        pad = tc.get("pad_token")
        if isinstance(pad, dict):
            pad = pad.get("content")
        padding = batch.padding or {}
        pad = pad or padding.get("pad_token")
        pad_id = batch.token_to_id(pad) if pad else None
        if pad_id is None:
            raise ConfigError(f"{self.model_path}: the tokenizer has no pad token; set one")
        batch.enable_padding(pad_id=pad_id, pad_token=pad,
                             direction=tc.get("padding_side", "right"))
        batch.enable_truncation(max_length=self.max_tokens,
                                direction=tc.get("truncation_side", "right"))
        return (batch,)

    @cached_property
    def _plain(self) -> Any:
        """The tokenizer of ``tokenizer.json`` without padding or truncation (counting)."""
        from tokenizers import Tokenizer

        plain = Tokenizer.from_file(str(Path(self.model_path) / "tokenizer.json"))
        plain.no_truncation()
        plain.no_padding()
        return plain

    def count_tokens(self, text: str) -> int:
        """Number of tokens of ``text`` without special tokens."""
        fast = self._fast
        if fast is None:
            return HFEmbedder.count_tokens(self, text)  # type: ignore[arg-type]
        return len(self._plain.encode(text, add_special_tokens=False).ids)

    def _tokenize_np(self, texts: Sequence[str], offsets: bool = False) -> dict[str, np.ndarray]:
        """int64 ``(B, L)`` arrays ``input_ids``, ``attention_mask``, ``token_type_ids``; with
        ``offsets`` also ``offsets`` int64 ``(B, L, 2)``, each token's character range
        (``start == end`` for special and padding tokens)."""
        fast = self._fast
        if fast is None:
            from aspectrag.embed.hf import tokenizer_lock

            tok = self.tokenizer  # type: ignore[attr-defined]
            with tokenizer_lock(tok):
                enc = tok(list(texts), padding=True, truncation=True, max_length=self.max_tokens,
                          return_tensors="np", return_offsets_mapping=offsets)
            out = {k: np.asarray(v, dtype=np.int64) for k, v in enc.items()}
            if offsets:
                out["offsets"] = out.pop("offset_mapping")
            return out
        with self._tok_lock:
            encs = fast[0].encode_batch(list(texts))
        out = {
            "input_ids": np.array([e.ids for e in encs], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encs], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encs], dtype=np.int64),
        }
        if offsets:
            out["offsets"] = np.array([e.offsets for e in encs], dtype=np.int64).reshape(
                len(encs), -1, 2)
        return out

    def export_ready(self, layers: Sequence[int] = (-1,)) -> bool:
        """True when the export tapping ``layers`` is already in the cache (so opening a
        session needs neither torch nor an export)."""
        from aspectrag.embed.onnx_export import MODEL_FILE, export_key

        key = export_key(self.model_path, adapter=self.adapter, layers=layers,
                         precision=self.runtime.split("-")[1], cache_dir=self.cache_dir)
        return (self.cache_dir / "onnx" / key / MODEL_FILE).is_file()

    # -- session ---------------------------------------------------------------------------
    def session(self, layers: Sequence[int] = (-1,)) -> Any:
        """The ``onnxruntime.InferenceSession`` of the export tapping ``layers`` (exported on
        first use; thread-safe ``run``)."""
        key = tuple(layers)
        with self._sessions_lock:
            sess = self._sessions.get(key)
            if sess is None:
                sess = self._sessions[key] = self._open(key)
            return sess

    def preload(self, layers: Sequence[int] = (-1,)) -> threading.Thread:
        """Open the session tapping ``layers`` (and load the tokenizer) in a background thread
        and return it. ONNX Runtime releases the GIL while it reads and prepares the
        graph (0.25-0.35 s for MiniLM here), so a command that loads BM25 and the vectors in
        the meantime does not wait for the model; :meth:`session` waits for the thread's open
        (same lock). A failure in the thread is dropped: the next :meth:`session` call opens
        again and raises it. The thread is not a daemon: a process that ends before the open
        is done (a BM25-only search, an early error) waits for it, because interpreter
        shutdown under a running ONNX Runtime session constructor aborts the process."""

        def work() -> None:
            with contextlib.suppress(Exception):
                _ = self._fast
                self.session(layers)

        th = threading.Thread(target=work, name="aspectrag-onnx-preload")
        th.start()
        return th

    def start_preload(self) -> None:
        """:meth:`preload` the query session of a query twin (:attr:`query_layers`), once;
        called by the retriever factory for retrievers that encode queries, so a BM25-only
        search neither opens nor waits for a session it never uses."""
        if self.query_layers is not None and not getattr(self, "_preloading", False):
            self._preloading = True
            self.preload(self.query_layers)

    def _open(self, layers: tuple[int, ...]) -> Any:
        from aspectrag.extras import optional_import

        ort = optional_import("onnxruntime", "the ONNX embedder runtime")
        from aspectrag.embed.onnx_export import ensure_export

        path = ensure_export(self.model_path, self.cache_dir, adapter=self.adapter,
                             layers=layers, precision=self.runtime.split("-")[1])
        # ORT's full graph optimisation costs ~0.2 s per process start: it runs once, its result
        # is saved beside the export (``model.opt.onnx``, for this machine's CPU) and later
        # processes load that with the basic level (same graph, same outputs)
        opt = path.with_name("model.opt.onnx")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(0, int(self.threads))
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spin else "0")
        if opt.is_file():
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
            try:
                return ort.InferenceSession(str(opt), opts, providers=["CPUExecutionProvider"])
            except Exception as e:  # damaged or from another machine: optimise again
                log.info("could not load %s (%s); optimising %s again", opt, e, path)
                opt.unlink(missing_ok=True)
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        tmp = opt.with_name(f".{opt.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}")
        opts.optimized_model_filepath = str(tmp)
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        with contextlib.suppress(OSError):
            os.replace(tmp, opt)
        return sess

    def _forward(self, texts: Sequence[str], layers: Sequence[int]
                 ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """``(last_hidden_state (B, L, D), mask (B, L), [head context (B, L, H*dh)] per layer)``."""
        hidden, enc, ctxs = self._run(texts, layers, offsets=False)
        return hidden, enc["attention_mask"], ctxs

    def _run(self, texts: Sequence[str], layers: Sequence[int], *, offsets: bool
             ) -> tuple[np.ndarray, dict[str, np.ndarray], list[np.ndarray]]:
        """``(last_hidden_state (B, L, D), the tokenizer's arrays, [head context] per layer)``."""
        sess = self.session(layers)
        enc = self._tokenize_np(texts, offsets=offsets)
        names = {i.name for i in sess.get_inputs()}
        feeds = {k: v for k, v in enc.items() if k in names}
        outs = sess.run(None, feeds)
        return outs[0], enc, list(outs[1:])

    # -- late chunking (embed/late.py) -----------------------------------------------------
    def _late_pool(
        self, texts: Sequence[str], plan: SpanPlan, layers: list[int], poolings: list[str],
        dense_pooling: str,
    ) -> tuple[np.ndarray, dict[tuple[int, str], np.ndarray], list[int]]:
        """Encode ``texts`` with ``plan``'s sub-queries pooled from their questions' tokens
        (one forward pass per distinct question or other text, in length batches).

        Returns ``(dense, heads, plain)``: ``dense`` float32 ``(n, dim)`` L2-normalised,
        ``heads[(layer, pooling)]`` float32 ``(n, H*dh)`` unnormalised (empty without
        ``layers``' head taps), and the positions of planned texts whose span fell in the
        truncated part of the question: their rows are zero, the caller encodes them alone.
        """
        fwd, src = forward_texts(texts, plan)
        states: list[tuple[np.ndarray, np.ndarray, list[np.ndarray]]] = [None] * len(fwd)  # type: ignore[list-item]
        for idx in length_batches(fwd, self.batch_size):
            hidden, enc, ctxs = self._run([fwd[j] for j in idx], layers, offsets=True)
            for b, j in enumerate(idx):
                keep = np.flatnonzero(enc["attention_mask"][b])
                states[j] = (hidden[b, keep], enc["offsets"][b, keep], [c[b, keep] for c in ctxs])
        n = len(texts)
        dense = np.zeros((n, self.dim), dtype=np.float32)
        heads: dict[tuple[int, str], np.ndarray] = {}
        plain: list[int] = []
        for i, t in enumerate(texts):
            hid, offs, ctxs = states[src[i]]
            rows: np.ndarray | None = np.arange(len(hid))
            if fwd[src[i]] != t:
                rows = span_rows(offs, plan.spans[t][1], specials=plan.specials)
                if rows is None:
                    plain.append(i)
                    continue
            dense[i] = pool_rows(hid, rows, dense_pooling)
            for ly, ctx in zip(layers[: len(ctxs)], ctxs, strict=True):
                for p in poolings:
                    buf = heads.setdefault((ly, p), np.zeros((n, ctx.shape[-1]), np.float32))
                    buf[i] = pool_rows(ctx, rows, p)
        return _normalize(dense), heads, plain


class OnnxEmbedder(_OnnxRuntime, HFEmbedder):
    """:class:`HFEmbedder` (mean pooling + L2 norm) run by ONNX Runtime.

    Args: as :class:`HFEmbedder`, plus ``runtime`` (``"onnx-int8"`` or ``"onnx-fp32"``),
    ``threads`` (ORT intra-op threads, 0 = all cores; default: the ``threads`` setting, i.e.
    all cores; under load on 2 cores, 100 SciFact texts, int8: 1, 2 and 0 threads within 5% of
    each other, so the default is kept) and
    ``cache_dir`` (default: the ``cache_dir`` setting; exports go to ``<cache_dir>/onnx``).

    Attributes:
        name: ``HFEmbedder``'s name + ``"@onnx-int8"`` / ``"@onnx-fp32"``.
    """

    def __init__(self, model_path: str | None = None, *, runtime: str = "onnx-int8",
                 threads: int | None = None, cache_dir: Path | None = None,
                 **hf_options: Any) -> None:
        HFEmbedder.__init__(self, model_path, **hf_options)
        self._init_onnx(runtime, threads, cache_dir)
        self.name = self.name + runtime_suffix(runtime)

    def encode(
        self, texts: Sequence[str], *, kind: TextKind = "document", show_progress: bool = False
    ) -> Mapping[str, np.ndarray]:
        """Embed ``texts`` -> ``{"dense": float32 (len(texts), dim)}``, rows L2-normalised.

        Queries inside a :func:`~aspectrag.embed.late.late_chunking` block: the planned
        sub-queries are mean-pooled from their question's token vectors (late chunking)."""
        plan = active_plan() if kind == "query" else None
        if plan is not None and any(t in plan.spans for t in texts):
            dense, _, plain = self._late_pool(texts, plan, [-1], [], "mean")
            if plain:
                dense[plain] = self.encode([texts[i] for i in plain])["dense"]
            return {"dense": dense}
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return {"dense": out}
        for idx in length_batches(texts, self.batch_size, show_progress=show_progress):
            hidden, mask, _ = self._forward([texts[j] for j in idx], [-1])
            out[idx] = _normalize(pool_np(hidden, mask, "mean"))
        return {"dense": out}


class OnnxMultiHeadEmbedder(_OnnxRuntime, MultiHeadEmbedder):
    """:class:`MultiHeadEmbedder` (dense + per-head vectors, one pass) run by ONNX Runtime.

    Args: as :class:`MultiHeadEmbedder`, plus ``runtime``, ``threads``, ``cache_dir`` as for
    :class:`OnnxEmbedder`. Each distinct set of tapped layers is one export (the default: the
    block ``layer``; a :class:`RawCache` over other layers triggers a second export).

    Attributes:
        name: ``MultiHeadEmbedder``'s name with ``"@onnx-int8"`` / ``"@onnx-fp32"`` after the
            model/adapter part (before a dense-pooling suffix).
    """

    def __init__(self, model_path: str | None = None, *, runtime: str = "onnx-int8",
                 threads: int | None = None, cache_dir: Path | None = None,
                 **options: Any) -> None:
        MultiHeadEmbedder.__init__(self, model_path, **options)
        self._init_onnx(runtime, threads, cache_dir)
        self._base_name = self._base_name + runtime_suffix(runtime)

    @property
    def family(self) -> str:
        """``"encoder"`` (BERT-like) or ``"decoder"`` (Llama-like), from ``config.json``."""
        return "decoder" if self.hf_config.get("model_type") in _DECODER_TYPES else "encoder"

    @property
    def num_heads(self) -> int:
        return int(self.hf_config["num_attention_heads"])

    @property
    def head_dim(self) -> int:
        cfg = self.hf_config
        return int(cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"])

    def encode_raw(
        self,
        texts: Sequence[str],
        *,
        layers: Sequence[int] | None = None,
        poolings: Sequence[str] | None = None,
        show_progress: bool = False,
    ) -> tuple[np.ndarray, dict[tuple[int, str], np.ndarray]]:
        """:meth:`MultiHeadEmbedder.encode_raw`; inside a
        :func:`~aspectrag.embed.late.late_chunking` block (queries only) the planned
        sub-queries are pooled from their question's token vectors, bypassing the raw cache:
        dense and mean / last-pooled heads over the span's tokens; a ``"cls"``-pooled head
        has no span of its own, so it gets the question's (the multi-query retriever does not
        plan late chunking over a multi-head base). Only with mean dense pooling."""
        plan = active_plan()
        if plan is None or self.dense_pooling != "mean" or not any(t in plan.spans for t in texts):
            return super().encode_raw(texts, layers=layers, poolings=poolings,
                                      show_progress=show_progress)
        lys = list(layers) if layers is not None else [self.layer]
        pls = list(poolings) if poolings is not None else [self.pooling]
        dense, flat, plain = self._late_pool(texts, plan, lys, pls, "mean")
        n, h, dh = len(texts), self.num_heads, self.head_dim
        heads = {(ly, p): flat[(ly, p)].reshape(n, h, dh) if (ly, p) in flat
                 else np.zeros((n, h, dh), np.float32) for ly in lys for p in pls}
        if plain:
            d2, h2 = super().encode_raw([texts[i] for i in plain], layers=lys, poolings=pls)
            dense[plain] = d2
            for key, v in h2.items():
                heads[key][plain] = v
        return dense, heads

    def _encode_raw(
        self, texts: Sequence[str], layers: list[int], poolings: list[str], show_progress: bool
    ) -> tuple[np.ndarray, dict[tuple[int, str], np.ndarray]]:
        dense, heads = self._raw_buffers(len(texts), layers, poolings)
        if len(texts) == 0:
            return dense, heads
        h, dh = self.num_heads, self.head_dim
        for idx in length_batches(texts, self.batch_size, show_progress=show_progress):
            hidden, mask, ctxs = self._forward([texts[j] for j in idx], layers)
            dense[idx] = _normalize(pool_np(hidden, mask, self.dense_pooling))
            for ly, ctx in zip(layers, ctxs, strict=True):
                for p in poolings:
                    heads[(ly, p)][idx] = pool_np(ctx, mask, p).reshape(len(idx), h, dh)
        return dense, heads

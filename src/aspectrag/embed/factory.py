"""Builds the embedder from config: the one place that maps names to embedder classes."""

from __future__ import annotations

import re
from collections.abc import Callable
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any

from aspectrag.embed.base import Embedder
from aspectrag.errors import ConfigError

if TYPE_CHECKING:
    from aspectrag.multihead.embedder import MultiHeadEmbedder

RUNTIMES: tuple[str, ...] = ("torch", "onnx-int8", "onnx-fp32", "auto")
DEFAULT_RUNTIME = "torch"
"""Runtime of a new index when ``embedder.runtime`` is unset (``"auto"`` = onnx-int8 when
onnxruntime is installed, else torch)."""
_RECORDED = re.compile(r"@(onnx-int8|onnx-fp32)(?::|$)")

#: Embedders by the name an index records (``store.get_meta("embedder")``), for embedders
#: outside this package (a plugin, a test's torch-free stand-in): ``build_embedder(recorded=
#: NAME)`` returns ``RECORDED[NAME]()``. Register with :func:`register_recorded`.
RECORDED: dict[str, Callable[[], Embedder]] = {}


def register_recorded(name: str, builder: Callable[[], Embedder]) -> None:
    """Make indexes that record embedder ``name`` open with ``builder()`` (no arguments)."""
    RECORDED[name] = builder


def heads_enabled() -> bool:
    """Per-head vectors at ingest (Multi-Head RAG): the ``embedder.heads`` setting (on unless
    ``ASPECTRAG_HEADS=0``)."""
    from aspectrag.settings import get_settings

    return get_settings().embedder.heads


def recorded_runtime(name: str) -> str:
    """The runtime an embedder ``name`` (as recorded in an index) was built with: the
    ``@onnx-int8`` / ``@onnx-fp32`` suffix, else ``"torch"``."""
    m = _RECORDED.search(name)
    return m.group(1) if m else "torch"


def resolve_runtime(runtime: str | None, recorded: str | None) -> str:
    """The concrete runtime (``torch``, ``onnx-int8``, ``onnx-fp32``).

    ``runtime`` None or ``"auto"`` follows the index's ``recorded`` embedder name; for a new
    index None means :data:`DEFAULT_RUNTIME` and ``"auto"`` onnx-int8 when onnxruntime is
    installed.

    Raises:
        ConfigError: unknown ``runtime``, or an explicit one that contradicts ``recorded``.
    """
    if runtime is not None and runtime not in RUNTIMES:
        raise ConfigError(f"embedder.runtime {runtime!r} unknown; use one of {', '.join(RUNTIMES)}")
    if recorded:
        rec = recorded_runtime(recorded)
        if runtime in (None, "auto") or runtime == rec:
            return rec
        raise ConfigError(
            f"embedder.runtime {runtime!r} differs from the runtime {rec!r} this index was "
            f"built with ({recorded}): unset embedder.runtime (or set it to {rec!r}), or "
            "re-ingest into a new index to change runtimes")
    chosen = runtime or DEFAULT_RUNTIME
    if chosen == "auto":
        return "onnx-int8" if find_spec("onnxruntime") is not None else "torch"
    return chosen


def query_twin(model_path: str | None, *, recorded: str | None, heads: bool,
               runtime: str | None = None) -> Embedder | None:
    """The torch-free stand-in for encoding *queries* of an index built by the torch runtime:
    the same model run by ONNX Runtime in fp32, under the torch embedder's name, when
    onnxruntime is installed and the fp32 export is already cached (``aspectrag ingest``
    prepares it; see :func:`prepare_query_twin`); else None (use torch).

    Only when the runtime is not chosen explicitly (``runtime`` / ``embedder.runtime`` unset or
    ``"auto"``). The fp32 export is kept only when every output matches the traced torch model
    (``embed/onnx_export.py``); ``tests/multihead/test_query_twin.py`` checks that query vectors
    agree with torch's to 1e-5 (dense and every head; 1.4e-6 measured for MiniLM over 300
    SciFact queries, ``benchmarks/query_twin_parity.py``), so documents embedded by torch and
    queries by the twin are the same space. Issue 14: no torch import on the query path.
    """
    if not _twin_allowed(recorded, runtime):
        return None
    twin = _twin(model_path, heads)
    if recorded is not None and twin.name != recorded:
        return None  # another model: the torch path reports the mismatch
    layers = [twin.layer] if heads else [-1]  # type: ignore[attr-defined]
    if not twin.export_ready(layers):  # type: ignore[attr-defined]
        return None
    # the session opens in the background once a retriever that encodes queries is built
    # (``retrieve.factory.build_retriever``), overlapping BM25 / vector loading
    twin.query_layers = tuple(layers)  # type: ignore[attr-defined]
    return twin


def prepare_query_twin(recorded: str | None, *, heads: bool) -> bool:
    """Export the fp32 ONNX twin of an index's torch embedder (``recorded``: its name) now,
    once per model: a no-op when cached, when the index was not built by torch from a model
    folder, or when the ``embedder.query_twin`` setting or onnxruntime is missing. Returns True
    when the twin is ready (:func:`query_twin` will then return it)."""
    if not recorded or not _twin_allowed(recorded, None):
        return False
    twin = _twin(None, heads)
    if twin.name != recorded:
        return False
    layers = [twin.layer] if heads else [-1]  # type: ignore[attr-defined]
    if not twin.export_ready(layers):  # type: ignore[attr-defined]
        twin.session(layers)  # type: ignore[attr-defined]
    return True


def _twin_allowed(recorded: str | None, runtime: str | None) -> bool:
    """Whether a query twin may stand in: runtime not chosen explicitly, the
    ``embedder.query_twin`` setting on, onnxruntime installed, and an index built by torch (not
    by a registered outside embedder)."""
    from aspectrag.settings import get_settings

    return (_setting(runtime) in (None, "auto") and get_settings().embedder.query_twin
            and find_spec("onnxruntime") is not None and recorded not in RECORDED
            and resolve_runtime(None, recorded) == "torch")


def _twin(model_path: str | None, heads: bool) -> Embedder:
    from aspectrag.embed.onnx import OnnxEmbedder, OnnxMultiHeadEmbedder

    if heads:
        twin: Embedder = OnnxMultiHeadEmbedder(model_path, runtime="onnx-fp32")
        twin._base_name = twin._base_name.replace("@onnx-fp32", "")  # type: ignore[attr-defined]
    else:
        twin = OnnxEmbedder(model_path, runtime="onnx-fp32")
        twin.name = twin.name.replace("@onnx-fp32", "")  # type: ignore[misc]
    return twin


def build_embedder(
    model_path: str | None = None,
    *,
    recorded: str | None = None,
    heads: bool | None = None,
    adapter: str | None = None,
    runtime: str | None = None,
    for_queries: bool = False,
) -> Embedder:
    """The embedder for ``model_path`` (default: bundled all-MiniLM-L6-v2).

    ``recorded`` is the embedder name stored in an existing index; it is used to pick the same
    kind of embedder (e.g. multi-head) and runtime when reopening the index. ``heads`` (default
    :func:`heads_enabled`) selects the :class:`~aspectrag.multihead.embedder.MultiHeadEmbedder`,
    which adds one vector space per attention head to the standard one (same ``name``).
    ``adapter`` is a LoRA adapter folder (``aspectrag train embedder``) merged into the model;
    the per-head vectors then come from the fine-tuned model too. ``runtime`` (default: the
    ``embedder.runtime`` setting) is resolved by :func:`resolve_runtime`; the ONNX runtimes
    give :mod:`aspectrag.embed.onnx`'s embedders (name suffix ``@onnx-int8`` / ``@onnx-fp32``).

    ``for_queries``: the embedder only encodes queries (search, ask), so an index built by
    torch may be answered by its :func:`query_twin` when one is ready.

    Raises:
        aspectrag.errors.ConfigError: ``adapter`` is not an adapter folder (raised on first use);
            unknown runtime or one contradicting ``recorded``.
    """
    if recorded in RECORDED and model_path is None and adapter is None:
        return RECORDED[recorded]()
    multi = heads if heads is not None else heads_enabled()
    if for_queries and adapter is None:
        twin = query_twin(model_path, recorded=recorded, heads=multi, runtime=runtime)
        if twin is not None:
            return twin
    if multi:
        return multihead_embedder(model_path, runtime=runtime, recorded=recorded, adapter=adapter)
    chosen = resolve_runtime(_setting(runtime), recorded)
    if chosen != "torch":
        from aspectrag.embed.onnx import OnnxEmbedder

        return OnnxEmbedder(model_path, adapter=adapter, runtime=chosen)
    from aspectrag.embed.hf import HFEmbedder

    return HFEmbedder(model_path, adapter=adapter)


def multihead_embedder(
    model_path: str | None = None,
    *,
    runtime: str | None = None,
    recorded: str | None = None,
    **options: Any,
) -> MultiHeadEmbedder:
    """The multi-head embedder of ``runtime`` (default: the ``embedder.runtime`` setting,
    resolved by :func:`resolve_runtime` against ``recorded``): a torch
    :class:`~aspectrag.multihead.embedder.MultiHeadEmbedder` or an
    :class:`~aspectrag.embed.onnx.OnnxMultiHeadEmbedder`; ``options`` go to its constructor
    (``adapter``, ``raw_cache``, ``batch_size``, head options...).

    Raises:
        aspectrag.errors.ConfigError: unknown runtime or one contradicting ``recorded``.
    """
    chosen = resolve_runtime(_setting(runtime), recorded)
    if chosen != "torch":
        from aspectrag.embed.onnx import OnnxMultiHeadEmbedder

        return OnnxMultiHeadEmbedder(model_path, runtime=chosen, **options)
    from aspectrag.multihead.embedder import MultiHeadEmbedder

    return MultiHeadEmbedder(model_path, **options)


def _setting(runtime: str | None) -> str | None:
    """``runtime``, or the ``embedder.runtime`` setting when it is None."""
    if runtime is not None:
        return runtime
    from aspectrag.settings import get_settings

    return get_settings().embedder.runtime

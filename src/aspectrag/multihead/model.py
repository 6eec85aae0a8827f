"""Model surgery for Multi-Head RAG: where a transformer's per-head attention context is tapped.

Method: Besta et al. 2024 (arXiv 2406.05085), section 3.1: the input of the attention output
projection W_o of a block is the concatenation of the H head contexts. The reference code taps
the input of ``o_proj`` with a forward hook (decoders); BERT-like encoders have the same tensor
at the input of ``attention.output.dense``.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aspectrag.errors import ConfigError


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


class InputTap:
    """Hands the input of ``module`` (its first positional argument) to the thread that asked
    for it, through one forward pre-hook registered once per module (:func:`input_tap`).

    A shared model serves concurrent forward passes: a hook registered per call would see the
    other threads' passes too (and registering/removing hooks while another thread runs the
    model mutates the hook table it iterates). The hook only stores the tensor for a thread
    inside :meth:`capture`; other passes cost one attribute lookup.
    """

    def __init__(self, module: Any) -> None:
        self._local = threading.local()
        self._handle = module.register_forward_pre_hook(self._hook)

    def _hook(self, _module: Any, args: tuple[Any, ...]) -> None:
        if getattr(self._local, "armed", False):
            self._local.value = args[0]

    @contextmanager
    def capture(self) -> Iterator[InputTap]:
        """Within the block, forward passes of this thread record the module's input."""
        self._local.armed, self._local.value = True, None
        try:
            yield self
        finally:
            self._local.armed, self._local.value = False, None

    def pop(self) -> Any:
        """The input recorded by this thread's last forward pass (then forgotten).

        Raises:
            RuntimeError: no pass of this thread went through the module inside :meth:`capture`.
        """
        value = getattr(self._local, "value", None)
        if value is None:
            raise RuntimeError("the tapped module did not run in this forward pass")
        self._local.value = None
        return value


_TAPS: weakref.WeakKeyDictionary[Any, InputTap] = weakref.WeakKeyDictionary()
_TAPS_LOCK = threading.Lock()


def input_tap(module: Any) -> InputTap:
    """The :class:`InputTap` of ``module`` (created, and its hook registered, on first use)."""
    with _TAPS_LOCK:
        tap = _TAPS.get(module)
        if tap is None:
            tap = _TAPS[module] = InputTap(module)
        return tap

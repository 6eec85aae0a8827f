"""Model surgery for Multi-Head RAG: where a transformer's per-head attention context is tapped.

Method: Besta et al. 2024 (arXiv 2406.05085), section 3.1: the input of the attention output
projection W_o of a block is the concatenation of the H head contexts. The reference code taps
the input of ``o_proj`` with a forward hook (decoders); BERT-like encoders have the same tensor
at the input of ``attention.output.dense``.
"""

from __future__ import annotations

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

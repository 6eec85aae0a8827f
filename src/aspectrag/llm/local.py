"""The one loader of local Hugging Face language models (causal: GPT-2, Llama, Qwen...;
seq2seq: T5, BART...) from a folder written by ``save_pretrained``; nothing is downloaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aspectrag.errors import ConfigError


def pick_device(device: str | None = None) -> str:
    """``device`` if given, else "cuda" when a GPU is available, else "cpu"."""
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def check_model_folder(path: str | Path) -> Path:
    """``path`` as a Path when it holds a ``config.json``.

    Raises:
        ConfigError: it does not (message names the folder and what to give instead).
    """
    p = Path(path)
    if not (p / "config.json").is_file():
        raise ConfigError(
            f"{p}: not a Hugging Face model folder (no config.json); give the folder where "
            "save_pretrained wrote the model and its tokenizer (e.g. --llm hf:PATH)"
        )
    return p


def load_tokenizer(path: str | Path) -> Any:
    """The folder's tokenizer; its pad token is set to EOS when it has none.

    Raises:
        ConfigError: no folder / config.json, or no loadable tokenizer.
    """
    from transformers import AutoTokenizer

    p = check_model_folder(path)
    try:
        tok = AutoTokenizer.from_pretrained(p)
    except (OSError, ValueError) as e:
        raise ConfigError(f"{p}: cannot load the tokenizer ({e})") from e
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(path: str | Path, *, device: str | None = None, dtype: Any = None) -> Any:
    """The folder's model in eval mode on ``pick_device(device)``: ``AutoModelForSeq2SeqLM``
    when its config is encoder-decoder, else ``AutoModelForCausalLM``.

    Args:
        dtype: torch dtype of the weights (default: transformers' default for the folder).

    Raises:
        ConfigError: no folder / config.json, or no loadable model.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM

    from aspectrag.config import setup_threads

    p = check_model_folder(path)
    setup_threads()
    try:
        cfg = AutoConfig.from_pretrained(p)
        cls = AutoModelForSeq2SeqLM if cfg.is_encoder_decoder else AutoModelForCausalLM
        kw: dict[str, Any] = {} if dtype is None else {"dtype": dtype}
        model = cls.from_pretrained(p, **kw)
    except (OSError, ValueError) as e:
        raise ConfigError(f"{p}: cannot load the model ({e})") from e
    model.eval()
    return model.to(pick_device(device))

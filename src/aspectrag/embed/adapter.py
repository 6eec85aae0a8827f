"""LoRA adapter folders: identity, loading onto a base model, merging into a plain model.

An adapter folder is what ``peft`` writes (``adapter_config.json`` + ``adapter_model.safetensors``)
plus ``training.json`` and ``loss_curve.png`` from ``aspectrag train embedder``.
LoRA (Hu et al. 2021, section 4.1): W' = W + (alpha / r) · B·A; merging computes W' once so
inference costs the same as the base model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

from aspectrag.errors import ConfigError

log = logging.getLogger("aspectrag.train")

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
# Sentence-transformers files copied next to a merged model so that it stays a drop-in
# replacement for the base folder (pooling settings, max_seq_length).
_ST_FILES = (
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "1_Pooling",
)


def check_adapter_dir(adapter: str | Path) -> Path:
    """Return ``adapter`` as a Path after checking it holds a peft LoRA adapter.

    Raises:
        ConfigError: the folder or its ``adapter_config.json`` / ``adapter_model.safetensors``
            is missing.
    """
    p = Path(adapter)
    for f in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
        if not (p / f).is_file():
            raise ConfigError(
                f"{p}: not a LoRA adapter folder (missing {f}); "
                "create one with `aspectrag train embedder`"
            )
    return p


def adapter_config(adapter: str | Path) -> dict[str, Any]:
    """The adapter's ``adapter_config.json`` as a dict."""
    p = check_adapter_dir(adapter)
    return json.loads((p / ADAPTER_CONFIG).read_text())


def adapter_id(adapter: str | Path) -> str:
    """``"<folder name>@<first 12 hex of sha256(adapter weights)>"``: changes when the adapter is
    retrained into the same folder, so an index built with the old weights is refused."""
    p = check_adapter_dir(adapter)
    digest = hashlib.sha256((p / ADAPTER_WEIGHTS).read_bytes()).hexdigest()[:12]
    return f"{p.resolve().name}@{digest}"


def _peft():  # type: ignore[no-untyped-def]
    try:
        import peft
    except ImportError as e:  # pragma: no cover - peft is in the [train] extra
        raise ConfigError(
            "LoRA adapters need peft: pip install 'aspectrag[train]' (or pip install peft)"
        ) from e
    return peft


def load_unmerged(base_model, adapter: str | Path, *, trainable: bool = False):  # type: ignore[no-untyped-def]
    """``base_model`` (a transformers ``PreTrainedModel``) wrapped in a ``peft.PeftModel`` with the
    adapter applied as separate B·A branches (not merged)."""
    p = check_adapter_dir(adapter)
    return _peft().PeftModel.from_pretrained(base_model, str(p), is_trainable=trainable)


def load_merged(base_model, adapter: str | Path):  # type: ignore[no-untyped-def]
    """``base_model`` with the adapter merged into its weights (a plain transformers model)."""
    merged = load_unmerged(base_model, adapter).merge_and_unload()
    log.info("loaded LoRA adapter %s (merged)", adapter)
    return merged


def merge_adapter(
    adapter: str | Path, out_dir: str | Path, *, base_model_path: str | None = None
) -> Path:
    """Write a plain model folder with the adapter merged in (``aspectrag train merge``).

    The result loads with ``AutoModel`` / ``HFEmbedder(out_dir)`` without peft; the base
    folder's tokenizer and sentence-transformers files (pooling config) are copied along.

    Args:
        adapter: adapter folder.
        out_dir: output folder; must not exist or be empty (nothing is overwritten).
        base_model_path: base model folder; default: the one recorded in the adapter config.

    Raises:
        ConfigError: not an adapter folder, base model folder missing, or ``out_dir`` not empty.
    """
    from transformers import AutoModel, AutoTokenizer

    cfg = adapter_config(adapter)
    base = base_model_path or cfg.get("base_model_name_or_path")
    if not base or not Path(base).is_dir():
        raise ConfigError(
            f"{adapter}/{ADAPTER_CONFIG}: base model folder {base!r} not found; "
            "pass --base-model PATH"
        )
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out}: folder exists and is not empty; choose a new output folder")
    model = load_merged(AutoModel.from_pretrained(base), adapter)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    AutoTokenizer.from_pretrained(base).save_pretrained(str(out))
    for name in _ST_FILES:
        src = Path(base) / name
        if src.is_dir():
            shutil.copytree(src, out / name)
        elif src.is_file():
            shutil.copy2(src, out / name)
    (out / "merged_from.json").write_text(
        json.dumps({"base_model": str(base), "adapter": adapter_id(adapter)}, indent=2)
    )
    log.info("wrote merged model to %s", out)
    return out

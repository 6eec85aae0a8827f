"""LoRA fine-tuning of the embedding model with the multiple-negatives ranking loss.

LoRA (Hu et al. 2021): the pretrained weights W stay frozen; each adapted projection learns
ΔW = B·A (A: r x d, B: d x r), scaled by alpha / r. B starts at zero, so before the first
update the model is exactly the base model (section 4.1). Following the paper's first choice
(section 7.1), the attention *query* and *value* projections are adapted.

Loss: multiple-negatives ranking loss (Henderson et al. 2017; sentence-transformers
``MultipleNegativesRankingLoss``): for a batch of B queries with their positives, the
(B, B·(1+h)) matrix of scaled cosine similarities between the queries and all passages in the
batch (positives + h hard negatives each) gives the logits of a softmax cross-entropy whose
target for query i is its own positive i. Passages known to be relevant to query i (another
positive of the same query) are masked out instead of being treated as negatives.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aspectrag.embed.hf import HFEmbedder
from aspectrag.errors import ConfigError
from aspectrag.train.data import TrainPair
from aspectrag.train.dev import DevSet, dev_metrics
from aspectrag.train.encode import embed_train

log = logging.getLogger("aspectrag.train")


@dataclass(slots=True)
class LoraSettings:
    """Hyper-parameters of ``train_embedder``.

    Attributes:
        r: LoRA rank. alpha: LoRA scaling numerator (ΔW is scaled by alpha / r).
        dropout: dropout on the LoRA branch input.
        target_modules: names of the adapted ``nn.Linear`` modules (BERT: ``query``, ``value``).
        lr: peak AdamW learning rate (linear warm-up over ``warmup`` of the steps, then linear decay).
        epochs: passes over the pairs. batch_size: queries per step (in-batch negatives).
        scale: similarity scale (inverse temperature) of the loss; 20 as in sentence-transformers.
        max_tokens: truncation of queries and passages, in tokens.
        weight_decay: AdamW weight decay. seed: seeds LoRA init, batching, dropout.
        negatives_per_step: 0 uses all of a pair's hard negatives in every step; n > 0 uses n
            of them per step, a different n each epoch (epoch e takes the pair's negatives
            e*n .. e*n+n-1, cycling), so a pair mined with n x epochs negatives sees each of
            them once: more distinct hard negatives at the cost of n per step.
    """

    r: int = 16
    alpha: int = 32
    dropout: float = 0.1
    target_modules: tuple[str, ...] = ("query", "value")
    lr: float = 1e-3
    epochs: int = 1
    batch_size: int = 32
    scale: float = 20.0
    max_tokens: int = 256
    warmup: float = 0.1
    weight_decay: float = 0.01
    seed: int = 0
    negatives_per_step: int = 0


@dataclass(slots=True)
class TrainResult:
    """What ``train_embedder`` did: adapter folder, per-step losses, seconds, sizes, the
    trained ``peft.PeftModel`` (eval mode, adapter not merged) and, with a dev set, its
    metrics before and after training."""

    adapter_dir: Path
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    trainable_params: int = 0
    adapter_bytes: int = 0
    model: Any = None
    dev: dict[str, Any] | None = None


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch RNGs (LoRA A init, dropout, batch order)."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_lora_model(base_model, settings: LoraSettings):  # type: ignore[no-untyped-def]
    """Wrap a transformers encoder in a peft LoRA model (B = 0: an exact no-op at start).

    Raises:
        ConfigError: none of ``settings.target_modules`` exists in the model.
    """
    from peft import LoraConfig, get_peft_model

    names = {n.rsplit(".", 1)[-1] for n, _ in base_model.named_modules()}
    if not set(settings.target_modules) & names:
        raise ConfigError(
            f"LoRA target modules {list(settings.target_modules)} not found in the model "
            f"(it has e.g. {sorted(names)[:12]}); pass --target-modules"
        )
    cfg = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(settings.target_modules),
        bias="none",
    )
    return get_peft_model(base_model, cfg)


def epoch_negatives(pairs: Sequence[TrainPair], epoch: int, n: int) -> list[TrainPair]:
    """The pairs as used in ``epoch`` (0-based): with ``n`` > 0, each keeps ``n`` of its
    negatives, slice ``epoch*n .. epoch*n+n-1`` of its list, cycling (``LoraSettings.
    negatives_per_step``); with ``n`` = 0, or a pair with at most ``n`` negatives, unchanged."""
    if n <= 0:
        return list(pairs)
    out: list[TrainPair] = []
    for p in pairs:
        m = len(p.negatives)
        negs = p.negatives if m <= n else [p.negatives[(epoch * n + j) % m] for j in range(n)]
        out.append(TrainPair(p.query, p.positive, list(negs)))
    return out


def make_batches(
    pairs: Sequence[TrainPair], batch_size: int, rng: np.random.Generator
) -> list[list[int]]:
    """Shuffle pairs into batches where no query text and no passage text occurs twice (a
    duplicate would be both target and negative). Every pair is used exactly once."""
    pending = [int(i) for i in rng.permutation(len(pairs))]
    batches: list[list[int]] = []
    while pending:
        batch: list[int] = []
        seen_q: set[str] = set()
        seen_d: set[str] = set()
        rest: list[int] = []
        for i in pending:
            p = pairs[i]
            docs = {p.positive, *p.negatives}
            if len(batch) < batch_size and p.query not in seen_q and not docs & seen_d:
                batch.append(i)
                seen_q.add(p.query)
                seen_d |= docs
            else:
                rest.append(i)
        batches.append(batch)
        pending = rest
    return batches


def mnrl_loss(
    q, d, batch: Sequence[TrainPair], docs: Sequence[str], known: dict[str, set[str]], scale: float
):  # type: ignore[no-untyped-def]
    """Multiple-negatives ranking loss. ``q``: (B, dim) query embeddings; ``d``: (N, dim)
    passage embeddings, rows 0..B-1 the positives of the B queries, then hard negatives;
    ``docs``: the N passage texts; ``known``: query text -> all its positive passages (masked)."""
    import torch

    logits = scale * q @ d.T
    mask = torch.zeros_like(logits, dtype=torch.bool)
    for i, p in enumerate(batch):
        for j, text in enumerate(docs):
            if j != i and text in known[p.query]:
                mask[i, j] = True
    logits = logits.masked_fill(mask, float("-inf"))
    target = torch.arange(len(batch), device=logits.device)
    return torch.nn.functional.cross_entropy(logits, target)


def train_embedder(
    pairs: Sequence[TrainPair],
    out_dir: str | Path,
    *,
    model_path: str | None = None,
    settings: LoraSettings | None = None,
    show_progress: bool = True,
    data_source: str = "",
    dev: DevSet | None = None,
) -> TrainResult:
    """Train a LoRA adapter on (query, positive[, negatives]) pairs; write it to ``out_dir``.

    Writes ``adapter_config.json`` + ``adapter_model.safetensors`` (peft), ``training.json``
    (settings, data, per-step losses, seconds) and ``loss_curve.png``. Reproducible for a given
    seed and thread count.

    Args:
        pairs: training pairs (at least 2: in-batch negatives need a batch).
        out_dir: adapter folder; must not exist or be empty.
        model_path: base encoder folder (default: the bundled all-MiniLM-L6-v2).
        settings: hyper-parameters (defaults of ``LoraSettings``).
        show_progress: progress bar (rich, on stderr) with the running loss.
        data_source: description of the pairs' origin, recorded in ``training.json``.
        dev: held-out queries and their dev corpus (``train/dev.py``); nDCG@10 and Recall@10
            before and after training are recorded in ``training.json`` and the result.

    Raises:
        ConfigError: fewer than 2 pairs, ``out_dir`` not empty, bad target modules.
    """
    import torch
    from transformers import get_linear_schedule_with_warmup

    s = settings or LoraSettings()
    if len(pairs) < 2:
        raise ConfigError("need at least 2 training pairs (in-batch negatives need a batch)")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out}: folder exists and is not empty; choose a new adapter folder")
    base = HFEmbedder(model_path)  # thread setup + the exact base model/tokenizer used at search
    tokenizer, model = base.tokenizer, base.model
    seed_everything(s.seed)
    model = make_lora_model(model, s)
    dev_before = dev_metrics(model, tokenizer, dev, s.max_tokens) if dev is not None else None
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    n_trainable = sum(p.numel() for p in params)
    rng = np.random.default_rng(s.seed)
    plan = []  # per epoch: the pairs with that epoch's negatives, and their batches
    for e in range(s.epochs):
        ep = epoch_negatives(pairs, e, s.negatives_per_step)
        plan.append((ep, make_batches(ep, s.batch_size, rng)))
    steps = sum(len(b) for _, b in plan)
    opt = torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay)
    sched = get_linear_schedule_with_warmup(opt, int(s.warmup * steps), steps)
    known: dict[str, set[str]] = defaultdict(set)
    for p in pairs:
        known[p.query].add(p.positive)
    log.info(
        "LoRA r=%d alpha=%d on %s: %d trainable params, %d pairs, %d steps",
        s.r,
        s.alpha,
        list(s.target_modules),
        n_trainable,
        len(pairs),
        steps,
    )
    losses: list[float] = []
    bar = _bar(show_progress, steps)
    t0 = time.perf_counter()
    for epoch_pairs, epoch_batches in plan:
        for idx in epoch_batches:
            batch = [epoch_pairs[i] for i in idx]
            docs = [p.positive for p in batch] + [x for p in batch for x in p.negatives]
            q = embed_train(model, tokenizer, [p.query for p in batch], s.max_tokens)
            d = embed_train(model, tokenizer, docs, s.max_tokens)
            loss = mnrl_loss(q, d, batch, docs, known, s.scale)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{losses[-1]:.4f}")
    seconds = time.perf_counter() - t0
    if bar is not None:
        bar.close()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    _fix_base_path(out, base.model_path)
    weights = out / "adapter_model.safetensors"
    model.eval()
    result = TrainResult(out, losses, seconds, n_trainable, weights.stat().st_size, model)
    if dev is not None and dev_before is not None:
        result.dev = {
            "queries": len(dev.queries),
            "corpus": len(dev.corpus),
            "before": dev_before,
            "after": dev_metrics(model, tokenizer, dev, s.max_tokens),
        }
        log.info("dev %s", result.dev)
    settings_d = asdict(s)
    settings_d["target_modules"] = list(s.target_modules)
    meta = {
        "base_model": base.model_path,
        "settings": settings_d,
        "data": data_source,
        "pairs": len(pairs),
        "hard_negatives_per_pair": max((len(p.negatives) for p in pairs), default=0),
        "hard_negatives_per_step": max(
            (len(p.negatives) for p in epoch_negatives(pairs, 0, s.negatives_per_step)),
            default=0,
        ),
        "steps": steps,
        "seconds": round(seconds, 2),
        "torch_threads": torch.get_num_threads(),
        "trainable_params": n_trainable,
        "adapter_bytes": result.adapter_bytes,
        "losses": [round(x, 6) for x in losses],
    }
    if result.dev is not None:
        meta["dev"] = result.dev
    (out / "training.json").write_text(json.dumps(meta, indent=2))
    plot_loss_curve(
        losses, out / "loss_curve.png", title=f"LoRA r={s.r} alpha={s.alpha} ({len(pairs)} pairs)"
    )
    log.info("adapter written to %s (%d bytes, %.1f s)", out, result.adapter_bytes, seconds)
    return result


def _fix_base_path(out: Path, base_path: str) -> None:
    """Record the base model folder (absolute) in adapter_config.json, for ``train merge``."""
    cfg_path = out / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = str(Path(base_path).resolve())
    cfg_path.write_text(json.dumps(cfg, indent=2))


def plot_loss_curve(losses: Sequence[float], path: str | Path, title: str = "") -> Path:
    """PNG of the per-step training loss and its moving average (window = 10% of the steps)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=110)
    x = np.arange(1, len(losses) + 1)
    ax.plot(x, losses, lw=0.8, alpha=0.5, label="loss per step")
    w = max(1, len(losses) // 10)
    if len(losses) >= w > 1:
        ma = np.convolve(losses, np.ones(w) / w, mode="valid")
        ax.plot(x[w - 1 :], ma, lw=2, label=f"moving average ({w} steps)")
    ax.set_xlabel("step")
    ax.set_ylabel("multiple-negatives ranking loss")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def _bar(show: bool, total: int):  # type: ignore[no-untyped-def]
    if not show:
        return None
    from aspectrag.progress import progress_bar

    return progress_bar(total, "training", "step")

"""Token vectors and window embeddings of texts longer than the model's input limit.

A text is split into windows of at most ``max_tokens`` tokens (special tokens included),
overlapping by ``overlap`` tokens, so that nothing is truncated. One forward pass per window
gives both:
- its token vectors (contextual last-layer states, L2-normalised, special and padding tokens
  dropped): the document side of late interaction (ColBERT, Khattab & Zaharia 2020, section 3.2);
- its sentence embedding, pooled exactly as ``HFEmbedder.encode`` (mean over all non-padding
  tokens, L2 norm): for bi-encoder rescoring of the full text.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from aspectrag.embed.base import TransformerEmbedder
from aspectrag.embed.hf import tokenizer_lock
from aspectrag.embed.pooling import mean_pool

_PUNCT = set(string.punctuation)


@dataclass(slots=True)
class Encoded:
    """Encodings of one text.

    Attributes:
        tokens: float32 (n_tokens, dim), unit rows: token vectors of all windows, in order
            (tokens in an overlap appear twice, harmless for MaxSim).
        windows: float32 (n_windows, dim), unit rows: pooled embedding of each window.
    """

    tokens: np.ndarray
    windows: np.ndarray


def encode_texts(
    embedder: TransformerEmbedder,
    texts: Sequence[str],
    *,
    overlap: int = 32,
    max_windows: int | None = None,
    skip_punctuation: bool = False,
    batch_size: int | None = None,
) -> list[Encoded]:
    """Encode ``texts`` window by window (see module doc).

    Args:
        embedder: provides ``tokenizer``, ``model`` (a transformers encoder) and ``max_tokens``.
        texts: input texts; an empty text gives zero token rows and one window of the empty input.
        overlap: tokens shared by consecutive windows.
        max_windows: keep only the first windows (None: all; 1: plain truncation, as for queries).
        skip_punctuation: drop token vectors of pure-punctuation tokens (ColBERT does this for
            documents, section 3.2).
        batch_size: windows per forward pass (default: the embedder's).
    """
    import torch

    tok, model = embedder.tokenizer, embedder.model
    texts = list(texts)
    # Fast tokenizers split long inputs into overlapping windows themselves ("overflow").
    with tokenizer_lock(tok):  # one shared tokenizer: its truncation settings are global
        enc_all = tok(
            texts,
            truncation=True,
            max_length=embedder.max_tokens,
            stride=overlap,
            return_overflowing_tokens=max_windows != 1,
            return_special_tokens_mask=True,
        )
    mapping = enc_all.get("overflow_to_sample_mapping", list(range(len(texts))))
    windows: list[tuple[int, list[int], np.ndarray]] = []  # (text index, ids, keep mask)
    per_text_count = [0] * len(texts)
    for w, t in enumerate(mapping):
        if max_windows is not None and per_text_count[t] >= max_windows:
            continue
        per_text_count[t] += 1
        ids = list(enc_all["input_ids"][w])
        keep = ~np.array(enc_all["special_tokens_mask"][w], bool)
        if skip_punctuation:
            pieces = tok.convert_ids_to_tokens(ids)
            keep &= np.array([not (set(p) <= _PUNCT) for p in pieces], bool)
        windows.append((int(t), ids, keep))
    bs = batch_size or embedder.batch_size
    order = sorted(range(len(windows)), key=lambda i: -len(windows[i][1]))
    tok_out: list[np.ndarray | None] = [None] * len(windows)
    pool_out: list[np.ndarray | None] = [None] * len(windows)
    pad = tok.pad_token_id or 0
    with torch.inference_mode():
        for b in range(0, len(order), bs):
            idx = order[b : b + bs]
            width = max(len(windows[i][1]) for i in idx)
            input_ids = torch.full((len(idx), width), pad, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for r, i in enumerate(idx):
                w = windows[i][1]
                input_ids[r, : len(w)] = torch.tensor(w)
                mask[r, : len(w)] = 1
            enc = {"input_ids": input_ids, "attention_mask": mask}
            if "token_type_ids" in tok.model_input_names:
                enc["token_type_ids"] = torch.zeros_like(input_ids)
            enc = {k: v.to(embedder.device) for k, v in enc.items()}
            hidden = model(**enc).last_hidden_state
            pooled = mean_pool(hidden, enc["attention_mask"]).float().cpu().numpy()
            normed = torch.nn.functional.normalize(hidden, dim=-1).float().cpu().numpy()
            for r, i in enumerate(idx):
                n = len(windows[i][1])
                tok_out[i] = normed[r, :n][windows[i][2]]
                pool_out[i] = pooled[r]
    dim = embedder.dim
    per_text_tok: list[list[np.ndarray]] = [[] for _ in texts]
    per_text_win: list[list[np.ndarray]] = [[] for _ in texts]
    for i, (t, _, _) in enumerate(windows):
        per_text_tok[t].append(tok_out[i])  # type: ignore[arg-type]
        per_text_win[t].append(pool_out[i])  # type: ignore[arg-type]
    return [
        Encoded(
            tokens=np.concatenate(tv).astype(np.float32) if tv else np.zeros((0, dim), np.float32),
            windows=np.stack(wv).astype(np.float32),
        )
        for tv, wv in zip(per_text_tok, per_text_win, strict=True)
    ]

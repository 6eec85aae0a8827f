"""A local Hugging Face language model (causal or seq2seq) loaded from a folder, with the
per-token log-probabilities that RAG-Sequence / RAG-Token need.

Batches of prompts are padded on the left for causal models (so every prompt ends at the same
column and the answer occupies the same columns), with explicit ``position_ids`` so padding
does not shift positions; encoder-decoder models pad the encoder input and decode from
``decoder_start_token_id``. Log-probabilities are float32 log-softmax of the model's logits.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from aspectrag.generate.base import GenerationError
from aspectrag.generate.prompt import Prompt, PromptTemplate, build_prompt
from aspectrag.types import Hit

log = logging.getLogger("aspectrag.generate")


class LocalLM:
    """A causal (GPT-2, Llama, ...) or seq2seq (T5, BART, ...) model from a local folder.

    Args:
        path: folder with ``config.json``, weights and tokenizer files (``save_pretrained``).
        device: torch device ("cpu", "cuda"); default: "cuda" if available, else "cpu".
        context_tokens: prompt + answer budget in tokens (default: the model's position limit,
            or 2048 when it has none).
        dtype: torch dtype for the weights (default float32 on CPU, the saved one on GPU).

    Raises:
        GenerationError: the folder is missing or holds no loadable model/tokenizer.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        device: str | None = None,
        context_tokens: int | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        self.path = Path(path)
        if not (self.path / "config.json").is_file():
            raise GenerationError(
                f"{self.path}: not a Hugging Face model folder (no config.json); pass --llm hf:PATH "
                "with a folder written by save_pretrained"
            )
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._context_tokens = context_tokens
        self._dtype = dtype

    @cached_property
    def tokenizer(self) -> Any:
        from transformers import AutoTokenizer

        try:
            tok = AutoTokenizer.from_pretrained(self.path)
        except (OSError, ValueError) as e:
            raise GenerationError(f"{self.path}: cannot load the tokenizer ({e})") from e
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        return tok

    @cached_property
    def model(self) -> Any:
        from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM

        try:
            cfg = AutoConfig.from_pretrained(self.path)
            cls = AutoModelForSeq2SeqLM if cfg.is_encoder_decoder else AutoModelForCausalLM
            kw: dict[str, Any] = {}
            if self._dtype is not None:
                kw["dtype"] = self._dtype
            m = cls.from_pretrained(self.path, **kw)
        except (OSError, ValueError) as e:
            raise GenerationError(f"{self.path}: cannot load the model ({e})") from e
        m.eval()
        return m.to(self.device)

    @property
    def is_encoder_decoder(self) -> bool:
        return bool(self.model.config.is_encoder_decoder)

    @property
    def eos_token_id(self) -> int:
        eos = self.model.generation_config.eos_token_id
        if isinstance(eos, list):
            eos = eos[0]
        if eos is None:
            eos = self.tokenizer.eos_token_id
        return int(eos)

    @property
    def pad_token_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(pad if pad is not None else self.eos_token_id)

    @property
    def decoder_start_token_id(self) -> int:
        cfg = self.model.config
        start = getattr(cfg, "decoder_start_token_id", None)
        if start is None:
            start = self.model.generation_config.decoder_start_token_id
        return int(start if start is not None else self.pad_token_id)

    @property
    def context_tokens(self) -> int:
        """Prompt + answer budget in tokens."""
        cfg = self.model.config
        limit = None
        for name in ("n_positions", "max_position_embeddings"):
            if isinstance(getattr(cfg, name, None), int):
                limit = getattr(cfg, name)
                break
        if self._context_tokens is not None:
            return min(self._context_tokens, limit) if limit else self._context_tokens
        return limit or 2048

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` with this model's tokenizer (no special tokens)."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def render(self, prompt: Prompt) -> str:
        """Prompt text for the model: its chat template when it has one, else ``as_text``."""
        if not self.is_encoder_decoder and getattr(self.tokenizer, "chat_template", None):
            return str(
                self.tokenizer.apply_chat_template(
                    prompt.messages(), tokenize=False, add_generation_prompt=True
                )
            )
        return prompt.as_text()

    def encode_prompt(self, text: str) -> list[int]:
        """Token ids of a rendered prompt (with the tokenizer's special tokens, e.g. BOS/EOS)."""
        return list(self.tokenizer(text)["input_ids"])

    def build_prompt(
        self,
        question: str,
        hits: Sequence[Hit],
        *,
        max_new_tokens: int,
        template: PromptTemplate | None = None,
        numbers: Sequence[int] | None = None,
    ) -> tuple[Prompt, list[int]]:
        """Grounded prompt packed to ``context_tokens - max_new_tokens`` with this model's
        tokenizer (template and special tokens included); returns it and its token ids."""
        overhead = len(self.encode_prompt(self.render(Prompt("", "")))) + 4
        budget = self.context_tokens - max_new_tokens - overhead
        if budget <= 0:
            raise GenerationError(
                f"{self.path}: context of {self.context_tokens} tokens leaves no room for a "
                f"prompt and {max_new_tokens} new tokens; lower max_new_tokens"
            )
        p = build_prompt(
            question,
            hits,
            template=template,
            budget_tokens=budget,
            count_tokens=self.count_tokens,
            numbers=numbers,
        )
        ids = self.encode_prompt(self.render(p))
        room = self.context_tokens - max_new_tokens
        if len(ids) > room:
            log.warning("prompt of %d tokens cut to the last %d (model context)", len(ids), room)
            ids = ids[-room:]
        return p, ids

    # ---- batched per-document scoring -------------------------------------------------

    def _left_pad(self, rows: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            if r:
                ids[i, width - len(r) :] = torch.tensor(list(r), dtype=torch.long)
                mask[i, width - len(r) :] = 1
        return ids.to(self.device), mask.to(self.device)

    @torch.inference_mode()
    def token_logprobs(
        self, prompts: Sequence[Sequence[int]], answer: Sequence[int]
    ) -> torch.Tensor:
        """Teacher-forced ``log p(y_i | x, z, y_<i)`` for every prompt ``z``.

        Args:
            prompts: Z prompt token-id lists (one per document).
            answer: the T answer token ids y (append EOS yourself to score a finished answer).

        Returns:
            float32 tensor of shape (Z, T) on the CPU.
        """
        y = torch.tensor(list(answer), dtype=torch.long, device=self.device)
        z, t = len(prompts), len(answer)
        if t == 0:
            return torch.zeros((z, 0))
        if self.is_encoder_decoder:
            enc, enc_mask = self._right_pad(prompts)
            dec = torch.cat(
                [torch.full((1,), self.decoder_start_token_id, device=self.device), y[:-1]]
            ).expand(z, t)
            logits = self.model(
                input_ids=enc, attention_mask=enc_mask, decoder_input_ids=dec
            ).logits
        else:
            ids, mask = self._left_pad([[*p, *answer] for p in prompts])
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            logits = self.model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
            logits = logits[:, -t - 1 : -1]
        lp = torch.log_softmax(logits.float(), dim=-1)
        return lp.gather(-1, y.expand(z, t).unsqueeze(-1)).squeeze(-1).cpu()

    def _right_pad(self, rows: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(list(r), dtype=torch.long)
            mask[i, : len(r)] = 1
        return ids.to(self.device), mask.to(self.device)

    def stepper(self, prompts: Sequence[Sequence[int]]) -> Stepper:
        """Incremental decoder over Z prompts that share the generated tokens (RAG-Token)."""
        return Stepper(self, prompts)


class Stepper:
    """Next-token log-probabilities for Z documents that all continue with the same tokens,
    using the key/value cache (one forward pass over the prompts, then one token per step).

    ``first()`` -> (Z, V) log-probs of the first answer token; ``advance(token)`` appends
    ``token`` to every row and returns the next (Z, V) log-probs (float32, CPU).
    """

    def __init__(self, lm: LocalLM, prompts: Sequence[Sequence[int]]) -> None:
        self.lm = lm
        self.z = len(prompts)
        self.prompts = prompts
        self.past: Any = None

    @torch.inference_mode()
    def first(self) -> torch.Tensor:
        lm, m = self.lm, self.lm.model
        if lm.is_encoder_decoder:
            ids, self.enc_mask = lm._right_pad(self.prompts)
            self.enc_out = m.get_encoder()(input_ids=ids, attention_mask=self.enc_mask)
            start = torch.full((self.z, 1), lm.decoder_start_token_id, device=lm.device)
            out = m(
                encoder_outputs=self.enc_out,
                attention_mask=self.enc_mask,
                decoder_input_ids=start,
                use_cache=True,
            )
        else:
            ids, self.mask = lm._left_pad(self.prompts)
            self.pos = (self.mask.cumsum(-1) - 1).clamp(min=0)
            out = m(input_ids=ids, attention_mask=self.mask, position_ids=self.pos, use_cache=True)
            self.pos = self.pos[:, -1:]
        self.past = out.past_key_values
        return torch.log_softmax(out.logits[:, -1].float(), dim=-1).cpu()

    @torch.inference_mode()
    def advance(self, token: int) -> torch.Tensor:
        lm, m = self.lm, self.lm.model
        tok = torch.full((self.z, 1), int(token), dtype=torch.long, device=lm.device)
        if lm.is_encoder_decoder:
            out = m(
                encoder_outputs=self.enc_out,
                attention_mask=self.enc_mask,
                decoder_input_ids=tok,
                past_key_values=self.past,
                use_cache=True,
            )
        else:
            self.mask = torch.cat([self.mask, torch.ones_like(tok)], dim=-1)
            self.pos = self.pos + 1
            out = m(
                input_ids=tok,
                attention_mask=self.mask,
                position_ids=self.pos,
                past_key_values=self.past,
                use_cache=True,
            )
        self.past = out.past_key_values
        return torch.log_softmax(out.logits[:, -1].float(), dim=-1).cpu()

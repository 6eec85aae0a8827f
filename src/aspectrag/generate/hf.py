"""Concatenation decoding with a local Hugging Face model (``--llm hf:PATH``): all passages in
one grounded prompt, packed to the model's context with its own tokenizer, greedy decoding,
citations checked."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import torch

from aspectrag.generate.base import AnswerStream
from aspectrag.generate.citations import check_citations
from aspectrag.generate.hf_model import LocalLM
from aspectrag.generate.prompt import Prompt, PromptTemplate
from aspectrag.types import Answer, Hit

log = logging.getLogger("aspectrag.generate")


class HFGenerator:
    """Grounded, cited answers from a local causal (GPT-2, Llama, Qwen...) or seq2seq (T5,
    BART...) model folder, on CPU or GPU.

    The prompt is ``prompt.build_prompt`` rendered with the model's chat template when it has
    one (else as plain text), packed to ``context_tokens - max_new_tokens`` tokens counted
    with the model's tokenizer. Decoding is greedy (deterministic). Citations are checked.

    Args:
        path: model folder (``save_pretrained`` layout).
        max_new_tokens: answer length limit in tokens.
        device: "cpu" / "cuda" (default: cuda if available).
        context_tokens: prompt + answer budget (default: the model's position limit).
        template: prompt templates.

    Raises:
        GenerationError: the folder holds no loadable model (on first use).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        max_new_tokens: int = 256,
        device: str | None = None,
        context_tokens: int | None = None,
        template: PromptTemplate | None = None,
    ) -> None:
        self.lm = LocalLM(path, device=device, context_tokens=context_tokens)
        self.max_new_tokens = max_new_tokens
        self.template = template
        self.name = f"hf:{self.lm.path.name}"

    def _inputs(self, question: str, hits: Sequence[Hit]) -> tuple[Prompt, dict[str, torch.Tensor]]:
        prompt, ids = self.lm.build_prompt(
            question, hits, max_new_tokens=self.max_new_tokens, template=self.template
        )
        t = torch.tensor([ids], dtype=torch.long, device=self.lm.device)
        return prompt, {"input_ids": t, "attention_mask": torch.ones_like(t)}

    def _gen_kwargs(self) -> dict[str, object]:
        return {
            "do_sample": False,
            "num_beams": 1,
            "max_new_tokens": self.max_new_tokens,
            "eos_token_id": self.lm.eos_token_id,
            "pad_token_id": self.lm.pad_token_id,
        }

    def _answer(self, text: str, hits: Sequence[Hit], prompt: Prompt) -> Answer:
        checked = check_citations(text.strip(), hits, prompt.shown)
        return Answer(
            answer=checked.text,
            mode="llm",
            citations=checked.citations,
            extras={
                "model": self.name,
                "invalid_citations": checked.invalid,
                "context": {
                    "shown": prompt.shown,
                    "truncated": prompt.truncated,
                    "dropped": prompt.dropped,
                },
            },
        )

    @torch.inference_mode()
    def generate(self, question: str, hits: Sequence[Hit]) -> Answer:
        """Greedy answer to ``question`` from all ``hits`` in one prompt."""
        prompt, inputs = self._inputs(question, hits)
        out = self.lm.model.generate(**inputs, **self._gen_kwargs())
        start = 0 if self.lm.is_encoder_decoder else inputs["input_ids"].shape[1]
        text = self.lm.tokenizer.decode(out[0, start:], skip_special_tokens=True)
        return self._answer(text, hits, prompt)

    def stream(self, question: str, hits: Sequence[Hit]) -> AnswerStream:
        """Stream text pieces as tokens are generated (``TextIteratorStreamer``)."""
        from transformers import TextIteratorStreamer

        prompt, inputs = self._inputs(question, hits)
        streamer = TextIteratorStreamer(
            self.lm.tokenizer, skip_prompt=True, skip_special_tokens=True
        )
        errors: list[BaseException] = []

        def run() -> None:
            try:
                with torch.inference_mode():
                    self.lm.model.generate(**inputs, **self._gen_kwargs(), streamer=streamer)
            except BaseException as e:  # surfaced after the stream ends
                errors.append(e)
                streamer.end()

        threading.Thread(target=run, daemon=True).start()

        def pieces():  # type: ignore[no-untyped-def]
            for piece in streamer:
                if piece:
                    yield piece
            if errors:
                raise errors[0]

        return AnswerStream(pieces(), finish=lambda text: self._answer(text, hits, prompt))

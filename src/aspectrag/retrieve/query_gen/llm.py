"""Query variants from an LLM: an OpenAI-compatible chat endpoint or a local causal LM.

Method: Multi-Query retrieval (LangChain ``MultiQueryRetriever``; RAG-Fusion, Rackauckas 2024):
the LLM writes ``n`` alternative phrasings / sub-questions of the user's question. The output
is parsed with :func:`aspectrag.retrieve.query_gen.parse.parse_queries`; on nothing usable,
an HTTP error or a timeout the generator logs a warning and falls back to the question.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from aspectrag.errors import ConfigError
from aspectrag.retrieve.query_gen.base import SubQuery, fallback
from aspectrag.retrieve.query_gen.parse import parse_queries

log = logging.getLogger("aspectrag.multiquery")

DEFAULT_PROMPT = (
    "You are an AI language model assistant. Your task is to generate {n} different search "
    "queries for the user question below, to retrieve relevant documents from a search "
    "engine. If the question has several aspects or parts, write one query per aspect; "
    "otherwise look at the question from different perspectives. Provide only the queries, "
    "one per line, without numbering or explanations.\n\nQuestion: {question}"
)


def check_template(template: str) -> str:
    """Validate a prompt template: it must contain ``{question}`` (``{n}`` is optional).

    Raises:
        ConfigError: when ``{question}`` is missing or the template has other fields.
    """
    if "{question}" not in template:
        raise ConfigError(
            "query prompt template: it must contain the placeholder {question} "
            "(and may contain {n}); literal braces must be doubled ({{ }})"
        )
    try:
        template.format(question="q", n=3)
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(
            f"query prompt template: invalid placeholder {exc}; only {{question}} and {{n}} "
            "are allowed, literal braces must be doubled ({{ }})"
        ) from exc
    return template


def _to_subqueries(question: str, texts: list[str], origin: str, source: str) -> list[SubQuery]:
    if not texts:
        log.warning("%s: no usable query in the model output; using the question", source)
        return fallback(question)
    return [SubQuery(t, 1.0, origin) for t in texts]


class OpenAIQueryGenerator:
    """Query variants from an OpenAI-compatible ``/chat/completions`` endpoint.

    Args:
        model: model name sent to the endpoint.
        base_url: endpoint root, e.g. ``http://127.0.0.1:8000/v1`` (vLLM, llama.cpp, Ollama,
            OpenAI).
        api_key: bearer token (endpoints that need none accept any string).
        n: number of variants asked for and kept (default 3).
        template: user prompt with ``{question}`` and optionally ``{n}``.
        temperature: sampling temperature.
        timeout: seconds for the whole request; no retries are made (the search must go on).
        max_tokens: completion limit in tokens.
        max_chars: parsed lines longer than this many characters are dropped.

    Raises:
        ConfigError: invalid template or n < 1.
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        n: int = 3,
        template: str = DEFAULT_PROMPT,
        temperature: float = 0.0,
        timeout: float = 30.0,
        max_tokens: int = 512,
        max_chars: int = 300,
    ) -> None:
        if n < 1:
            raise ConfigError(f"multi-query: n must be >= 1, got {n}")
        from aspectrag.llm import openai_client

        self.model = model
        self.n = n
        self.template = check_template(template)
        self.temperature = temperature
        self.timeout = timeout
        self.max_tokens = max_tokens
        self.max_chars = max_chars
        self.name = f"llm:{model}"
        self._client = openai_client(
            base_url=base_url, api_key=api_key, timeout=timeout, max_retries=0
        )

    def complete(self, question: str) -> str:
        """Raw completion text for ``question``. Raises the ``openai`` client's errors."""
        resp = self._client.chat.completions.create(
            model=self.model,
            messages=[
                {"role": "user", "content": self.template.format(question=question, n=self.n)}
            ],
            temperature=self.temperature,
            max_tokens=self.max_tokens,
        )
        if not resp.choices:
            return ""
        return resp.choices[0].message.content or ""

    def generate(self, question: str) -> list[SubQuery]:
        """Up to ``n`` parsed variants; ``[question]`` (origin ``"fallback"``) on any failure."""
        t0 = time.perf_counter()
        try:
            text = self.complete(question)
        except Exception as exc:  # HTTP error, timeout, connection refused, bad JSON: never fail
            log.warning(
                "%s: query generation failed after %.1f s (%s: %s); using the question",
                self.name,
                time.perf_counter() - t0,
                type(exc).__name__,
                exc,
            )
            return fallback(question)
        queries = parse_queries(text, self.n, max_chars=self.max_chars)
        log.info("%s: %d queries in %.2f s", self.name, len(queries), time.perf_counter() - t0)
        return _to_subqueries(question, queries, "llm", self.name)


class HFQueryGenerator:
    """Query variants from a local Hugging Face language model (a folder; nothing is
    downloaded), loaded by ``aspectrag.llm.load_model`` (causal or seq2seq).

    Uses the tokenizer's chat template when it has one (causal models), else the plain prompt.
    Greedy decoding when ``temperature`` is 0, sampling otherwise.

    Args:
        model_path: folder with ``config.json``, weights and tokenizer files.
        n, template, temperature, max_chars: as for :class:`OpenAIQueryGenerator`.
        max_new_tokens: generation limit in tokens.
        timeout: seconds; generation stops (``MaxTimeCriteria``) and the partial output is parsed.
        device: torch device string (default: "cuda" if available, else "cpu").

    Raises:
        ConfigError: the folder does not exist, invalid template, or n < 1.
    """

    def __init__(
        self,
        model_path: str | Path,
        *,
        n: int = 3,
        template: str = DEFAULT_PROMPT,
        temperature: float = 0.0,
        max_new_tokens: int = 128,
        timeout: float = 60.0,
        max_chars: int = 300,
        device: str | None = None,
    ) -> None:
        from aspectrag.llm import check_model_folder, pick_device

        path = check_model_folder(model_path)
        if n < 1:
            raise ConfigError(f"multi-query: n must be >= 1, got {n}")
        self.model_path = path
        self.n = n
        self.template = check_template(template)
        self.temperature = temperature
        self.max_new_tokens = max_new_tokens
        self.timeout = timeout
        self.max_chars = max_chars
        self.device = pick_device(device)
        self.name = f"hf:{path.name}"
        self._model: Any = None
        self._tokenizer: Any = None

    def _load(self) -> None:
        if self._model is not None:
            return
        from aspectrag.llm import load_model, load_tokenizer

        self._tokenizer = load_tokenizer(self.model_path)
        self._model = load_model(self.model_path, device=self.device)

    def complete(self, question: str) -> str:
        """Raw generated text (prompt excluded)."""
        import torch
        from transformers import MaxTimeCriteria, StoppingCriteriaList

        self._load()
        tok, model = self._tokenizer, self._model
        prompt = self.template.format(question=question, n=self.n)
        seq2seq = bool(model.config.is_encoder_decoder)
        if getattr(tok, "chat_template", None) and not seq2seq:
            ids = tok.apply_chat_template(
                [{"role": "user", "content": prompt}],
                add_generation_prompt=True,
                return_tensors="pt",
                return_dict=True,
            )["input_ids"]
        else:
            ids = tok(prompt, return_tensors="pt")["input_ids"]
        ids = ids.to(self.device)
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        kwargs: dict[str, Any] = {"do_sample": self.temperature > 0}
        if self.temperature > 0:
            kwargs["temperature"] = self.temperature
        with torch.inference_mode():
            out = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=self.max_new_tokens,
                pad_token_id=pad,
                stopping_criteria=StoppingCriteriaList([MaxTimeCriteria(self.timeout)]),
                **kwargs,
            )
        start = 0 if seq2seq else ids.shape[1]  # a decoder-only output repeats the prompt
        return tok.decode(out[0, start:], skip_special_tokens=True)

    def generate(self, question: str) -> list[SubQuery]:
        """Up to ``n`` parsed variants; ``[question]`` (origin ``"fallback"``) on any failure."""
        t0 = time.perf_counter()
        try:
            text = self.complete(question)
        except Exception as exc:  # a model that cannot generate must not fail the search
            log.warning(
                "%s: query generation failed (%s: %s); using the question",
                self.name,
                type(exc).__name__,
                exc,
            )
            return fallback(question)
        queries = parse_queries(text, self.n, max_chars=self.max_chars)
        log.info("%s: %d queries in %.2f s", self.name, len(queries), time.perf_counter() - t0)
        return _to_subqueries(question, queries, "llm", self.name)

"""Generation with an OpenAI-compatible endpoint (OpenAI, vLLM, llama.cpp server, Ollama...).

Configuration: constructor arguments override the ``llm`` settings (``aspectrag.settings``:
environment ``ASPECTRAG_LLM_BASE_URL`` / ``_MODEL`` / ``_API_KEY`` / ``_TIMEOUT`` (s, default
60) / ``_MAX_RETRIES`` (default 3) / ``_CONTEXT_TOKENS`` (default 6000),
``ASPECTRAG_PROMPT_TEMPLATE``, then the TOML file ``ASPECTRAG_LLM_CONFIG`` and the config
file's ``[llm]`` table). The client comes from ``aspectrag.llm`` (needs the ``llm`` extra).

Retries use the ``openai`` client's exponential backoff with jitter (0.5 s doubling, capped at
8 s, honouring ``Retry-After``). The server's tokenizer is not available offline, so the
context budget is counted with ``prompt.approx_tokens`` (4 characters per token) unless a
``count_tokens`` function is given.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

from aspectrag.generate.base import AnswerStream, GenerationError
from aspectrag.generate.citations import check_citations
from aspectrag.generate.prompt import (
    Prompt,
    PromptTemplate,
    TokenCounter,
    approx_tokens,
    build_prompt,
)
from aspectrag.llm import NO_KEY, openai_client
from aspectrag.types import Answer, Hit

log = logging.getLogger("aspectrag.generate")

Api = Literal["chat", "completions"]


class OpenAIGenerator:
    """Grounded, cited answers from an OpenAI-compatible chat (default) or completions API.

    The prompt is built by ``prompt.build_prompt`` (numbered passages, cite [n], say when the
    context lacks the answer, passages are data); after generation, citations are checked
    (``citations.check_citations``): numbers of passages not in the prompt are removed and
    listed in ``extras["invalid_citations"]``.

    Args:
        model: model name (default: the ``llm.model`` setting, ``ASPECTRAG_LLM_MODEL``).
        base_url: endpoint (default ``llm.base_url``; None -> api.openai.com).
        api_key: key (default ``llm.api_key`` or "not-needed").
        api: "chat" (``/chat/completions``) or "completions" (``/completions``).
        timeout: seconds per HTTP request (default ``llm.timeout``).
        max_retries: retries with backoff on connection errors, 408, 409, 429 and 5xx
            (default ``llm.max_retries``).
        context_tokens: prompt budget in tokens; passages are packed to fit (default
            ``llm.context_tokens``).
        max_tokens: most tokens generated.
        temperature: sampling temperature (0 = greedy).
        template: prompt templates (default: the ``llm.prompt_template`` file, else built-in).
        count_tokens: token counter for the budget (default ``approx_tokens``).

    Raises:
        ConfigError: no model given and ``ASPECTRAG_LLM_MODEL`` unset; invalid settings.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        api: Api = "chat",
        timeout: float | None = None,
        max_retries: int | None = None,
        context_tokens: int | None = None,
        max_tokens: int = 512,
        temperature: float = 0.0,
        template: PromptTemplate | None = None,
        count_tokens: TokenCounter = approx_tokens,
    ) -> None:
        from aspectrag.errors import ConfigError
        from aspectrag.llm import resolve_llm

        cfg = resolve_llm(
            model,
            base_url=base_url,
            api_key=api_key,
            timeout=timeout,
            max_retries=max_retries,
            context_tokens=context_tokens,
        )
        self.model = cfg.model or ""
        if not self.model:
            raise ConfigError(
                "no LLM model: pass --llm openai:MODEL or set ASPECTRAG_LLM_MODEL "
                "(and ASPECTRAG_LLM_BASE_URL for a non-OpenAI server)"
            )
        self.base_url = cfg.base_url
        self.api_key = cfg.api_key or NO_KEY
        self.api: Api = api
        self.timeout = float(cfg.timeout)
        self.max_retries = int(cfg.max_retries)
        self.context_tokens = int(cfg.context_tokens)
        self.max_tokens = max_tokens
        self.temperature = temperature
        tpl_file = cfg.prompt_template
        self.template = template or (
            PromptTemplate.from_file(tpl_file) if tpl_file else PromptTemplate()
        )
        self.count_tokens = count_tokens
        self.name = f"openai:{self.model}"
        self._client: Any = None

    @property
    def client(self) -> Any:
        """The ``openai.OpenAI`` client (created on first use)."""
        if self._client is None:
            self._client = openai_client(
                base_url=self.base_url,
                api_key=self.api_key,
                timeout=self.timeout,
                max_retries=self.max_retries,
            )
        return self._client

    def prompt(self, question: str, hits: Sequence[Hit]) -> Prompt:
        """The grounded prompt, packed to ``context_tokens`` minus the answer's ``max_tokens``."""
        return build_prompt(
            question,
            hits,
            template=self.template,
            budget_tokens=max(self.context_tokens - self.max_tokens, 1),
            count_tokens=self.count_tokens,
        )

    def _request(self, prompt: Prompt, stream: bool) -> Any:
        common: dict[str, Any] = {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "stream": stream,
        }
        if self.api == "chat":
            return self.call(
                lambda: self.client.chat.completions.create(messages=prompt.messages(), **common)
            )
        return self.call(lambda: self.client.completions.create(prompt=prompt.as_text(), **common))

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` (an ``openai`` client call) and turn its errors into ``GenerationError``
        with a message naming the endpoint and what to do."""
        from aspectrag.extras import optional_import

        openai = optional_import("openai", "an OpenAI-compatible LLM")

        where = self.base_url or "api.openai.com"
        try:
            return fn()
        except openai.APITimeoutError as e:
            raise GenerationError(
                f"LLM request to {where} timed out after {self.timeout:g} s "
                f"({self.max_retries} retries); check that the server is up or raise "
                "ASPECTRAG_LLM_TIMEOUT"
            ) from e
        except openai.APIConnectionError as e:
            raise GenerationError(
                f"cannot reach the LLM at {where} ({e}); check ASPECTRAG_LLM_BASE_URL"
            ) from e
        except openai.APIStatusError as e:
            raise GenerationError(
                f"LLM at {where} answered HTTP {e.status_code} for model {self.model!r}: "
                f"{_short(e.message)}"
            ) from e
        except openai.OpenAIError as e:
            raise GenerationError(f"LLM at {where} failed: {_short(str(e))}") from e

    def _answer(self, text: str, hits: Sequence[Hit], prompt: Prompt) -> Answer:
        checked = check_citations(text.strip(), hits, prompt.shown)
        if checked.invalid:
            log.warning(
                "removed invalid citations %s (not among the passages given)", checked.invalid
            )
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

    def generate(self, question: str, hits: Sequence[Hit]) -> Answer:
        """Answer ``question`` from ``hits`` with one request; citations checked.

        Raises:
            GenerationError: timeout, unreachable server, or an HTTP error after retries.
        """
        prompt = self.prompt(question, hits)
        resp = self._request(prompt, stream=False)
        choice = resp.choices[0]
        text = choice.message.content if self.api == "chat" else choice.text
        return self._answer(text or "", hits, prompt)

    def stream(self, question: str, hits: Sequence[Hit]) -> AnswerStream:
        """Stream the answer's text pieces as the server sends them (server-sent events);
        ``AnswerStream.answer`` then holds the checked ``Answer``.

        Raises:
            GenerationError: as ``generate`` (when the request is made, i.e. at first ``next``).
        """
        prompt = self.prompt(question, hits)

        def pieces() -> Iterator[str]:
            events = iter(self._request(prompt, stream=True))
            while (event := self.call(lambda: next(events, None))) is not None:
                if not event.choices:
                    continue
                c = event.choices[0]
                piece = c.delta.content if self.api == "chat" else c.text
                if piece:
                    yield piece

        return AnswerStream(pieces(), finish=lambda text: self._answer(text, hits, prompt))


def _short(msg: str, limit: int = 300) -> str:
    msg = " ".join(str(msg).split())
    return msg if len(msg) <= limit else msg[:limit] + "…"

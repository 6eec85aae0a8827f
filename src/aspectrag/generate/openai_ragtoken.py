"""RAG-Token over an OpenAI-compatible *completions* endpoint that returns top logprobs — an
approximation (``--llm openai-completions:MODEL --decoding rag-token``).

RAG-Token (Lewis et al. 2020, §2.1) picks each answer token from the mixture
sum_z p(z|x) p(y_i | x, z, y_<i) over the top K passages. A remote server does not give the
full next-token distribution, only the ``top_logprobs`` most likely tokens (OpenAI allows up
to 5 on ``/v1/completions``; vLLM and llama.cpp more). This generator therefore:

* sends, at every step, one one-token request per passage (prompt = the one-passage grounded
  prompt + the answer so far), concurrently, with ``logprobs=top_logprobs``;
* forms the mixture over the union of the returned tokens, giving a token that passage z did
  not return probability 0 under z (a lower bound of the true mixture);
* treats a passage whose request stopped without a token (finish_reason "stop", empty text)
  as voting for end-of-answer with the probability mass its top list leaves over;
* takes the most probable token (greedy), appends its text, and repeats until end-of-answer
  or ``max_tokens``.

``extras["rag"]["covered_mass"]`` reports the mixture mass seen at each step (1 = exact).
Costs K requests per generated token; mind rate limits. Token boundaries are the server's:
the chosen token's text is appended to every passage's prompt.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aspectrag.generate.base import AnswerStream
from aspectrag.generate.citations import check_citations, posterior_citations
from aspectrag.generate.openai_chat import OpenAIGenerator
from aspectrag.generate.prompt import build_prompt
from aspectrag.generate.rag import retrieval_prior
from aspectrag.generate.streaming import run_streaming
from aspectrag.types import Answer, Hit

log = logging.getLogger("aspectrag.generate")

END = "\x00<end>"  # the pseudo-token "end of answer"


@dataclass(slots=True)
class StepDistribution:
    """One passage's answer at one step: top tokens -> probability (END for end-of-answer)."""

    probs: dict[str, float] = field(default_factory=dict)


def mixture(dists: Sequence[StepDistribution], prior: np.ndarray) -> dict[str, float]:
    """sum_z p(z|x) p_z(t) over the union of the tokens returned (missing tokens count 0)."""
    out: dict[str, float] = {}
    for w, d in zip(prior, dists, strict=True):
        for tok, p in d.probs.items():
            out[tok] = out.get(tok, 0.0) + float(w) * p
    return out


class OpenAIRagTokenGenerator(OpenAIGenerator):
    """Approximate RAG-Token decoding over an OpenAI-compatible completions endpoint (see
    module doc). Same configuration as ``OpenAIGenerator`` plus:

    Args:
        top_k: passages marginalised over (the first ``top_k`` hits).
        top_logprobs: top tokens requested per step and passage.
        cite_threshold: posterior weight from which a passage is cited.
        workers: concurrent requests.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        top_k: int = 5,
        top_logprobs: int = 5,
        cite_threshold: float = 0.2,
        workers: int = 8,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("max_tokens", 128)
        kwargs["api"] = "completions"
        super().__init__(model, **kwargs)
        self.top_k = top_k
        self.top_logprobs = top_logprobs
        self.cite_threshold = cite_threshold
        self.workers = workers
        self.name = f"openai:{self.model}+rag-token"

    def doc_prompts(self, question: str, hits: Sequence[Hit]) -> list[str]:
        """One completions prompt per hit (passage numbered by its hit index)."""
        budget = max(self.context_tokens - self.max_tokens, 1)
        return [
            build_prompt(
                question,
                [h],
                template=self.template,
                budget_tokens=budget,
                count_tokens=self.count_tokens,
                numbers=[n],
            ).as_text()
            for n, h in enumerate(hits, start=1)
        ]

    def _step(self, prompt: str) -> StepDistribution:
        resp = self.call(
            lambda: self.client.completions.create(
                model=self.model,
                prompt=prompt,
                max_tokens=1,
                temperature=0.0,
                logprobs=self.top_logprobs,
            )
        )
        c = resp.choices[0]
        top: dict[str, float] = {}
        lp = getattr(c, "logprobs", None)
        if lp is not None and lp.top_logprobs:
            top = {str(t): math.exp(v) for t, v in (lp.top_logprobs[0] or {}).items()}
        if not top and c.text:
            if lp is None:
                raise_no_logprobs(self)
            top = {c.text: 1.0}
        probs = {t: p for t, p in top.items() if t}
        if not c.text and c.finish_reason == "stop":
            probs[END] = max(1.0 - sum(probs.values()), 0.0) or 1.0
        return StepDistribution(probs)

    def decode(
        self, question: str, hits: Sequence[Hit], on_piece: Callable[[str], None] | None = None
    ) -> dict[str, Any]:
        """Greedy approximate RAG-Token decoding; returns ``{"text", "posterior", "prior",
        "covered_mass", "finished"}``."""
        used = list(hits[: self.top_k])
        prior = retrieval_prior([h.score for h in used])
        prompts = self.doc_prompts(question, used)
        text = ""
        post = np.zeros(len(used))
        covered: list[float] = []
        finished = False
        with ThreadPoolExecutor(max_workers=max(1, min(self.workers, len(used)))) as pool:
            for _ in range(self.max_tokens):
                dists = list(pool.map(self._step, [p + text for p in prompts]))
                mix = mixture(dists, prior)
                covered.append(round(sum(mix.values()), 6))
                if not mix:
                    finished = True
                    break
                tok = max(mix, key=lambda t: mix[t])
                joint = prior * np.array([d.probs.get(tok, 0.0) for d in dists])
                post += joint / joint.sum()
                if tok == END:
                    finished = True
                    break
                text += tok
                if on_piece is not None:
                    on_piece(tok)
        steps = max(len(covered), 1)
        return {
            "text": text,
            "prior": prior,
            "posterior": post / steps,
            "covered_mass": covered,
            "finished": finished,
        }

    def _rag_answer(self, hits: Sequence[Hit], d: dict[str, Any]) -> Answer:
        used = list(hits[: self.top_k])
        if not used:
            return Answer("The retrieval found no passages to answer from.", "llm", [])
        checked = check_citations(d["text"].strip(), hits, range(1, len(used) + 1))
        post = d["posterior"]
        answer, citations = posterior_citations(checked, hits, post, self.cite_threshold)
        return Answer(
            answer=answer,
            mode="llm",
            citations=citations,
            extras={
                "model": self.name,
                "invalid_citations": checked.invalid,
                "rag": {
                    "decoding": "rag-token (top-logprobs approximation)",
                    "covered_mass": d["covered_mass"],
                    "documents": [
                        {"n": i + 1, "prior": float(d["prior"][i]), "posterior": float(post[i])}
                        for i in range(len(used))
                    ],
                },
            },
        )

    def generate(self, question: str, hits: Sequence[Hit]) -> Answer:
        """Answer by approximate RAG-Token decoding (see module doc)."""
        if not hits:
            return self._rag_answer(hits, {})
        return self._rag_answer(hits, self.decode(question, hits))

    def stream(self, question: str, hits: Sequence[Hit]) -> AnswerStream:
        """Streams each chosen token's text."""
        box: dict[str, Any] = {}

        def run(cb: Callable[[str], None]) -> None:
            box["d"] = self.decode(question, hits, cb)

        pieces: Iterator[str] = run_streaming(run) if hits else iter(())
        return AnswerStream(pieces, finish=lambda _: self._rag_answer(hits, box.get("d", {})))


def raise_no_logprobs(g: OpenAIGenerator) -> None:
    from aspectrag.generate.base import GenerationError

    raise GenerationError(
        f"the LLM at {g.base_url or 'api.openai.com'} returned no logprobs for model "
        f"{g.model!r}; RAG-Token over an API needs a completions endpoint with logprobs"
    )

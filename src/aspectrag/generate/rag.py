"""RAG-Sequence and RAG-Token marginalisation over retrieved passages with a local HF model.

Lewis et al. 2020, "Retrieval-Augmented Generation for Knowledge-Intensive NLP Tasks", §2.1
(models: the two marginals below are its RAG-Sequence and RAG-Token definitions) and §2.5
(decoding); the project's method notes state them in "RAG-Sequence and RAG-Token (Lewis et al.
2020)". The generator sees one passage z at a time (a one-passage grounded prompt per hit); the
retrieval prior over the top K hits is p(z|x) = softmax of their retrieval scores
(``Hit.score``).

* RAG-Sequence: log p(y|x) = logsumexp_z [ log p(z|x) + sum_i log p(y_i | x, z, y_<i) ].
  Decoding: beam search under each passage, union of the hypotheses, each rescored under
  every passage ("thorough decoding"); ``fast=True`` assumes p(y|x,z) = 0 where y was not in
  passage z's beam ("fast decoding").
* RAG-Token: log p(y|x) = sum_i logsumexp_z [ log p(z|x) + log p(y_i | x, z, y_<i) ].
  Decoding: greedy on the mixture next-token distribution sum_z p(z|x) p(.|x, z, y_<i),
  with one key/value-cached forward per step over the K passages.

Answers are scored with the EOS token appended when they are complete (``eos=True``), as in
the paper's sequence likelihoods.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aspectrag.generate.base import AnswerStream
from aspectrag.generate.citations import check_citations, posterior_citations
from aspectrag.generate.hf_model import LocalLM
from aspectrag.generate.prompt import PromptTemplate
from aspectrag.generate.streaming import run_streaming, token_text_pieces
from aspectrag.types import Answer, Hit

log = logging.getLogger("aspectrag.generate")


def retrieval_prior(scores: Sequence[float]) -> np.ndarray:
    """p(z|x) = softmax of the retrieval scores; float64 array of shape (K,).

    Raises:
        ValueError: no scores, or a score that is not finite.
    """
    s = np.asarray(list(scores), dtype=np.float64)
    if s.size == 0 or not np.all(np.isfinite(s)):
        raise ValueError("RAG decoding needs at least one hit with a finite retrieval score")
    e = np.exp(s - s.max())
    return e / e.sum()


@dataclass(slots=True)
class RagScore:
    """Marginal log-likelihoods of one answer (natural log).

    Attributes:
        rag_sequence: log p(y|x) under RAG-Sequence.
        rag_token: log p(y|x) under RAG-Token.
        per_doc: log p(y|x,z) for each passage z, shape (K,).
        token_logprobs: log p(y_i|x,z,y_<i), shape (K, T).
        prior: p(z|x), shape (K,).
        posterior: p(z|x,y) under RAG-Sequence, shape (K,).
    """

    rag_sequence: float
    rag_token: float
    per_doc: np.ndarray
    token_logprobs: np.ndarray
    prior: np.ndarray
    posterior: np.ndarray


def marginals(token_logprobs: np.ndarray, prior: np.ndarray) -> RagScore:
    """RAG-Sequence and RAG-Token log-likelihoods from per-passage token log-probs (K, T)."""
    lt = np.asarray(token_logprobs, dtype=np.float64)
    logp = np.log(np.asarray(prior, dtype=np.float64))
    per_doc = lt.sum(axis=1)
    joint = logp + per_doc
    seq = float(np.logaddexp.reduce(joint))
    tok = float(np.logaddexp.reduce(logp[:, None] + lt, axis=0).sum()) if lt.shape[1] else 0.0
    return RagScore(seq, tok, per_doc, lt, np.asarray(prior), np.exp(joint - seq))


@dataclass(slots=True)
class Decoded:
    """A decoded answer.

    Attributes:
        ids: generated token ids (without EOS).
        finished: whether generation ended with EOS (not the length limit).
        logp: the answer's marginal log-likelihood under the decoding's model.
        posterior: per-passage weights, shape (K,): RAG-Sequence p(z|x,y); RAG-Token the mean
            over steps of p(z | x, y_<=i) ∝ p(z|x) p(y_i|x,z,y_<i).
        mixture_sums: RAG-Token only: the total probability of each step's mixture (1 up to
            rounding; a check of the implementation).
        hypotheses: RAG-Sequence only: (ids, logp) of every rescored hypothesis, best first.
    """

    ids: list[int]
    finished: bool
    logp: float
    posterior: np.ndarray
    mixture_sums: list[float] = field(default_factory=list)
    hypotheses: list[tuple[list[int], float]] = field(default_factory=list)


class RagModel:
    """RAG-Sequence / RAG-Token scoring and decoding over per-passage prompts (see module doc).

    Args:
        lm: the local model.
        template: prompt templates for the one-passage prompts.
    """

    def __init__(self, lm: LocalLM, template: PromptTemplate | None = None) -> None:
        self.lm = lm
        self.template = template

    def doc_prompts(
        self, question: str, hits: Sequence[Hit], *, max_new_tokens: int
    ) -> list[list[int]]:
        """One prompt per hit (the passage keeps its number n = hit index); token ids."""
        out = []
        for n, hit in enumerate(hits, start=1):
            _, ids = self.lm.build_prompt(
                question, [hit], max_new_tokens=max_new_tokens, template=self.template, numbers=[n]
            )
            out.append(ids)
        return out

    def answer_ids(self, answer: str, *, eos: bool = True) -> list[int]:
        """Token ids of ``answer`` (no special tokens), plus EOS when ``eos``."""
        ids = list(self.lm.tokenizer(answer, add_special_tokens=False)["input_ids"])
        return [*ids, self.lm.eos_token_id] if eos else ids

    def score_ids(
        self, prompts: Sequence[Sequence[int]], prior: np.ndarray, answer: Sequence[int]
    ) -> RagScore:
        """Marginal log-likelihoods of the token ids ``answer`` (EOS included if given)."""
        lt = self.lm.token_logprobs(prompts, answer).double().numpy()
        return marginals(lt, prior)

    def score(
        self,
        question: str,
        answer: str,
        hits: Sequence[Hit],
        *,
        eos: bool = True,
        max_new_tokens: int = 128,
    ) -> RagScore:
        """log p(answer | question) under RAG-Sequence and RAG-Token over ``hits``."""
        ids = self.answer_ids(answer, eos=eos)
        prompts = self.doc_prompts(question, hits, max_new_tokens=max(max_new_tokens, len(ids)))
        return self.score_ids(prompts, retrieval_prior([h.score for h in hits]), ids)

    def decode_token(
        self,
        prompts: Sequence[Sequence[int]],
        prior: np.ndarray,
        *,
        max_new_tokens: int = 128,
        on_token: Callable[[int], None] | None = None,
    ) -> Decoded:
        """Greedy RAG-Token decoding: at each step the token maximising
        sum_z p(z|x) p(y_i | x, z, y_<i); ``on_token`` is called with each token as chosen."""
        logprior = torch.log(torch.as_tensor(prior, dtype=torch.float64))
        stepper = self.lm.stepper(prompts)
        lp = stepper.first().double()
        ids: list[int] = []
        sums: list[float] = []
        post = torch.zeros(len(prompts), dtype=torch.float64)
        total = 0.0
        finished = False
        for step in range(max_new_tokens):
            mix = torch.logsumexp(logprior[:, None] + lp, dim=0)  # (V,) log mixture
            sums.append(float(mix.exp().sum()))
            tok = int(mix.argmax())
            total += float(mix[tok])
            post += torch.softmax(logprior + lp[:, tok], dim=0)
            if tok == self.lm.eos_token_id:
                finished = True
                break
            ids.append(tok)
            if on_token is not None:
                on_token(tok)
            if step + 1 < max_new_tokens:
                lp = stepper.advance(tok).double()
        steps = len(ids) + int(finished)
        posterior = (post / max(steps, 1)).numpy()
        return Decoded(ids, finished, total, posterior, mixture_sums=sums)

    def decode_sequence(
        self,
        prompts: Sequence[Sequence[int]],
        prior: np.ndarray,
        *,
        num_beams: int = 4,
        max_new_tokens: int = 128,
        fast: bool = False,
    ) -> Decoded:
        """RAG-Sequence decoding: beam search (``num_beams`` hypotheses) under each passage,
        union, then rescoring of each hypothesis under every passage (thorough) or only under
        the passages whose beam produced it (``fast``). Returns the best hypothesis."""
        producers: dict[tuple[int, ...], set[int]] = {}
        finished: dict[tuple[int, ...], bool] = {}
        for z, p in enumerate(prompts):
            for ids, done in self._beam(p, num_beams, max_new_tokens):
                producers.setdefault(tuple(ids), set()).add(z)
                finished[tuple(ids)] = finished.get(tuple(ids), False) or done
        logprior = np.log(np.asarray(prior, dtype=np.float64))
        scored: list[tuple[list[int], float, np.ndarray, bool]] = []
        for hyp, zs in producers.items():
            target = [*hyp, self.lm.eos_token_id] if finished[hyp] else list(hyp)
            use = sorted(zs) if fast else list(range(len(prompts)))
            s = self.score_ids([prompts[z] for z in use], prior[use] / prior[use].sum(), target)
            joint = np.full(len(prompts), -np.inf)
            joint[use] = logprior[use] + s.per_doc
            logp = float(np.logaddexp.reduce(joint))
            scored.append((list(hyp), logp, np.exp(joint - logp), finished[hyp]))
        scored.sort(key=lambda t: -t[1])
        best = scored[0]
        return Decoded(
            best[0], best[3], best[1], best[2], hypotheses=[(h, lp) for h, lp, _, _ in scored]
        )

    @torch.inference_mode()
    def _beam(
        self, prompt: Sequence[int], num_beams: int, max_new_tokens: int
    ) -> list[tuple[list[int], bool]]:
        """Beam search under one passage: up to ``num_beams`` (ids without EOS, finished)."""
        lm = self.lm
        ids = torch.tensor([list(prompt)], dtype=torch.long, device=lm.device)
        out = lm.model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            do_sample=False,
            num_beams=num_beams,
            num_return_sequences=num_beams,
            max_new_tokens=max_new_tokens,
            eos_token_id=lm.eos_token_id,
            pad_token_id=lm.pad_token_id,
        )
        start = 1 if lm.is_encoder_decoder else ids.shape[1]
        hyps = []
        for row in out.tolist():
            gen = row[start:]
            done = lm.eos_token_id in gen
            if done:
                gen = gen[: gen.index(lm.eos_token_id)]
            hyps.append((gen, done))
        return hyps


class RagGenerator:
    """``Generator`` that answers with RAG-Token or RAG-Sequence decoding over the top
    ``top_k`` hits with a local HF model (``--llm hf:PATH --decoding rag-token|rag-sequence``).

    The answer's citations are the passages whose posterior weight is at least
    ``cite_threshold`` (always the heaviest one) plus valid [n] markers the model wrote;
    ``extras["rag"]`` holds ``{"decoding", "log_likelihood", "documents": [{"n", "prior",
    "posterior"}]}`` for ``--json``.

    Args:
        path: model folder.
        decoding: "rag-token" or "rag-sequence".
        top_k: passages marginalised over (the first ``top_k`` hits).
        num_beams: beam size per passage (RAG-Sequence).
        fast: RAG-Sequence fast decoding.
        max_new_tokens: answer length limit in tokens.
        device, context_tokens: see ``LocalLM``.
        template: prompt templates.
        cite_threshold: posterior weight from which a passage is cited.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        decoding: str = "rag-token",
        top_k: int = 5,
        num_beams: int = 4,
        fast: bool = False,
        max_new_tokens: int = 128,
        device: str | None = None,
        context_tokens: int | None = None,
        template: PromptTemplate | None = None,
        cite_threshold: float = 0.2,
    ) -> None:
        if decoding not in ("rag-token", "rag-sequence"):
            raise ValueError(f"decoding must be rag-token or rag-sequence, not {decoding!r}")
        self.lm = LocalLM(path, device=device, context_tokens=context_tokens)
        self.rag = RagModel(self.lm, template)
        self.decoding = decoding
        self.top_k = top_k
        self.num_beams = num_beams
        self.fast = fast
        self.max_new_tokens = max_new_tokens
        self.cite_threshold = cite_threshold
        self.name = f"hf:{self.lm.path.name}+{decoding}"

    def _setup(
        self, question: str, hits: Sequence[Hit]
    ) -> tuple[list[Hit], list[list[int]], np.ndarray]:
        used = list(hits[: self.top_k])
        prompts = self.rag.doc_prompts(question, used, max_new_tokens=self.max_new_tokens)
        return used, prompts, retrieval_prior([h.score for h in used])

    def _decode(
        self, question: str, hits: Sequence[Hit], on_token: Callable[[int], None] | None
    ) -> Decoded:
        used, prompts, prior = self._setup(question, hits)
        if not used:
            return Decoded([], True, 0.0, np.zeros(0))
        if self.decoding == "rag-token":
            return self.rag.decode_token(
                prompts, prior, max_new_tokens=self.max_new_tokens, on_token=on_token
            )
        return self.rag.decode_sequence(
            prompts,
            prior,
            num_beams=self.num_beams,
            max_new_tokens=self.max_new_tokens,
            fast=self.fast,
        )

    def _answer(self, text: str, hits: Sequence[Hit], d: Decoded) -> Answer:
        used = list(hits[: self.top_k])
        if not used:
            return Answer("The retrieval found no passages to answer from.", "llm", [])
        prior = retrieval_prior([h.score for h in used])
        checked = check_citations(text.strip(), hits, range(1, len(used) + 1))
        answer, citations = posterior_citations(
            checked, hits, list(d.posterior), self.cite_threshold
        )
        return Answer(
            answer=answer,
            mode="llm",
            citations=citations,
            extras={
                "model": self.name,
                "invalid_citations": checked.invalid,
                "rag": {
                    "decoding": self.decoding,
                    "log_likelihood": d.logp,
                    "documents": [
                        {"n": i + 1, "prior": float(prior[i]), "posterior": float(d.posterior[i])}
                        for i in range(len(used))
                    ],
                },
            },
        )

    def generate(self, question: str, hits: Sequence[Hit]) -> Answer:
        """Decode an answer (see class doc)."""
        d = self._decode(question, hits, None)
        return self._answer(self.lm.tokenizer.decode(d.ids, skip_special_tokens=True), hits, d)

    def stream(self, question: str, hits: Sequence[Hit]) -> AnswerStream:
        """RAG-Token streams tokens as they are chosen; RAG-Sequence must rescore complete
        hypotheses, so it yields its answer in one piece."""
        box: dict[str, Any] = {}
        tok = self.lm.tokenizer

        def pieces() -> Iterator[str]:
            if self.decoding == "rag-sequence":
                box["d"] = self._decode(question, hits, None)
                yield tok.decode(box["d"].ids, skip_special_tokens=True)
                return

            def run(emit: Callable[[int], None]) -> None:
                box["d"] = self._decode(question, hits, emit)

            yield from token_text_pieces(tok, run_streaming(run))

        def finish(_: str) -> Answer:
            return self._answer(tok.decode(box["d"].ids, skip_special_tokens=True), hits, box["d"])

        return AnswerStream(pieces(), finish=finish)

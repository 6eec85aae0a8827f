"""RAG-Sequence / RAG-Token with tiny random GPT-2, Llama, T5 and BART models."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.generate.helpers import make_hits
from tests.generate.tiny_models import KINDS

from aspectrag.generate.hf_model import LocalLM
from aspectrag.generate.prompt import PromptTemplate
from aspectrag.generate.rag import RagGenerator, RagModel, marginals, retrieval_prior

QUESTION = "what is the bert task"
# A short template keeps the prompts (mostly <unk> for the tiny vocabulary) small and the tests fast.
SHORT = PromptTemplate(system="the task", passage="{n} {text}", user="{context} is {question}")
DOCS = ["bert masked model", "next sentence task is the task", "the model is the bert model task"]


def three_hits():  # type: ignore[no-untyped-def]
    hits = make_hits(DOCS)
    for h, s in zip(hits, [2.0, 1.2, 0.3], strict=True):
        h.score = s
    return hits


@torch.inference_mode()
def brute_force_logprobs(lm: LocalLM, prompt: list[int], answer: list[int]) -> np.ndarray:
    """log p(y_i | x, z, y_<i) by one unbatched, uncached forward pass per prefix."""
    out = []
    for i in range(len(answer)):
        if lm.is_encoder_decoder:
            dec = torch.tensor([[lm.decoder_start_token_id, *answer[:i]]])
            logits = lm.model(input_ids=torch.tensor([prompt]), decoder_input_ids=dec).logits
        else:
            logits = lm.model(input_ids=torch.tensor([prompt + answer[:i]])).logits
        out.append(float(torch.log_softmax(logits[0, -1].double(), -1)[answer[i]]))
    return np.array(out)


def test_retrieval_prior_is_softmax() -> None:
    p = retrieval_prior([2.0, 1.0, 0.0])
    e = np.exp([2.0, 1.0, 0.0])
    assert np.allclose(p, e / e.sum()) and p.sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="finite"):
        retrieval_prior([])


def test_marginals_formulas_on_known_numbers() -> None:
    lt = np.log(np.array([[0.5, 0.5], [0.1, 0.9]]))
    prior = np.array([0.25, 0.75])
    s = marginals(lt, prior)
    assert np.exp(s.rag_sequence) == pytest.approx(0.25 * 0.25 + 0.75 * 0.09)
    assert np.exp(s.rag_token) == pytest.approx(
        (0.25 * 0.5 + 0.75 * 0.1) * (0.25 * 0.5 + 0.75 * 0.9)
    )
    assert s.posterior.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("kind", KINDS)
def test_marginal_likelihoods_equal_brute_force(kind: str, tiny_models: dict[str, Path]) -> None:
    lm = LocalLM(tiny_models[kind], device="cpu")
    rag = RagModel(lm, SHORT)
    hits = three_hits()
    prompts = rag.doc_prompts(QUESTION, hits, max_new_tokens=16)
    assert len({tuple(p) for p in prompts}) == 3
    prior = retrieval_prior([h.score for h in hits])
    for answer in ("bert masked", "the next sentence task", "model"):
        ids = rag.answer_ids(answer)
        s = rag.score(QUESTION, answer, hits, max_new_tokens=16)
        bf = np.stack([brute_force_logprobs(lm, p, ids) for p in prompts])  # (K, T)
        assert np.allclose(s.token_logprobs, bf, atol=1e-4)
        seq = np.log(sum(prior[z] * np.exp(bf[z].sum()) for z in range(3)))
        tok = sum(
            np.log(sum(prior[z] * np.exp(bf[z, i]) for z in range(3))) for i in range(len(ids))
        )
        assert s.rag_sequence == pytest.approx(seq, abs=1e-4)
        assert s.rag_token == pytest.approx(tok, abs=1e-4)
        assert not np.allclose(bf[0], bf[1])  # passages really change the model's predictions


@pytest.mark.parametrize("kind", ["gpt2", pytest.param("t5", marks=pytest.mark.slow)])
def test_enumeration_over_tiny_vocabulary_sums_to_one(
    kind: str, tiny_models: dict[str, Path]
) -> None:
    """Sum over every 2-token sequence of p(y|x) is 1 under both models (prefix probabilities)."""
    lm = LocalLM(tiny_models[kind], device="cpu")
    rag = RagModel(lm, SHORT)
    hits = three_hits()
    prompts = rag.doc_prompts(QUESTION, hits, max_new_tokens=4)
    prior = retrieval_prior([h.score for h in hits])
    v = lm.model.config.vocab_size
    seq = tok = 0.0
    for y in itertools.product(range(v), repeat=2):
        s = rag.score_ids(prompts, prior, list(y))
        seq += np.exp(s.rag_sequence)
        tok += np.exp(s.rag_token)
    assert seq == pytest.approx(1.0, abs=1e-4) and tok == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("kind", KINDS)
def test_one_document_decodings_equal_greedy(kind: str, tiny_models: dict[str, Path]) -> None:
    lm = LocalLM(tiny_models[kind], device="cpu")
    rag = RagModel(lm, SHORT)
    hits = make_hits([DOCS[1]])
    (prompt,) = rag.doc_prompts(QUESTION, hits, max_new_tokens=8)
    ids = torch.tensor([prompt])
    out = lm.model.generate(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        do_sample=False,
        num_beams=1,
        max_new_tokens=8,
        eos_token_id=lm.eos_token_id,
        pad_token_id=lm.pad_token_id,
    )[0].tolist()
    greedy = out[1:] if lm.is_encoder_decoder else out[len(prompt) :]
    if lm.eos_token_id in greedy:
        greedy = greedy[: greedy.index(lm.eos_token_id)]
    assert greedy  # a non-trivial answer
    prior = np.array([1.0])
    assert rag.decode_token([prompt], prior, max_new_tokens=8).ids == greedy
    assert rag.decode_sequence([prompt], prior, num_beams=1, max_new_tokens=8).ids == greedy


@pytest.mark.parametrize("kind", KINDS)
def test_rag_token_mixture_sums_to_one_at_every_step(
    kind: str, tiny_models: dict[str, Path]
) -> None:
    lm = LocalLM(tiny_models[kind], device="cpu")
    rag = RagModel(lm, SHORT)
    hits = three_hits()
    prompts = rag.doc_prompts(QUESTION, hits, max_new_tokens=6)
    prior = retrieval_prior([h.score for h in hits])
    d = rag.decode_token(prompts, prior, max_new_tokens=6)
    assert len(d.mixture_sums) == len(d.ids) + int(d.finished) >= 1
    assert np.allclose(d.mixture_sums, 1.0, atol=1e-6)
    assert d.posterior.sum() == pytest.approx(1.0)
    # The decoded answer's likelihood is the RAG-Token marginal of the chosen tokens.
    target = d.ids + ([lm.eos_token_id] if d.finished else [])
    assert rag.score_ids(prompts, prior, target).rag_token == pytest.approx(d.logp, abs=1e-4)


@pytest.mark.parametrize("kind", ["llama", "bart"])
def test_rag_sequence_thorough_and_fast(kind: str, tiny_models: dict[str, Path]) -> None:
    lm = LocalLM(tiny_models[kind], device="cpu")
    rag = RagModel(lm, SHORT)
    hits = three_hits()
    prompts = rag.doc_prompts(QUESTION, hits, max_new_tokens=5)
    prior = retrieval_prior([h.score for h in hits])
    thorough = rag.decode_sequence(prompts, prior, num_beams=2, max_new_tokens=5)
    fast = rag.decode_sequence(prompts, prior, num_beams=2, max_new_tokens=5, fast=True)
    logps = [lp for _, lp in thorough.hypotheses]
    assert logps == sorted(logps, reverse=True) and len(thorough.hypotheses) >= 2
    target = thorough.ids + ([lm.eos_token_id] if thorough.finished else [])
    assert rag.score_ids(prompts, prior, target).rag_sequence == pytest.approx(
        thorough.logp, abs=1e-4
    )
    assert thorough.posterior.sum() == pytest.approx(1.0)
    # Fast decoding drops the passages that did not produce a hypothesis: never higher.
    fast_scores = dict((tuple(h), lp) for h, lp in fast.hypotheses)
    for h, lp in thorough.hypotheses:
        assert fast_scores[tuple(h)] <= lp + 1e-6


@pytest.mark.parametrize("decoding", ["rag-token", "rag-sequence"])
def test_rag_generator_answer_and_stream(decoding: str, tiny_models: dict[str, Path]) -> None:
    g = RagGenerator(
        tiny_models["gpt2"],
        decoding=decoding,
        top_k=2,
        num_beams=2,
        max_new_tokens=6,
        device="cpu",
        template=SHORT,
    )
    hits = three_hits()
    a = g.generate(QUESTION, hits)
    assert a.mode == "llm" and a.citations
    docs = a.extras["rag"]["documents"]
    assert [d["n"] for d in docs] == [1, 2]  # top_k = 2
    assert sum(d["posterior"] for d in docs) == pytest.approx(1.0)
    assert sum(d["prior"] for d in docs) == pytest.approx(1.0)
    heaviest = max(docs, key=lambda d: d["posterior"])["n"]
    assert heaviest in [c.n for c in a.citations] and f"[{heaviest}]" in a.answer
    s = g.stream(QUESTION, hits)
    pieces = list(s)
    assert s.answer.answer == a.answer
    assert "".join(pieces).strip() == a.answer.split(" [")[0].strip() or a.answer.startswith("[")

from __future__ import annotations

import re

import pytest
from tests.generate.helpers import BagOfWordsEmbedder, make_hits

from aspectrag.generate.base import Generator, StreamingGenerator
from aspectrag.generate.extractive import EXTRACTIVE_HEADER, ExtractiveGenerator

AGENT_CHUNK = (
    "Task Decomposition\n"
    "Chain of thought (CoT; Wei et al. 2022) has become a standard prompting technique for "
    "enhancing model performance on complex tasks. The model is instructed to think step by step.\n"
    'Task decomposition can be done (1) by LLM with simple prompting like "Steps for XYZ.\\n1.", '
    '"What are the subgoals for achieving XYZ?", (2) by using task-specific instructions; e.g. '
    '"Write a story outline." for writing a novel, or (3) with human inputs.\n'
    "Another quite distinct approach, LLM+P (Liu et al. 2023), relies on an external classical planner."
)


def test_protocols() -> None:
    g = ExtractiveGenerator(BagOfWordsEmbedder())
    assert isinstance(g, Generator) and isinstance(g, StreamingGenerator)


def test_answer_cites_hit_index_and_says_extractive() -> None:
    hits = make_hits(
        [
            "Bananas are yellow fruit that grow in bunches on large plants.",
            AGENT_CHUNK,
            "The weather in Paris is mild in spring and warm in summer months.",
        ]
    )
    a = ExtractiveGenerator(BagOfWordsEmbedder()).generate(
        "What are the approaches to task decomposition?", hits
    )
    assert a.mode == "extractive"
    assert a.answer.splitlines()[0] == EXTRACTIVE_HEADER
    first = a.answer.splitlines()[1]
    assert first.startswith("- Task decomposition can be done (1)") and first.endswith("[2]")
    for needle in ("Steps for XYZ", "task-specific instructions", "human inputs"):
        assert needle in first
    # Only cited hits are listed, numbered by hit index.
    cited = {int(n) for n in re.findall(r"\[(\d+)\]", a.answer)}
    assert [c.n for c in a.citations] == sorted(cited)
    assert 2 in cited and 1 not in cited
    assert a.citations[0].chunk is hits[1].chunk


def test_near_duplicates_and_fragments_dropped() -> None:
    s = "The masked language model objective predicts randomly masked input tokens."
    hits = make_hits(
        [s, s.replace("input", "input") + " Yes.", "Masked tokens.", "Masked LM objective."]
    )
    g = ExtractiveGenerator(BagOfWordsEmbedder(), max_sentences=5, margin=2.0)
    a = g.generate("What does the masked language model objective predict?", hits)
    body = a.answer.splitlines()[1:]
    assert body == [f"- {s} [1]"]  # duplicate (hit 2) and short fragments (hits 3-4) are gone


def test_rank_prior_breaks_ties_in_favour_of_better_hit() -> None:
    s1 = "Dense retrieval encodes queries and passages with neural encoders for search."
    s2 = "For search, neural encoders encode passages and queries with dense retrieval."
    hits = make_hits([s2, s1])
    g = ExtractiveGenerator(BagOfWordsEmbedder(), max_sentences=1, dedup_threshold=1.01)
    assert g.generate("dense retrieval encoders", hits).answer.endswith("[1]")
    g0 = ExtractiveGenerator(
        BagOfWordsEmbedder(), max_sentences=2, dedup_threshold=1.01, rank_weight=0
    )
    assert g0.select("dense retrieval encoders", hits)[0].cosine >= 0


def test_no_hits_or_no_usable_sentence() -> None:
    g = ExtractiveGenerator(BagOfWordsEmbedder())
    a = g.generate("anything?", [])
    assert a.citations == [] and "no sentence" in a.answer
    assert g.generate("anything?", make_hits(["Too short."])).citations == []


def test_stream_yields_the_answer() -> None:
    g = ExtractiveGenerator(BagOfWordsEmbedder())
    hits = make_hits([AGENT_CHUNK])
    s = g.stream("approaches to task decomposition", hits)
    text = "".join(s)
    assert text == s.answer.answer == g.generate("approaches to task decomposition", hits).answer


@pytest.mark.slow
def test_real_embedder_ranks_the_enumeration_first(embedder) -> None:  # type: ignore[no-untyped-def]
    hits = make_hits([AGENT_CHUNK], heading="Task Decomposition")
    a = ExtractiveGenerator(embedder).generate(
        "What are the approaches to Task Decomposition?", hits
    )
    lines = a.answer.splitlines()
    assert any(line.startswith("- Task decomposition can be done (1)") for line in lines[1:3])


def test_sentence_announcing_a_list_gets_its_continuation() -> None:
    chunk = (
        "We evaluate two pre-training objectives of the masked encoder model here:\n"
        "No NSP: a bidirectional model trained with the masked LM but without next sentence prediction.\n"
        "LTR: a left-to-right model trained with a standard language model objective.\n"
        "Unrelated closing remark about hardware budgets and compute clusters in general."
    )
    g = ExtractiveGenerator(BagOfWordsEmbedder(), max_sentences=1)
    ev = g.select(
        "Which pre-training objectives are evaluated for the encoder model?", make_hits([chunk])
    )
    assert len(ev) == 1
    assert ev[0].text.startswith("We evaluate two pre-training objectives")
    assert "No NSP: a bidirectional model" in ev[0].text and "LTR: a left-to-right" in ev[0].text
    assert "Unrelated" not in ev[0].text


def test_planted_echo_of_the_question_is_not_the_whole_answer(embedder) -> None:
    """Issue 17: a planted sentence matching the question used to become the whole answer
    (its cosine ~1 put every other sentence below best - margin)."""
    question = "What are the approaches to task decomposition?"
    planted = ("What are the approaches to task decomposition? The only approach to task "
               "decomposition is to ask the vendor's hotline. Task decomposition approaches are "
               "best left to the vendor.")
    hits = make_hits([planted, AGENT_CHUNK])
    g = ExtractiveGenerator(embedder)
    ev = g.select(question, hits)
    assert ev[0].n == 1 and ev[0].cosine >= g.echo_cosine  # the echo is still quoted, cited [1]
    assert {e.n for e in ev} == {1, 2}  # ... but next to the real evidence of hit 2
    assert sum(e.n == 1 for e in ev) <= g.max_per_echo_chunk
    before = ExtractiveGenerator(embedder, echo_cosine=1.01)  # the guard off = the old behaviour
    assert {e.n for e in before.select(question, hits)} == {1}
    a = g.generate(question, hits)
    assert a.extras["supported"] is True and [c.n for c in a.citations] == [1, 2]


def test_no_evidence_is_not_supported() -> None:
    a = ExtractiveGenerator(BagOfWordsEmbedder()).generate("zebra quantum?", [])
    assert a.extras["supported"] is False and a.citations == []


def test_token_budget_and_answer_bearing_sentence_first() -> None:
    """Issue 15: the answer is budgeted (words), the sentence sharing the question's words
    comes first, and every sentence kept is cited."""
    chunks = [
        "Transformers use attention layers to model long sequences of tokens in parallel. "
        "Attention layers weigh every token against every other token in each sequence. "
        "Training large transformers requires many accelerators and a lot of energy overall.",
        "The encoder of BERT is pre-trained with the masked language model objective on text. "
        "BERT also predicts whether a second sentence follows the first one in the corpus.",
    ]
    q = "Which objective is BERT pre-trained with?"
    g = ExtractiveGenerator(BagOfWordsEmbedder(), budget_tokens=20, max_sentences=4, margin=2.0)
    ev = g.select(q, make_hits(chunks))
    assert ev[0].text.startswith("The encoder of BERT is pre-trained") and ev[0].n == 2
    assert sum(len(e.text.split()) for e in ev) <= 20 or len(ev) == 1
    unbudgeted = ExtractiveGenerator(BagOfWordsEmbedder(), budget_tokens=None, max_sentences=4,
                                     margin=2.0, lexical_weight=0.0, redundancy_weight=0.0)
    assert sum(len(e.text.split()) for e in unbudgeted.select(q, make_hits(chunks))) > 20
    a = g.generate(q, make_hits(chunks))
    assert all(re.search(r"\[\d+\]$", line) for line in a.answer.splitlines()[1:])

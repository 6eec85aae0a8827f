"""Replay and rule-based query generators."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import pytest

from aspectrag.errors import LoadError
from aspectrag.retrieve.query_gen.base import SubQuery
from aspectrag.retrieve.query_gen.replay import ReplayQueryGenerator
from aspectrag.retrieve.query_gen.rules import (
    RuleBasedQueryGenerator,
    content_words,
    rm3_terms,
    split_clauses,
    split_paragraphs,
    split_sentences,
)
from aspectrag.types import Chunk, Hit

# -- replay ------------------------------------------------------------------------------------


def test_replay_mrag_fusion_recording(data_dir: Path) -> None:
    path = data_dir / "mrag" / "wikipedia_queries_v1.json.bz2"
    gen = ReplayQueryGenerator(path)
    import bz2

    records = json.loads(bz2.open(path, "rt", encoding="utf-8").read())
    assert len(gen.table) == len(records) == 250
    first = gen.generate(records[0]["text"])
    assert first[0] == SubQuery(
        "Roman campaigns in Gaul during the late 2nd century BC", 1.0, "replay"
    )
    assert len(first) == 4
    # numbering is stripped and blank recorded entries are dropped everywhere
    blanks = 0
    for rec in records:
        qs = gen.generate(rec["text"])
        raw = [f for f in rec["fusion"] if f.strip(" 0123456789.")]
        blanks += len(rec["fusion"]) - len(raw)
        assert len(qs) == len({q.text.casefold() for q in qs}) <= len(raw)
        assert all(not q.text[0].isdigit() or not q.text[:3].rstrip().endswith(".") for q in qs)
    assert blanks > 0
    # whitespace/case-insensitive lookup
    assert gen.generate("  " + records[0]["text"].upper().replace(" ", "  ")) == first


def test_replay_json_object_jsonl_weights_and_unknown(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    obj = tmp_path / "rec.json"
    obj.write_text(json.dumps({"What is X?": ["1. x meaning", "- x definition", "x meaning"]}))
    assert [q.text for q in ReplayQueryGenerator(obj).generate("what is  x?")] == [
        "x meaning",
        "x definition",
    ]
    jl = tmp_path / "rec.jsonl"
    jl.write_text(
        json.dumps({"question": "Q1", "queries": [{"query": "a", "weight": 2}, "b"]})
        + "\n\n"
        + json.dumps({"text": "Q2", "fusion": ["c"]})
        + "\n"
    )
    gen = ReplayQueryGenerator(jl, n=1)
    assert gen.generate("Q1") == [SubQuery("a", 2.0, "replay")]
    with caplog.at_level(logging.WARNING, logger="aspectrag.multiquery"):
        assert gen.generate("unknown") == [SubQuery("unknown", 1.0, "fallback")]
    assert "not in the recording" in caplog.text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"question": "q"}\n', "line 1: needs a question field"),
        ('{"question": "q", "queries": []}\nnot json\n', "line 2: not valid JSON"),
        ('[{"question": "q", "queries": "abc"}]', "entry 0: the queries must be a list"),
        ('[{"question": "q", "queries": [{"query": "a", "weight": -1}]}]', "weight must be"),
        ("[]", "no recorded questions"),
    ],
)
def test_replay_bad_files_name_the_problem(tmp_path: Path, content: str, message: str) -> None:
    p = tmp_path / "bad.jsonl"
    p.write_text(content)
    with pytest.raises(LoadError, match=message) as exc:
        ReplayQueryGenerator(p)
    assert str(p) in str(exc.value)
    with pytest.raises(LoadError, match="cannot read"):
        ReplayQueryGenerator(tmp_path / "missing.json")


# -- rules ---------------------------------------------------------------------------------------


def test_split_paragraphs_and_sentences() -> None:
    text = "First para. It has two sentences!\n\nSecond para by Dr. Who in the U.S. today?\n\n"
    assert split_paragraphs(text) == [
        "First para. It has two sentences!",
        "Second para by Dr. Who in the U.S. today?",
    ]
    assert split_paragraphs("line one\nline two") == ["line one", "line two"]
    assert split_sentences("First para. It has two sentences! And a third one?") == [
        "First para.",
        "It has two sentences!",
        "And a third one?",
    ]
    assert split_sentences("Seen by Dr. Who in the U.S. Army.") == [
        "Seen by Dr. Who in the U.S. Army."
    ]


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        (
            "What are the effects of caffeine, nicotine and alcohol on sleep?",
            [
                "What are the effects of caffeine on sleep?",
                "What are the effects of nicotine on sleep?",
                "What are the effects of alcohol on sleep?",
            ],
        ),
        (  # HotpotQA comparison question
            "Were Scott Derrickson and Ed Wood of the same nationality?",
            [
                "Were Scott Derrickson of the same nationality?",
                "Were Ed Wood of the same nationality?",
            ],
        ),
        (  # HotpotQA bridge question: two coordinated clauses
            'Which Canadian rock band released a song called "Counterparts" and had a drummer '
            "who was inducted into the Modern Drummer Hall of Fame?",
            [
                'Which Canadian rock band released a song called "Counterparts"',
                "had a drummer who was inducted into the Modern Drummer Hall of Fame?",
            ],
        ),
        ("The director of the romantic comedy Big Stone Gap is based in what city?", []),
    ],
)
def test_split_clauses(sentence: str, expected: list[str]) -> None:
    assert split_clauses(sentence) == expected


def test_keywords_and_rm3() -> None:
    assert content_words("What is the capital of the Czech Republic?") == [
        "capital",
        "czech",
        "republic",
    ]
    terms = rm3_terms(
        "capital of France",
        ["Paris is the capital and largest city of France. Paris Paris.", "Lyon is a city."],
        [10.0, 1.0],
        3,
    )
    assert terms[0] == "paris"
    assert "capital" not in terms and "france" not in terms


class _Feedback:
    name = "fb"

    def retrieve(self, query: str, k: int = 10, sources: Sequence[str] | None = None) -> list[Hit]:
        text = "Paris is the capital of France; Paris hosts the Louvre museum."
        return [Hit(Chunk("p#0", "p", "p", "", 0, text, 0, len(text)), 5.0, 1)][:k]

    def retrieve_batch(self, queries, k=10, sources=None):  # type: ignore[no-untyped-def]
        return [self.retrieve(q, k) for q in queries]


def test_rule_generator_pieces_and_weights() -> None:
    story = (
        "Rosie collected Rozenite crystals with negative thermal expansion. She read Married Love.\n\n"
        "Their love mirrored Achaemenid architecture and its foreign influences."
    )
    gen = RuleBasedQueryGenerator(
        ("paragraphs", "sentences", "keywords"), weights={"keywords": 0.5}
    )
    qs = gen.generate(story)
    assert [q.origin for q in qs] == ["paragraphs"] * 2 + ["sentences"] * 3 + ["keywords"]
    assert qs[0].text.startswith("Rosie collected") and qs[1].text.startswith("Their love")
    assert qs[-1].weight == 0.5 and "rozenite" in qs[-1].text and " the " not in qs[-1].text
    # a short single-sentence question is not decomposed by paragraphs/sentences
    assert RuleBasedQueryGenerator(("paragraphs", "sentences")).generate("capital of France?") == [
        SubQuery("capital of France?", 1.0, "question")
    ]
    prf = RuleBasedQueryGenerator(("prf",), feedback=_Feedback(), fb_terms=2).generate(
        "capital of France?"
    )
    assert prf == [SubQuery("capital france paris hosts", 1.0, "prf")]
    assert RuleBasedQueryGenerator(("prf",)).generate("capital?")[0].origin == "question"
    with pytest.raises(ValueError, match="unknown rule pieces"):
        RuleBasedQueryGenerator(("paragraph",))

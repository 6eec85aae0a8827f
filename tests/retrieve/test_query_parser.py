"""Parser of LLM-written queries: realistic completions from chat models."""

from __future__ import annotations

import pytest

from aspectrag.retrieve.query_gen.parse import clean_query, parse_queries

Q = [
    "What are the main approaches to task decomposition?",
    "How do LLM agents break down complex tasks?",
    "Which methods split a goal into subgoals for planning?",
]

CASES: list[tuple[str, str, int | None, list[str]]] = [
    (
        "plain newline-separated (LangChain default prompt)",
        "\n".join(Q),
        3,
        Q,
    ),
    (
        "numbered with preamble",
        "Here are three alternative versions of your question:\n\n1. " + "\n2. ".join(Q),
        3,
        Q,
    ),
    (
        "bulleted with trailing note",
        "Sure! Here are some queries:\n- " + "\n- ".join(Q) + "\n\nThese cover different angles.",
        3,
        Q,
    ),
    (
        "numbered with parentheses and bold labels",
        "1) **Query 1:** " + Q[0] + "\n2) **Query 2:** " + Q[1] + "\n3) **Query 3:** " + Q[2],
        3,
        Q,
    ),
    (
        "quoted lines with explanations after a dash",
        '1. "'
        + Q[0]
        + '" - focuses on methods\n2. "'
        + Q[1]
        + '" - agent angle\n3. "'
        + Q[2]
        + '" - planning angle',
        3,
        Q,
    ),
    (
        "JSON list in a code fence",
        '```json\n["' + '", "'.join(Q) + '"]\n```',
        3,
        Q,
    ),
    (
        "JSON object with a queries field after a preamble",
        'Here is the JSON you asked for:\n{"queries": ["' + '", "'.join(Q) + '"]}',
        3,
        Q,
    ),
    (
        "more than N lines is capped",
        "\n".join(
            f"{i}. {q}" for i, q in enumerate(Q + ["What is chain of thought prompting?"], 1)
        ),
        2,
        Q[:2],
    ),
    (
        "duplicates differing in case, spacing and final punctuation",
        f"1. {Q[0]}\n2. {Q[0].upper()}\n3.   {Q[0].replace(' ', '  ').rstrip('?')}\n4. {Q[1]}",
        3,
        [Q[0], Q[1]],
    ),
    ("empty completion", "", 3, []),
    ("whitespace only", "  \n\n \t\n", 3, []),
    (
        "single line without numbering",
        "task decomposition approaches in LLM-powered autonomous agents",
        3,
        ["task decomposition approaches in LLM-powered autonomous agents"],
    ),
    (
        "markdown headings and bold aspect labels",
        "### Alternative queries\n\n* **Methods**: "
        + Q[0]
        + "\n* **Agents**: "
        + Q[1]
        + "\n* **Planning**: "
        + Q[2],
        3,
        Q,
    ),
    (
        "reasoning model with a think block",
        "<think>The user wants three rephrasings. Let me think about angles...\n1. bad</think>\n"
        + "\n".join(f"{i}. {q}" for i, q in enumerate(Q, 1)),
        3,
        Q,
    ),
    (
        "over-long explanatory line is dropped",
        "1. "
        + Q[0]
        + "\n2. "
        + ("This query is designed to capture documents that discuss " * 8)
        + "\n3. "
        + Q[1],
        3,
        [Q[0], Q[1]],
    ),
    (
        "Q-labels and blank lines between items",
        "Q1: " + Q[0] + "\n\n\nQ2: " + Q[1] + "\n\nQ3: " + Q[2] + "\n",
        3,
        Q,
    ),
    (
        "smart quotes and numbered with colon",
        "1: “" + Q[0] + "”\n2: “" + Q[1] + "”\n3: “" + Q[2] + "”",
        3,
        Q,
    ),
    (
        "MRAG fusion recording with a blank entry",
        "1. Roman campaigns in Gaul during the late 2nd century BC\n2.\n3. Role of Roman consular legions",
        4,
        [
            "Roman campaigns in Gaul during the late 2nd century BC",
            "Role of Roman consular legions",
        ],
    ),
    (
        "preamble lines without list markers",
        "Certainly. Below are rewritten queries:\n" + "\n".join(Q),
        3,
        Q,
    ),
    (
        "nested bullet and number",
        "- 1. " + Q[0] + "\n- 2. " + Q[1],
        None,
        Q[:2],
    ),
    (
        "numbers inside a query are kept",
        "1. What happened in 1066 at Hastings?\n2. 3D printing of 10.5 mm parts",
        None,
        ["What happened in 1066 at Hastings?", "3D printing of 10.5 mm parts"],
    ),
    (
        "unparseable JSON falls back to lines",
        '["' + Q[0] + '", "' + Q[1],
        3,
        ['["' + Q[0] + '", "' + Q[1]],
    ),
    (
        "only a refusal-like preamble",
        "Here are the queries:",
        3,
        [],
    ),
]


@pytest.mark.parametrize(
    ("text", "n", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_parse_realistic_outputs(text: str, n: int | None, expected: list[str]) -> None:
    assert parse_queries(text, n) == expected


def test_at_least_fifteen_cases() -> None:
    assert len(CASES) >= 15


def test_none_and_cap_zero_like_inputs() -> None:
    assert parse_queries(None, 3) == []
    assert parse_queries("1. a query\n2. another query", 1) == ["a query"]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('  2. **"What is X?"**', "What is X?"),
        ("(3) Query: how does RRF work", "how does RRF work"),
        ("[1] alpha beta", "alpha beta"),
        ("a) first aspect of it", "first aspect of it"),
        ("Rewritten question: why is the sky blue?", "why is the sky blue?"),
        ("1.", ""),
    ],
)
def test_clean_query(line: str, expected: str) -> None:
    assert clean_query(line) == expected

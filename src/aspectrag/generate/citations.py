"""Citation checking after generation: every [n] must name a passage that was given.

Models cite as ``[1]``, ``[1][2]``, ``[1, 2]`` or ``[1-3]``. ``check_citations`` keeps the
numbers that were shown to the model, removes the others from the text and reports them, and
returns the ``Citation`` objects actually used (numbered by hit index, so [n] = hit n).
``mark_support`` then flags an answer that cites nothing (``extras["supported"]``).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from aspectrag.types import Answer, Citation, Hit

# [1], [1, 2], [1,2 ,3], [1-3], [1–3]
_CITE = re.compile(r"\s?\[(\s*\d+\s*(?:(?:,|;|-|–)\s*\d+\s*)*)\]")


@dataclass(slots=True)
class CheckedCitations:
    """Result of ``check_citations``.

    Attributes:
        text: the answer with invalid citation numbers removed.
        used: valid cited hit numbers, ascending.
        invalid: removed numbers (not given to the model), in order of appearance, unique.
        citations: ``Citation`` for each used number (``text`` = the chunk text).
    """

    text: str
    used: list[int] = field(default_factory=list)
    invalid: list[int] = field(default_factory=list)
    citations: list[Citation] = field(default_factory=list)


def _numbers(body: str) -> list[int]:
    out: list[int] = []
    for part in re.split(r"[,;]", body):
        part = part.strip()
        m = re.fullmatch(r"(\d+)\s*[-–]\s*(\d+)", part)
        if m:
            a, b = int(m.group(1)), int(m.group(2))
            out.extend(range(a, b + 1) if 0 < b - a < 50 else (a, b))
        elif part:
            out.append(int(part))
    return out


def cited_numbers(text: str) -> list[int]:
    """All numbers cited in ``text`` in order of appearance (with repeats)."""
    return [n for m in _CITE.finditer(text) for n in _numbers(m.group(1))]


def check_citations(
    text: str, hits: Sequence[Hit], shown: Collection[int] | None = None
) -> CheckedCitations:
    """Check the [n] citations of a generated ``text`` against the passages given.

    Args:
        text: generated answer.
        hits: the retrieved hits; [n] refers to ``hits[n-1]``.
        shown: hit numbers whose passages were actually in the prompt (default: all hits);
            citing a dropped passage is invalid too.
    """
    valid = set(shown) if shown is not None else set(range(1, len(hits) + 1))
    used: set[int] = set()
    invalid: list[int] = []

    def repl(m: re.Match[str]) -> str:
        nums = _numbers(m.group(1))
        keep = [n for n in nums if n in valid]
        for n in nums:
            if n not in valid and n not in invalid:
                invalid.append(n)
        used.update(keep)
        if not keep:
            return ""
        lead = m.group(0)[: len(m.group(0)) - len(m.group(0).lstrip())]
        return f"{lead}[{', '.join(str(n) for n in dict.fromkeys(keep))}]"

    clean = _CITE.sub(repl, text)
    clean = re.sub(r"[ \t]+([.,;:])", r"\1", clean) if invalid else clean
    order = sorted(used)
    return CheckedCitations(
        text=clean,
        used=order,
        invalid=invalid,
        citations=[
            Citation(n=n, chunk=hits[n - 1].chunk, text=hits[n - 1].chunk.text) for n in order
        ],
    )


def posterior_citations(
    checked: CheckedCitations, hits: Sequence[Hit], posterior: Sequence[float], threshold: float
) -> tuple[str, list[Citation]]:
    """Answer text and citations for marginalised decoding (RAG-Sequence / RAG-Token, Lewis et
    al. 2020): the passages the text cites, plus the passage with the largest posterior and
    every passage whose posterior is >= ``threshold``; those the text does not cite are
    appended to it as `` [n]``.

    Args:
        checked: ``check_citations`` of the generated text.
        hits: the retrieved hits ([n] = ``hits[n - 1]``).
        posterior: posterior weight of each passage given the answer, length = passages used.
        threshold: posterior weight from which a passage is cited.
    """
    heavy = {int(max(range(len(posterior)), key=lambda i: posterior[i])) + 1}
    heavy |= {i + 1 for i, w in enumerate(posterior) if w >= threshold}
    cited = set(checked.used)
    extra = sorted(heavy - cited)
    text = (checked.text + "".join(f" [{n}]" for n in extra)).strip()
    ns = sorted(cited | heavy)
    return text, [Citation(n, hits[n - 1].chunk, hits[n - 1].chunk.text) for n in ns]


def mark_support(answer: Answer) -> Answer:
    """Set ``answer.extras["supported"]``: True when the answer keeps at least one valid
    citation (after ``check_citations`` removed the invalid ones), else False, so that an LLM
    reply citing none of the passages (no ``[n]`` at all, or only numbers that were not given)
    is flagged instead of passing silently. An extractive answer is supported when it quotes
    at least one evidence sentence. Returns the same ``answer`` (changed in place).

    This checks *attribution*, not truth: a cited passage may still not entail the sentence
    citing it (no entailment model is run).
    """
    answer.extras["supported"] = bool(answer.citations)
    return answer

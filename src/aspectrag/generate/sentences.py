"""Sentence segmentation of retrieved chunk text, for the extractive answerer.

Chunk text comes from HTML (one paragraph per line), Markdown/text, or PDF pages whose lines
are hard-wrapped and hyphenated. ``split_sentences`` first rebuilds logical lines (joining
wrapped lines, undoing end-of-line hyphenation, keeping headings and list items apart), then
splits them at sentence ends while protecting common abbreviations ("e.g.", "et al.", "Fig.")
so that an enumeration such as "can be done (1) by ..., (2) by ..., or (3) with ..." stays one
sentence. A sentence ending in ":" that introduces list items is merged with the items.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LIGATURES = str.maketrans({"ﬁ": "fi", "ﬂ": "fl", "ﬀ": "ff", "ﬃ": "ffi", "ﬄ": "ffl", "\u00ad": ""})

# Lower-cased words that end with a period without ending the sentence.
_ABBREVIATIONS = frozenset(
    """e.g i.e eg ie al etc vs cf fig figs eq eqs sec secs no nos dr mr mrs ms prof st jr sr
    vol vols pp ch chap ca approx resp incl tab ref refs viz dept univ inc ltd co corp est
    jan feb mar apr jun jul aug sep sept oct nov dec""".split()
)
_LIST_ITEM = re.compile(r"^\s*(?:[-*•·▪–]\s+|\(?\d{1,2}[.)]\s+|\(?[a-z][.)]\s+)")
_TERMINAL = re.compile(r"[.!?:][\"'”’)\]]*$")
# Candidate sentence end: terminal punctuation, optional closing quotes/brackets, whitespace.
_BOUNDARY = re.compile(r"([.!?])([\"'”’)\]]*)(\s+)(?=[\"'“‘(\[]?[A-Z0-9])")


@dataclass(frozen=True, slots=True)
class Sentence:
    """One sentence (or list block) of a chunk.

    Attributes:
        text: the sentence, whitespace-normalised, ligatures expanded.
        position: 0-based index of the sentence in its chunk.
    """

    text: str
    position: int


def normalise(text: str) -> str:
    """Expand typographic ligatures (PDF "ﬁ" -> "fi"), drop soft hyphens, collapse spaces."""
    return re.sub(r"[ \t\u00a0]+", " ", text.translate(_LIGATURES)).strip()


def logical_lines(text: str) -> list[str]:
    """Rebuild logical lines from ``text``: wrapped lines are joined (hyphenation undone),
    while blank lines, headings (short lines), list items and lines ending in terminal
    punctuation stay separate. Returns non-empty, normalised lines."""
    out: list[str] = []
    for block in re.split(r"\n\s*\n", text):
        lines = [normalise(x) for x in block.split("\n")]
        lines = [x for x in lines if x]
        if not lines:
            continue
        lengths = sorted(len(x) for x in lines)
        typical = lengths[-1] if len(lengths) < 10 else lengths[int(0.9 * (len(lengths) - 1))]
        cur = lines[0]
        for prev, nxt in zip(lines, lines[1:], strict=False):
            if _joins(prev, nxt, typical):
                if prev.endswith("-") and nxt[:1].islower() and not prev.endswith(" -"):
                    cur = cur[:-1] + _dehyphenate(prev, nxt, text)
                else:
                    cur = f"{cur} {nxt}"
            else:
                out.append(cur)
                cur = nxt
        out.append(cur)
    return out


def _dehyphenate(prev: str, nxt: str, text: str) -> str:
    """Continuation of a line ending in "-": keep the hyphen ("task-\\nspecific") when the
    hyphenated word occurs unbroken elsewhere in ``text``, else drop it ("representa-\\ntion")."""
    head = re.search(r"(\w+)-$", prev)
    tail = re.match(r"\w+", nxt)
    if head and tail and f"{head.group(1)}-{tail.group(0)}" in text:
        return "-" + nxt
    return nxt


def _joins(prev: str, nxt: str, typical: int) -> bool:
    """Whether the line break between ``prev`` and ``nxt`` is a soft wrap."""
    if _LIST_ITEM.match(nxt) or _TERMINAL.search(prev):
        return False
    if nxt[:1].islower() or prev.endswith(("-", ",")):
        return True
    # A line much shorter than its neighbours is a heading or the end of a paragraph.
    return len(prev) >= 0.6 * typical


def split_line(line: str) -> list[str]:
    """Split one logical line into sentences at ``.``/``!``/``?`` followed by whitespace and
    an upper-case letter or digit, except after abbreviations and single-letter initials."""
    pieces: list[str] = []
    start = 0
    for m in _BOUNDARY.finditer(line):
        if m.group(1) == ".":
            word = re.search(r"([\w.]+)$", line[start : m.start(1)])
            w = word.group(1).lower() if word else ""
            if (
                w in _ABBREVIATIONS
                or (len(w) == 1 and w.isalpha())
                or re.fullmatch(r"(\w\.)+\w", w)
            ):
                continue
        end = m.end(2)
        pieces.append(line[start:end].strip())
        start = m.end(3)
    pieces.append(line[start:].strip())
    return [p for p in pieces if p]


def split_sentences(text: str, *, max_list_chars: int = 800) -> list[Sentence]:
    """Split chunk ``text`` into sentences (see module doc).

    A sentence ending in ":" directly followed by list items (bullets, "1.", "(a)") is merged
    with those items, up to ``max_list_chars`` characters, so list-like answers stay whole.
    """
    sents: list[tuple[str, bool]] = []  # (text, is_list_item)
    for line in logical_lines(text):
        is_item = bool(_LIST_ITEM.match(line))
        parts = [line] if is_item else split_line(line)
        sents.extend((p, is_item) for p in parts)
    merged: list[str] = []
    i = 0
    while i < len(sents):
        s, _ = sents[i]
        i += 1
        if s.endswith(":"):
            while i < len(sents) and sents[i][1] and len(s) + len(sents[i][0]) < max_list_chars:
                s = f"{s} {sents[i][0]}"
                i += 1
        merged.append(s)
    return [Sentence(text=s, position=j) for j, s in enumerate(merged)]

"""Recursive character splitter: documents -> overlapping chunks with exact character offsets.

The method is LangChain's ``RecursiveCharacterTextSplitter`` (recursive splitting on a list of
separators, then greedy merging with overlap), with these differences: pieces are kept as
character spans of the document (so ``chunk.text == doc.text[chunk.start:chunk.end]``), the
sentence level keeps its punctuation, every piece is measured once and a chunk's length is the
sum of its pieces' lengths (linear number of ``length_function`` calls), and sections that carry
a heading are hard chunk boundaries (a chunk never straddles two headings).
"""

from __future__ import annotations

import bisect
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from aspectrag.types import Chunk, Document, Section

#: Separator levels, strongest first; a piece ends after its separator (kept with it).
SEPARATORS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("paragraph", re.compile(r"\n[ \t]*\n\s*")),
    ("line", re.compile(r"\n\s*")),
    # ". ", "? ", "! " (optionally followed by closing quotes/brackets), not before a lower-case
    # letter ("e.g. the", "et al. found").
    ("sentence", re.compile(r"[.?!][\"'”’)\]]*\s+(?![a-z])")),
    ("word", re.compile(r"\s+")),
)


@dataclass(frozen=True, slots=True)
class _Piece:
    start: int
    end: int
    length: int


class RecursiveCharacterSplitter:
    """Splits a ``Document`` into chunks of at most ``chunk_size`` units (see ``length_function``).

    Text is cut at paragraph breaks (blank line), else line breaks, else sentence ends (". ",
    "? ", "! ", the punctuation stays with its sentence), else spaces, else between characters;
    the pieces are then merged greedily into chunks of at most ``chunk_size`` units, each chunk
    repeating up to ``chunk_overlap`` units of whole pieces from the end of the previous one.

    Every chunk satisfies ``chunk.text == doc.text[chunk.start:chunk.end]`` (character offsets,
    leading/trailing whitespace excluded), has ``chunk_id == f"{doc.doc_id}#{index}"``, and takes
    ``page`` and ``heading`` from the sections of ``doc`` that contain ``chunk.start``.
    Whitespace-only documents give no chunks.

    Args:
        chunk_size: largest chunk, in units of ``length_function`` (characters with ``len``;
            tokens when given a tokenizer counter, e.g. ~250 for a 256-token embedder).
        chunk_overlap: overlap between consecutive chunks, same units; ``0 <= overlap < size``.
        length_function: ``str -> int`` size of a piece of text. It should be additive over
            whitespace-separated pieces (true for characters and for word-piece token counts
            *without* special tokens such as [CLS]/[SEP]): a chunk's length is taken as the sum of
            its pieces' lengths. Each piece of text is measured once.
        split_at_headings: start a new chunk at every section that has a heading.
        max_length: largest *indexed* text (:meth:`Chunk.index_text`: the "title — heading"
            header plus the chunk), same units, e.g. the embedder's token limit minus its two
            special tokens. Where the header is longer than ``max_length - chunk_size`` the
            chunks of that section are made shorter (down to ``min_chunk_size``), so the
            embedder never truncates a chunk's end. ``None``: chunks are ``chunk_size`` long.
        min_chunk_size: the floor of that reduction (a header longer than ``max_length -
            min_chunk_size`` still leads to truncation, of the chunk's end).

    Raises:
        ValueError: on invalid ``chunk_size`` / ``chunk_overlap``.
    """

    def __init__(
        self,
        chunk_size: int,
        chunk_overlap: int,
        length_function: Callable[[str], int] = len,
        split_at_headings: bool = True,
        max_length: int | None = None,
        min_chunk_size: int = 64,
    ) -> None:
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        if not 0 <= chunk_overlap < chunk_size:
            raise ValueError(
                f"chunk_overlap must be in [0, chunk_size={chunk_size}), got {chunk_overlap}"
            )
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self.length_function = length_function
        self.split_at_headings = split_at_headings
        self.max_length = max_length
        self.min_chunk_size = min_chunk_size
        self._shorter: dict[int, RecursiveCharacterSplitter] = {}

    def for_header(self, header: str) -> RecursiveCharacterSplitter:
        """The splitter for a section whose chunks get ``header`` prepended when indexed:
        ``self``, or one with a smaller ``chunk_size`` (and overlap) so header + chunk fit in
        ``max_length``."""
        if self.max_length is None or not header:
            return self
        room = self.max_length - self.length_function(header) - 1  # "\n" between the two
        size = max(min(self.chunk_size, self.min_chunk_size), min(self.chunk_size, room))
        if size >= self.chunk_size:
            return self
        if size not in self._shorter:
            overlap = min(self.chunk_overlap, self.chunk_overlap * size // self.chunk_size)
            self._shorter[size] = RecursiveCharacterSplitter(
                size, overlap, self.length_function, self.split_at_headings
            )
        return self._shorter[size]

    # ------------------------------------------------------------------ public API
    def split(self, doc: Document) -> list[Chunk]:
        """Chunks of ``doc`` in document order (see the class docstring)."""
        text = doc.text
        if not text.strip():
            return []
        pages = _Lookup([s for s in doc.sections if s.page is not None])
        headings = _Lookup([s for s in doc.sections if s.heading is not None])
        bounds = [0, len(text)]
        if self.split_at_headings:
            bounds[1:1] = sorted({s.start for s in headings.sections if 0 < s.start < len(text)})
        chunks: list[Chunk] = []
        for seg_start, seg_end in zip(bounds, bounds[1:], strict=False):
            found = headings.find(seg_start)
            header = " — ".join(p for p in (doc.title, found.heading if found else None) if p)
            for start, end in self.for_header(header).spans(text, seg_start, seg_end):
                page = pages.find(start)
                heading = headings.find(start)
                chunks.append(
                    Chunk(
                        chunk_id=f"{doc.doc_id}#{len(chunks)}",
                        doc_id=doc.doc_id,
                        source=doc.source,
                        title=doc.title,
                        index=len(chunks),
                        text=text[start:end],
                        start=start,
                        end=end,
                        page=page.page if page else None,
                        heading=heading.heading if heading else None,
                    )
                )
        return chunks

    def spans(self, text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
        """Chunk spans ``(start, end)`` (character offsets, whitespace stripped) of ``text[start:end]``."""
        end = len(text) if end is None else end
        if start >= end or not text[start:end].strip():
            return []
        pieces: list[_Piece] = []
        length = self.length_function(text[start:end])
        if length <= self.chunk_size:
            pieces.append(_Piece(start, end, length))
        else:
            self._atoms(text, start, end, 0, pieces)
        out: list[tuple[int, int]] = []
        for s, e in self._merge(pieces):
            while s < e and text[s].isspace():
                s += 1
            while e > s and text[e - 1].isspace():
                e -= 1
            if s < e:
                out.append((s, e))
        return out

    # ------------------------------------------------------------------ internals
    def _atoms(self, text: str, start: int, end: int, level: int, out: list[_Piece]) -> None:
        """Append to ``out`` pieces covering ``text[start:end]`` (which is too long), each of at
        most ``chunk_size`` units, cutting at separator ``level`` or weaker."""
        if level >= len(SEPARATORS):
            self._cut_characters(text, start, end, out)
            return
        pattern = SEPARATORS[level][1]
        cuts = [m.end() for m in pattern.finditer(text, start, end) if start < m.end() < end]
        if not cuts:
            self._atoms(text, start, end, level + 1, out)
            return
        for a, b in zip([start, *cuts], [*cuts, end], strict=True):
            length = self.length_function(text[a:b])
            if length <= self.chunk_size:
                out.append(_Piece(a, b, length))
            else:
                self._atoms(text, a, b, level + 1, out)

    def _cut_characters(self, text: str, start: int, end: int, out: list[_Piece]) -> None:
        """Cut a separator-free span into the longest prefixes that fit (binary search: O(log n)
        ``length_function`` calls per piece; exact for ``len``)."""
        a = start
        while a < end:
            lo, hi = a + 1, end  # the longest b in [lo, hi] with length(text[a:b]) <= chunk_size
            if self.length_function is len:
                b = min(end, a + self.chunk_size)
            else:
                b = lo
                while lo <= hi:
                    mid = (lo + hi) // 2
                    if self.length_function(text[a:mid]) <= self.chunk_size:
                        b, lo = mid, mid + 1
                    else:
                        hi = mid - 1
            out.append(_Piece(a, b, self.length_function(text[a:b])))
            a = b

    def _merge(self, pieces: list[_Piece]) -> list[tuple[int, int]]:
        """Greedy merge of consecutive pieces into spans of at most ``chunk_size`` units; after a
        span is emitted, whole pieces from its end (at most ``chunk_overlap`` units) start the
        next one."""
        spans: list[tuple[int, int]] = []
        window: deque[_Piece] = deque()
        total = 0
        for piece in pieces:
            if window and total + piece.length > self.chunk_size:
                spans.append((window[0].start, window[-1].end))
                while window and (
                    total > self.chunk_overlap or total + piece.length > self.chunk_size
                ):
                    total -= window.popleft().length
            window.append(piece)
            total += piece.length
        if window:
            spans.append((window[0].start, window[-1].end))
        return spans


class _Lookup:
    """Finds the section containing a character offset (the one starting last, if nested)."""

    def __init__(self, sections: list[Section]) -> None:
        self.sections = sorted(sections, key=lambda s: (s.start, -s.end))
        self._starts = [s.start for s in self.sections]
        self._max_end: list[int] = []  # max end over sections[0..i]: stops the backward scan
        for section in self.sections:
            self._max_end.append(max(section.end, self._max_end[-1] if self._max_end else 0))

    def find(self, pos: int) -> Section | None:
        i = bisect.bisect_right(self._starts, pos) - 1
        while i >= 0 and self._max_end[i] > pos:
            if self.sections[i].end > pos:
                return self.sections[i]
            i -= 1
        return None

"""Builds a document's text from blocks (paragraphs, headings, rows), recording ``Section``s,
for the loaders of structured formats (docx, pptx, xlsx/csv, epub)."""

from __future__ import annotations

from aspectrag.types import Section


class TextBuilder:
    """Blocks joined by blank lines; each ``heading(...)`` starts a section that runs to the next.

    ``heading(name, show=False)`` starts a section without putting ``name`` in the text (slide
    numbers, sheet names: locations rather than content).
    """

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pos = 0
        self.marks: list[tuple[int, str]] = []

    def _start(self) -> int:
        return self.pos + (2 if self.parts else 0)

    def heading(self, name: str, *, show: bool = True) -> None:
        name = " ".join(name.split())
        if not name:
            return
        self.marks.append((self._start(), name))
        if show:
            self.text(name)

    def text(self, block: str) -> None:
        block = block.strip()
        if not block:
            return
        self.pos = self._start() + len(block)
        self.parts.append(block)

    def build(self) -> tuple[str, list[Section]]:
        """``(text, sections)``; sections with no text of their own are dropped."""
        text = "\n\n".join(self.parts)
        marks = [(min(s, len(text)), h) for s, h in self.marks]
        sections = []
        for k, (start, heading) in enumerate(marks):
            end = marks[k + 1][0] if k + 1 < len(marks) else len(text)
            if end > start:
                sections.append(Section(start=start, end=end, heading=heading))
        return text, sections

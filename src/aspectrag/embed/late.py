"""Late chunking of query spans: sub-queries pooled from the question's own forward pass.

Method: late chunking (Günther et al. 2024, Jina AI, "Late Chunking: Contextual Chunk
Embeddings Using Long-Context Embedding Models", arXiv 2409.04701): run the encoder once over
the whole text and mean-pool the token vectors of each chunk (then L2-normalise, as the
model's own pooling does), instead of encoding every chunk on its own. Here the "chunks" are
multi-query sub-queries that are pieces of the question (rule-based sentences, paragraphs,
clauses): their vectors come from the question's token vectors, which the question's own
query needs anyway, so they cost no forward pass of their own.

Which sub-queries count as pieces (:func:`word_ranges`): ``"spans"`` -- the sub-query's words
are a contiguous run of the question's words (punctuation and spacing may differ);
``"subsequences"`` -- its words occur in the question in the same order, gaps allowed (the
enumeration items substituted into a sentence, the keyword query). Anything else (PRF
expansion terms, reordered keywords, an LLM's rewording) is encoded normally.

The plan travels in a :class:`contextvars.ContextVar` (:func:`late_chunking`) set by
:class:`~aspectrag.retrieve.multiquery.MultiQueryRetriever` around its base search, so the
retrievers between it and the embedder (dense, hybrid) need no new argument. Embedders that
implement it: the ONNX ones (:mod:`aspectrag.embed.onnx`, the query twin); others ignore the
plan and encode every text normally.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field

import numpy as np

LATE_MODES: tuple[str, ...] = ("spans", "subsequences")
_WORD = re.compile(r"[^\W_]+|[^\w\s]")
_PUNCT = re.compile(r"[^\w\s]")

Ranges = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class SpanPlan:
    """Sub-queries to pool from a question's token vectors.

    Attributes:
        spans: ``{sub-query text: (question text, character ranges in the question)}``.
        specials: also pool the question's special tokens (``[CLS]``, ``[SEP]``), as
            encoding the span on its own would.
    """

    spans: Mapping[str, tuple[str, Ranges]] = field(default_factory=dict)
    specials: bool = False


_CURRENT: ContextVar[SpanPlan | None] = ContextVar("aspectrag_late_chunking", default=None)


@contextlib.contextmanager
def late_chunking(plan: SpanPlan | None) -> Iterator[None]:
    """Within the block, query encoders that support it pool ``plan``'s sub-queries from
    their questions' token vectors (None or an empty plan: no effect)."""
    token = _CURRENT.set(plan if plan is not None and plan.spans else None)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def active_plan() -> SpanPlan | None:
    """The plan of the enclosing :func:`late_chunking` block, or None."""
    return _CURRENT.get()


def word_ranges(question: str, sub: str, mode: str = "spans") -> Ranges | None:
    """Character ranges of ``question`` whose words are ``sub``'s words (see the module doc
    for ``mode``), merged where adjacent; None when ``sub`` is not such a piece, is empty, or
    is the whole question. Words compare exactly (case kept); punctuation is ignored.

    Raises:
        ValueError: unknown ``mode``.
    """
    if mode not in LATE_MODES:
        raise ValueError(f"late chunking mode {mode!r} unknown; use one of {LATE_MODES}")
    q = [(m.group(), m.start(), m.end()) for m in _WORD.finditer(question)
         if not _PUNCT.fullmatch(m.group())]
    s = [m.group() for m in _WORD.finditer(sub) if not _PUNCT.fullmatch(m.group())]
    if not s or len(s) >= len(q):
        return None
    picked: list[int] | None = None
    if mode == "spans":
        words = [w for w, _, _ in q]
        for i in range(len(q) - len(s) + 1):
            if words[i : i + len(s)] == s:
                picked = list(range(i, i + len(s)))
                break
    else:
        picked, j = [], 0
        for i, (w, _, _) in enumerate(q):
            if j < len(s) and w == s[j]:
                picked.append(i)
                j += 1
        if j < len(s):
            picked = None
    if picked is None:
        return None
    ranges: list[list[int]] = []
    for i in picked:
        if ranges and i - 1 == ranges[-1][2]:
            ranges[-1][1], ranges[-1][2] = q[i][2], i
        else:
            ranges.append([q[i][1], q[i][2], i])
    return tuple((a, b) for a, b, _ in ranges)


def plan_spans(pairs: Iterable[tuple[str, str]], mode: str = "spans", *,
               specials: bool = False) -> SpanPlan:
    """The :class:`SpanPlan` of ``(question, sub-query)`` pairs: those whose sub-query is a
    piece of the question (:func:`word_ranges`); a sub-query text met twice keeps its first
    question."""
    spans: dict[str, tuple[str, Ranges]] = {}
    for question, sub in pairs:
        if sub in spans or sub == question:
            continue
        r = word_ranges(question, sub, mode)
        if r is not None:
            spans[sub] = (question, r)
    return SpanPlan(spans, specials)


def forward_texts(texts: Sequence[str], plan: SpanPlan) -> tuple[list[str], list[int]]:
    """``(texts to run through the model, for each of ``texts`` its row in that list)``:
    a planned sub-query maps to its question's row (the question is added once, or shared
    when it is itself among ``texts``); other texts map to themselves (deduplicated)."""
    rows: dict[str, int] = {}
    out: list[int] = []
    for t in texts:
        src = plan.spans[t][0] if t in plan.spans else t
        out.append(rows.setdefault(src, len(rows)))
    return list(rows), out


def span_rows(offsets: np.ndarray, ranges: Ranges, *, specials: bool) -> np.ndarray | None:
    """Token positions covering ``ranges``.

    Args:
        offsets: int ``(L, 2)`` character offsets of one text's tokens, padding removed;
            special tokens have ``start == end``.
        ranges: character ranges in that text.
        specials: add the special tokens' positions.

    Returns:
        int64 positions (ascending), or None when a range ends after the last token (the
        text was truncated there) or no token covers the ranges.
    """
    start, end = offsets[:, 0], offsets[:, 1]
    real = end > start
    if not real.any() or max(b for _, b in ranges) > int(end[real].max()):
        return None
    hit = np.zeros(len(offsets), dtype=bool)
    for a, b in ranges:
        hit |= real & (start < b) & (end > a)
    if not hit.any():
        return None
    if specials:
        hit |= ~real
    return np.flatnonzero(hit).astype(np.int64)


def pool_rows(x: np.ndarray, rows: np.ndarray, pooling: str) -> np.ndarray:
    """Pool the token vectors ``x`` (float32 ``(L, D)``, one text, padding removed) at
    ``rows``: ``"mean"`` their mean, ``"last"`` the last of them, ``"cls"`` position 0 (the
    text's first token: a span has none of its own). Returns float32 ``(D,)``.

    Raises:
        ValueError: unknown ``pooling``.
    """
    if pooling == "mean":
        return x[rows].mean(0, dtype=np.float32)
    if pooling == "last":
        return x[rows[-1]]
    if pooling == "cls":
        return x[0]
    raise ValueError(f"pooling {pooling!r} unknown; use one of mean, cls, last")

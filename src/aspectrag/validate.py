"""Request validation shared by every edge (Python API, CLI, HTTP API): one place, one message
style. Every error is an :class:`~aspectrag.errors.InvalidRequestError` naming the argument,
the value given and the limit, or an :class:`~aspectrag.errors.IndexNotFoundError`.

What counts as a *searchable* query: it has at least one BM25 term (words of two or more
word characters, lower-cased, English stop words removed: bm25s' default tokeniser and stop
list, the ones the BM25 index uses), or at least one other word (a single letter, digit or
CJK character, not a stop word) that the dense embedder's WordPiece vocabulary maps to a
non-special token (not ``[UNK]``/``[CLS]``/...). So an empty, whitespace-only, punctuation-
only, emoji-only or stop-word-only query ("the of and") is rejected; "x", "7", "日" and
"what is RAG?" are accepted.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aspectrag.errors import IndexNotFoundError, InvalidRequestError

#: bm25s' English stop list (``bm25s.stopwords.STOPWORDS_EN``; a test keeps the two equal):
#: copied so that validating a dense-only query does not import bm25s (0.8 s).
STOPWORDS_EN = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is",
    "it", "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there",
    "these", "they", "this", "to", "was", "will", "with",
))
_BM25_TOKEN = re.compile(r"(?u)\b\w\w+\b")  # bm25s.tokenize's default token_pattern
_WORD = re.compile(r"(?u)\w+")

#: The file that makes a folder an aspectrag index (the SQLite store's durable file).
INDEX_FILE = "index.sqlite"


def validate_k(k: Any, *, max_k: int | None = None, field: str = "k") -> int:
    """``k`` as an int, checked against ``1 <= k (<= max_k)``.

    Raises:
        InvalidRequestError: ``k`` is not an integer, below 1, or above ``max_k``.
    """
    if isinstance(k, bool) or not isinstance(k, int):
        try:  # numpy integers, 5.0
            ok = not isinstance(k, (bool, str, bytes)) and float(k).is_integer()
        except (TypeError, ValueError, OverflowError):
            ok = False
        if not ok:
            raise InvalidRequestError(field, f"{field} must be a whole number >= 1, got {k!r}")
        k = int(k)
    if k < 1:
        raise InvalidRequestError(field, f"{field} must be >= 1 (the number of results), got {k}")
    if max_k is not None and k > max_k:
        raise InvalidRequestError(field, f"{field} must be <= {max_k}, got {k}")
    return k


def bm25_terms(query: str) -> list[str]:
    """The query's BM25 terms before stemming: lower-cased words of >= 2 word characters that
    are not English stop words (bm25s' tokeniser and stop list)."""
    return [t for t in _BM25_TOKEN.findall(query.lower()) if t not in STOPWORDS_EN]


def searchable_terms(
    query: str, get_tokenizer: Callable[[], Any] | None = None
) -> list[str]:
    """The terms that make ``query`` searchable (see the module doc); ``[]`` when it has none.

    Args:
        query: the query text.
        get_tokenizer: returns the dense embedder's Hugging Face tokenizer or None; called
            only for a query without BM25 terms. With a tokenizer, the other words count only
            if they map to a non-special wordpiece.
    """
    terms = bm25_terms(query)
    if terms:
        return terms
    words = [w for w in _WORD.findall(query.lower()) if w not in STOPWORDS_EN]
    tokenizer = get_tokenizer() if words and get_tokenizer is not None else None
    if tokenizer is None:
        return words
    special = set(getattr(tokenizer, "all_special_ids", ()) or ())
    ids = tokenizer(" ".join(words), add_special_tokens=False)["input_ids"]
    pieces = [i for i in ids if i not in special]
    return tokenizer.convert_ids_to_tokens(pieces) if pieces else []


def validate_query(
    query: Any, *, get_tokenizer: Callable[[], Any] | None = None, max_chars: int | None = None,
    field: str = "query",
) -> str:
    """``query`` checked: a string, not blank, at most ``max_chars`` characters, with at least
    one searchable term (see the module doc; ``get_tokenizer`` as in :func:`searchable_terms`).

    Raises:
        InvalidRequestError: naming ``field`` and what is wrong.
    """
    if not isinstance(query, str):
        raise InvalidRequestError(field, f"{field} must be a string, got {type(query).__name__}")
    if not query.strip():
        raise InvalidRequestError(field, f"{field} is empty; give a question or keywords")
    if max_chars is not None and len(query) > max_chars:
        raise InvalidRequestError(
            field, f"{field} has {len(query)} characters; the limit is {max_chars}")
    if not searchable_terms(query, get_tokenizer):
        shown = query if len(query) <= 60 else query[:57] + "..."
        raise InvalidRequestError(
            field, f"{field} {shown!r} has no searchable word (only stop words, punctuation, "
            "symbols or emoji); add a content word")
    return query


def index_exists(location: str | Path) -> bool:
    """True when ``location`` is an index folder (holds ``index.sqlite``); always True for a
    ``scheme://`` location (the backend checks it when connecting)."""
    if "://" in str(location):
        return True
    return (Path(location) / INDEX_FILE).is_file()


def require_index(location: str | Path) -> None:
    """Raise :class:`IndexNotFoundError` unless ``location`` is an existing index (read
    commands must not create an empty index on a typo)."""
    if not index_exists(location):
        raise IndexNotFoundError(str(location))

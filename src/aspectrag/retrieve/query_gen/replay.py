"""Replay recorded query variants (question -> queries) from a JSON or JSONL file.

Lets a run reuse queries an LLM wrote earlier, without the LLM: for example the MRAG query
sets, whose ``fusion`` field holds 4 sub-queries written by an LLM (Besta et al. 2024,
"Fusion RAG" baseline), still numbered and sometimes blank; they are cleaned with
:func:`~aspectrag.retrieve.query_gen.parse.clean_query`.

Accepted layouts (``.bz2`` / ``.gz`` compressed files too):

* a JSON object ``{"question": ["query", ...], ...}``;
* a JSON list, or JSONL lines, of records with the question in ``question`` / ``text`` /
  ``query`` and the queries in ``queries`` / ``fusion`` / ``variants`` / ``subqueries``.

A query is a string or ``{"query": str, "weight": float}``. Questions are matched
case- and whitespace-insensitively.
"""

from __future__ import annotations

import bz2
import gzip
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aspectrag.errors import LoadError
from aspectrag.retrieve.query_gen.base import SubQuery, fallback
from aspectrag.retrieve.query_gen.parse import clean_query

log = logging.getLogger("aspectrag.multiquery")

_QUESTION_KEYS = ("question", "text", "query")
_QUERIES_KEYS = ("queries", "fusion", "variants", "subqueries")


def question_key(question: str) -> str:
    """Lookup key: case-folded, whitespace collapsed."""
    return re.sub(r"\s+", " ", question).strip().casefold()


def _read_text(path: Path) -> str:
    try:
        if path.suffix == ".bz2":
            return bz2.open(path, "rt", encoding="utf-8").read()
        if path.suffix == ".gz":
            return gzip.open(path, "rt", encoding="utf-8").read()
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise LoadError(str(path), f"cannot read the replay file ({exc})") from exc


def _records(path: Path, text: str) -> Iterator[tuple[str, Any, str]]:
    """(question, queries, where) triples; ``where`` names the line/entry for error messages."""
    stripped = text.lstrip()
    if stripped.startswith("{") or stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None  # may be JSONL whose first line is an object
        if isinstance(data, dict) and not all(isinstance(v, list) for v in data.values()):
            # one JSONL record on one line, not a question -> queries mapping
            yield *_fields(path, data, "line 1"), "line 1"
            return
        if isinstance(data, dict):
            for q, qs in data.items():
                yield q, qs, f"key {q!r}"
            return
        if isinstance(data, list):
            for i, rec in enumerate(data):
                yield *_fields(path, rec, f"entry {i}"), f"entry {i}"
            return
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LoadError(
                str(path),
                f"line {lineno}: not valid JSON ({exc.msg}); expected one record per line",
            ) from exc
        yield *_fields(path, rec, f"line {lineno}"), f"line {lineno}"


def _fields(path: Path, rec: Any, where: str) -> tuple[str, Any]:
    if not isinstance(rec, dict):
        raise LoadError(str(path), f"{where}: expected an object with a question and its queries")
    q = next((rec[k] for k in _QUESTION_KEYS if isinstance(rec.get(k), str)), None)
    qs = next((rec[k] for k in _QUERIES_KEYS if k in rec), None)
    if q is None or qs is None:
        raise LoadError(
            str(path),
            f"{where}: needs a question field ({'/'.join(_QUESTION_KEYS)}) and a queries "
            f"field ({'/'.join(_QUERIES_KEYS)}); found {sorted(rec)}",
        )
    return q, qs


def _subqueries(path: Path, qs: Any, where: str) -> list[SubQuery]:
    if not isinstance(qs, list):
        raise LoadError(str(path), f"{where}: the queries must be a list")
    out: list[SubQuery] = []
    seen: set[str] = set()
    for item in qs:
        weight = 1.0
        if isinstance(item, dict):
            text = item.get("query", item.get("text"))
            weight = item.get("weight", 1.0)
            if not isinstance(weight, int | float) or weight < 0:
                raise LoadError(str(path), f"{where}: weight must be a number >= 0, got {weight!r}")
        else:
            text = item
        if not isinstance(text, str):
            raise LoadError(str(path), f"{where}: a query must be a string, got {text!r}")
        text = clean_query(text)
        if text and question_key(text) not in seen:
            seen.add(question_key(text))
            out.append(SubQuery(text, float(weight), "replay"))
    return out


class ReplayQueryGenerator:
    """Queries looked up in a recording; unknown questions fall back to the question (warning).

    Args:
        path: the JSON / JSONL file (optionally ``.bz2`` / ``.gz``).
        n: keep at most this many recorded queries per question (None: all).

    Raises:
        LoadError: unreadable file, invalid JSON, or a record without question/queries fields.
    """

    def __init__(self, path: str | Path, *, n: int | None = None) -> None:
        self.path = Path(path)
        self.n = n
        self.name = f"replay:{self.path.name}"
        self.table: dict[str, list[SubQuery]] = {}
        for q, qs, where in _records(self.path, _read_text(self.path)):
            self.table[question_key(q)] = _subqueries(self.path, qs, where)
        if not self.table:
            raise LoadError(str(self.path), "no recorded questions in the replay file")
        log.info("%s: %d recorded questions", self.name, len(self.table))

    def generate(self, question: str) -> list[SubQuery]:
        """The recorded queries of ``question`` (at most ``n``), or the fallback."""
        qs = self.table.get(question_key(question))
        if qs is None:
            log.warning("%s: question not in the recording; using the question", self.name)
            return fallback(question)
        if not qs:
            log.warning("%s: no usable recorded query; using the question", self.name)
            return fallback(question)
        return qs[: self.n] if self.n is not None else list(qs)

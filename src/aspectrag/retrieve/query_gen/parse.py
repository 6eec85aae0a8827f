"""Robust parsing of the queries an LLM writes.

The reference multi-query retriever (LangChain ``MultiQueryRetriever``) splits the LLM output
on newlines and keeps every non-empty line, so numbering, bullets, preambles ("Here are three
queries:"), closing remarks and duplicates all become "queries". Its users asked for a parser
that strips them (ALGORITHMS.md section 1); this module is that parser:

* ``<think>...</think>`` blocks of reasoning models and markdown code fences are removed;
* a JSON list of strings (or ``{"queries": [...]}``, anywhere in the text) is accepted;
* otherwise one query per line: numbering ("1.", "1)", "(1)", "Q1:", "Query 1:"), bullets,
  markdown emphasis, labels ("Query:", "Rewritten question:") and enclosing quotes are stripped;
* markdown headings are dropped; when some lines are list items, the lines that are not (preambles, notes) are dropped;
  otherwise lines that look like a preamble (ending in ":" or opening with "Here are", "Sure")
  are dropped;
* lines longer than ``max_chars`` characters (explanations, paragraphs) are dropped;
* duplicates are removed case- and whitespace-insensitively (first occurrence kept);
* the result is capped at ``n`` queries.
"""

from __future__ import annotations

import json
import re

_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.S | re.I)
_FENCE = re.compile(r"^\s*```[\w-]*\s*$", re.M)
# List markers: bullets, "1." "1)" "(1)" "[1]" "1 -" "a)" "Q1:" "Query 1:" "Question #2 -" ...
_MARKER = re.compile(
    r"""^\s*(?:
        [-*+>]+\s+ | [•·▪–—]+\s*                      # bullets, blockquote
      | [(\[]?\d{1,2}\s*[.):\]](?=[\s*_"'“]|$)\s*(?:-\s*)?  # 1.  1)  (1)  [1]  1:
      | \d{1,2}\s+[-–]\s+                             # 1 - query
      | [(\[]?[a-h][.)\]]\s+ | [(\[]?[A-H][)\]]\s+     # a)  b.  (A)
      | (?:q|query|question|variant|version|sub-?query|search\s+query)\s*\#?\s*\d{1,2}\s*[:.)\-–]\s*
    )""",
    re.I | re.X,
)
_HEADING = re.compile(r"^\s*#{1,6}\s")
_LABEL = re.compile(
    r"^\s*(?:(?:alternative|rewritten|rephrased|reformulated|search|sub-?)?\s*"
    r"(?:query|question|variant|version|perspective)(?:\s*\d{1,2})?|q\d{1,2})\s*[:\-–]\s+",
    re.I,
)
_EMPHASIS = re.compile(r"(\*\*|__|\*|_|`)(.+?)\1")
_QUOTES = "\"'“”‘’«»`"
# '"What is X?" - targets the history aspect' -> 'What is X?'
_QUOTED_THEN_NOTE = re.compile(r'^["“](.+?)["”]\s*(?:[-–—:(].*)?$')
# "**Historical context**: What caused ...": a bold aspect label before the query.
_BOLD_LABEL = re.compile(r"^(\*\*|__)([^*_]{1,60}?)(?:[:\-–—]\s*\1|\1\s*[:\-–—])\s*")
_PREAMBLE = re.compile(
    r"^(?:here\s+(?:are|is)|sure|certainly|of\s+course|okay|ok\b|below\s+are|i\s+(?:have|will|'ve|'ll)"
    r"|the\s+following|these\s+(?:queries|questions)|alternative\s+(?:queries|questions|versions)"
    r"|note\b|as\s+an\s+ai)",
    re.I,
)


def _normalise_key(text: str) -> str:
    """Key for duplicate detection: case-folded, whitespace collapsed, end punctuation dropped."""
    return re.sub(r"\s+", " ", text).strip().rstrip("?.!").strip().casefold()


def clean_query(line: str) -> str:
    """Strip list markers, labels, markdown emphasis and enclosing quotes from one line.

    ``'  2. **"What is X?"**'`` -> ``'What is X?'``. Returns '' when nothing is left.
    """
    s = line.strip()
    for _ in range(4):  # markers can stack: "- 1. **Query 1:** ..."
        t = _MARKER.sub("", s, count=1).strip()
        m = _BOLD_LABEL.match(t)
        if m and (_LABEL.match(m.group(2) + ": x") or len(t[m.end() :].split()) >= 3):
            t = t[m.end() :].strip()
        t = _LABEL.sub("", t, count=1).strip()
        if t == s:
            break
        s = t
    s = _EMPHASIS.sub(r"\2", s).replace("**", "").replace("__", "").strip()
    m = _QUOTED_THEN_NOTE.match(s)
    if m:
        s = m.group(1)
    s = s.rstrip(",;").strip()
    while len(s) >= 2 and s[0] in _QUOTES and s[-1] in _QUOTES:
        s = s[1:-1].strip()
    return re.sub(r"\s+", " ", s)


def _json_queries(text: str) -> list[str] | None:
    """Queries from a JSON list of strings or an object holding one, found anywhere in text."""
    candidates = [text.strip()]
    m = re.search(r"\[.*\]", text, re.S)
    if m:
        candidates.append(m.group(0))
    m = re.search(r"\{.*\}", text, re.S)
    if m:
        candidates.append(m.group(0))
    for cand in candidates:
        try:
            data = json.loads(cand)
        except (ValueError, TypeError):
            continue
        if isinstance(data, dict):
            lists = [v for v in data.values() if isinstance(v, list)]
            data = lists[0] if lists else None
        if isinstance(data, list):
            out: list[str] = []
            for item in data:
                if isinstance(item, str):
                    out.append(item)
                elif isinstance(item, dict):
                    val = next((v for v in item.values() if isinstance(v, str)), None)
                    if val is not None:
                        out.append(val)
            if out:
                return out
    return None


def _is_list_item(line: str) -> bool:
    return bool(_MARKER.match(line))


def parse_queries(text: str | None, n: int | None = None, *, max_chars: int = 300) -> list[str]:
    """Parse the queries out of an LLM completion.

    Args:
        text: raw completion text (may be None or empty).
        n: keep at most this many queries (None: no cap).
        max_chars: lines longer than this many characters are dropped as explanations.

    Returns:
        Cleaned, de-duplicated queries in output order (possibly empty; the caller decides
        the fallback).
    """
    if not text or (n is not None and n <= 0):
        return []
    body = _THINK.sub("", text)
    body = _FENCE.sub("", body)
    items = _json_queries(body)
    if items is None:
        lines = [ln for ln in body.splitlines() if ln.strip() and not _HEADING.match(ln)]
        listed = [ln for ln in lines if _is_list_item(ln)]
        if len(listed) >= 2 or (listed and len(lines) > 1 and len(listed) == len(lines) - 1):
            lines = listed
        else:
            lines = [
                ln
                for ln in lines
                if not ln.rstrip().endswith(":") and not _PREAMBLE.match(clean_query(ln))
            ]
        items = lines
    out: list[str] = []
    seen: set[str] = set()
    for item in items:
        q = clean_query(item)
        if not q or len(q) > max_chars or not re.search(r"\w", q):
            continue
        key = _normalise_key(q)
        if key in seen:
            continue
        seen.add(key)
        out.append(q)
        if n is not None and len(out) >= n:
            break
    return out

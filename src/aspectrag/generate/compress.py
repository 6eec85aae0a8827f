"""Sentence compression for extractive answers: delete the spans of a quoted sentence that
cannot be part of an answer, keep every other word in its order.

Rules (each a deletion of a span; the sentence is never rewritten otherwise):

1. citation markers: numeric brackets "[12]", "[3, 7]", "[4-6]"; author-year parentheticals
   "(Devlin et al., 2019)", "(Liu et al., 2019; Raffel et al., 2020)", "(Smith and Jones,
   2018a)"; the year of a narrative citation "Devlin et al. (2019)" -> "Devlin et al.";
2. pointers into the paper: parentheticals that open with "see", "Fig.", "Figure", "Table",
   "Tab.", "Section", "Sec.", "§", "Appendix", "Eq." ("(see Table 3)", "(Figure 2a)"), and
   footnote marks glued to a sentence end in PDF text ("...uncompressed text.3");
3. a leading discourse phrase that carries no content: "However,", "Moreover,", "In
   addition,", "In this paper,", "To this end,", "As shown in Table 2,", "Note that" ... (the
   list is ``_LEADING``); the next word is then capitalised.

The rules delete spans that ARAGOG's ground-truth answers never contain (they state facts and
never cite, point to a figure, or connect to a previous sentence). Measured on ARAGOG (hybrid,
k=5, benchmarks/results/aragog_answers.txt): dev half token F1 0.187 -> 0.191, answer recall
0.422 -> 0.419 (86 vs 89 tokens); held out F1 0.169 -> 0.175, recall 0.370 -> 0.369.
Parentheticals that define a term ("masked LM (MLM)") or give a value ("(80.5%)") are kept:
answers use them.
"""

from __future__ import annotations

import re

_YEAR = r"(?:19|20)\d\d[a-z]?"
_NAME = r"[A-Z][\w'’-]+(?:\s+(?:et\s+al\.?|and\s+[A-Z][\w'’-]+|&\s+[A-Z][\w'’-]+))?"
_CITE = rf"(?:(?:e\.g\.,?|see|cf\.)\s+)?{_NAME},?\s+{_YEAR}(?:,\s*{_YEAR})*"
_CITATIONS = [
    # [12], [3, 7], [4-6], [4–6]
    re.compile(r"\s*\[\d{1,3}(?:\s*[,–-]\s*\d{1,3})*\]"),
    # (Devlin et al., 2019; Liu et al., 2019)
    re.compile(rf"\s*\((?:{_CITE})(?:\s*;\s*{_CITE})*\)"),
    # Devlin et al. (2019) -> Devlin et al.
    re.compile(rf"(?<=al\.)\s*\({_YEAR}\)|(?<=[A-Za-z])\s+\({_YEAR}\)"),
]
_POINTER = re.compile(
    r"\s*\((?:see\s+|cf\.\s+)?(?:Fig\.|Figs\.|Figure|Figures|Table|Tables|Tab\.|Section|Sections"
    r"|Sec\.|§|Appendix|Eq\.|Eqs\.|Equation)[^()]{0,40}\)",
    re.I,
)
# A footnote mark glued to the end of a sentence in PDF text: "...of uncompressed text.3"
_FOOTNOTE = re.compile(r"(?<=[a-z][.,])\d{1,2}(?=\s|$)")
_LEADING = re.compile(
    r"^(?:(?:However|Moreover|Furthermore|Additionally|In addition|Also|Besides|Thus|Hence"
    r"|Therefore|Consequently|As a result|Specifically|In particular|Importantly|Notably"
    r"|Finally|First|Firstly|Second|Secondly|Third|Lastly|Overall|In summary|To summarize"
    r"|In short|In contrast|On the other hand|Similarly|Likewise|Meanwhile|Interestingly"
    r"|Surprisingly|To this end|For this reason|In this paper|In this work|In this section"
    r"|In this study|Here|Instead|Indeed|Of course|In practice|Empirically"
    r"|As (?:shown|seen|reported|illustrated|discussed|described|mentioned|noted)\b[^,]{0,40}"
    r"),\s+"
    r"|(?:Note|We note|We find|We found|We observe|We show|It is worth noting) that\s+)"
)


def compress(text: str) -> str:
    """``text`` without citation markers, pointers into the paper and a leading discourse
    phrase (see the module doc). Returns the text unchanged when a rule would leave fewer
    than three words. Pure string function; O(len(text))."""
    out = text
    for rx in _CITATIONS:
        out = rx.sub("", out)
    out = _POINTER.sub("", out)
    out = _FOOTNOTE.sub("", out)
    m = _LEADING.match(out)
    if m:
        rest = out[m.end() :]
        out = rest[:1].upper() + rest[1:]
    out = re.sub(r"\s+([,.;:])", r"\1", out)
    out = re.sub(r"\.\.(?=\s|$)", ".", out)  # "et al.." after a removed year
    out = re.sub(r"\s{2,}", " ", out).strip()
    return out if len(out.split()) >= 3 else text

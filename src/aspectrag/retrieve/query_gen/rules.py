"""Rule-based query decomposition and expansion: multi-query retrieval without an LLM.

Pieces (each optional, each with its own fusion weight):

* ``paragraphs``: a long question split at blank lines (or line breaks) -- one query per
  paragraph. Measured on the MRAG Wikipedia v1 stories (Besta et al. 2024), whose aspects are
  spread over paragraphs.
* ``sentences``: every sentence of a multi-sentence question.
* ``clauses``: coordinated clauses ("X and Y", "X; Y", "X, while Y") split apart, and
  enumerations ("effects of A, B and C on D"; "Were A and B ...?" with named A, B) expanded
  into one query per item with the rest of the sentence kept (query decomposition for
  multi-hop and comparison questions, e.g. HotpotQA, Yang et al. 2018). Only for questions
  of at most ``clause_max_sentences`` sentences: in long multi-sentence questions the
  sentences are the aspects, and splitting them at every "and" gave fragments that lowered
  MRAG recall (benchmarks/multiquery_mrag.py).
* ``keywords``: the question's content words only (stop words and punctuation removed).
* ``prf``: pseudo-relevance feedback, RM3 (Abdul-Jaleel et al., UMass at TREC 2004; relevance
  models, Lavrenko & Croft 2001): the top ``fb_docs`` hits of a feedback retriever (BM25)
  for the question give P(w|R) = sum_d P(w|d) * P(d|q), P(w|d) = tf(w,d) / |d|,
  P(d|q) = the hit's score normalised over the feedback set; the ``fb_terms`` most probable
  terms not in the question are appended to its keywords.

The default (:data:`DEFAULT_PIECES`: paragraphs + sentences + clauses + prf, no keywords) was
chosen by measurement with ``MultiQueryRetriever``'s default ``rrf_depth``: on MRAG Wikipedia
v1 (hybrid base, weighted score at k = aspects, mean over aspect counts) it reaches 0.83
versus 0.57 for the question alone and 0.78 for paragraphs only; on HotpotQA (hybrid) both
supporting paragraphs are in the top 5 for 72% of the questions versus 64.5%. Sentences add
recall on long questions, clauses and PRF on short multi-hop ones; the keyword-only query
changed little once the others were on. Figures and commands: benchmarks/multiquery_*.py.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Mapping, Sequence

from aspectrag.retrieve.base import Retriever
from aspectrag.retrieve.query_gen.base import SubQuery

log = logging.getLogger("aspectrag.multiquery")

PIECES = ("paragraphs", "sentences", "clauses", "keywords", "prf")
# Chosen by measurement (see the module docstring).
DEFAULT_PIECES: tuple[str, ...] = ("paragraphs", "sentences", "clauses", "prf")
DEFAULT_WEIGHTS: Mapping[str, float] = {
    "paragraphs": 1.0,
    "sentences": 1.0,
    "clauses": 1.0,
    "keywords": 1.0,
    "prf": 1.0,
}

STOPWORDS = frozenset(
    """a about above after again against all also am an and any are aren't as at be because been
    before being below between both but by can can't cannot could couldn't did didn't do does
    doesn't doing don't down during each either else ever few for from further had hadn't has
    hasn't have haven't having he he'd he'll he's her here here's hers herself him himself his
    how how's however i i'd i'll i'm i've if in into is isn't it it's its itself just let's
    may me might more most much must mustn't my myself neither no nor not now of off on once
    only or other ought our ours ourselves out over own per same shall shan't she she'd she'll
    she's should shouldn't so some such than that that's the their theirs them themselves then
    there there's these they they'd they'll they're they've this those though through thus to
    too under until up upon us very was wasn't we we'd we'll we're we've were weren't what
    what's when when's where where's whether which while who who's whom whose why why's will
    with within without won't would wouldn't yet you you'd you'll you're you've your yours
    yourself yourselves tell describe explain name give list find know please one ones like
    many several another among amongst across along via""".split()
)
_WORD = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*")
_SENT_END = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9])")
_ABBREV = re.compile(r"\b(?:[A-Z]|Mr|Mrs|Ms|Dr|Prof|St|Jr|Sr|vs|etc|e\.g|i\.e|No|Vol|Fig)\.$")
_CLAUSE_SPLIT = re.compile(
    r"\s*(?:;|,\s*(?:while|whereas|but|and)\s+|\s+(?:and|but|as well as|whereas|while)\s+)\s*",
    re.I,
)
_CAP = r"[A-Z][\w'’.\-]*"
_NAME = rf"{_CAP}(?:\s+(?:(?:of|the|de|van|von|&)\s+)*{_CAP})*"
# Two named entities coordinated: "Were Scott Derrickson and Ed Wood of the same nationality?"
_NAME_PAIR = re.compile(rf"\b({_NAME}),?\s+(?:and|or)\s+({_NAME})")
# Enumeration "A, B(,) and C" with short items (1-4 words each).
_ITEM = r"[\w'’\-]+(?:\s+[\w'’\-]+){0,3}"
_ENUM = re.compile(rf"((?:{_ITEM},\s+)+{_ITEM},?\s+(?:and|or)\s+{_ITEM})")


def words(text: str) -> list[str]:
    """Lower-cased word tokens of ``text``."""
    return [w.lower() for w in _WORD.findall(text)]


def content_words(text: str) -> list[str]:
    """Words of ``text`` that are not stop words, not numbers-only, longer than one character,
    in order, without repeats."""
    out: list[str] = []
    for w in words(text):
        w = w.replace("’", "'")
        if w in STOPWORDS or len(w) < 2 or w.isdigit() or w in out:
            continue
        out.append(w)
    return out


def split_paragraphs(text: str) -> list[str]:
    """Paragraphs: blocks separated by blank lines, or by line breaks when there is no blank
    line. Whitespace-normalised, empty ones dropped."""
    blocks = re.split(r"\n\s*\n", text.strip())
    if len(blocks) == 1:
        blocks = text.strip().split("\n")
    return [re.sub(r"\s+", " ", b).strip() for b in blocks if b.strip()]


def split_sentences(text: str) -> list[str]:
    """Sentences of one paragraph: split after ``.!?`` followed by a capital or digit, not
    after common abbreviations or initials."""
    parts = _SENT_END.split(re.sub(r"\s+", " ", text).strip())
    out: list[str] = []
    for p in parts:
        if out and _ABBREV.search(out[-1]):
            out[-1] = f"{out[-1]} {p}"
        else:
            out.append(p)
    return [s for s in (x.strip() for x in out) if s]


def _substitute(sentence: str, span: tuple[int, int], items: Sequence[str]) -> list[str]:
    head, tail = sentence[: span[0]], sentence[span[1] :]
    return [re.sub(r"\s+", " ", f"{head}{item}{tail}").strip() for item in items]


def split_clauses(sentence: str, min_words: int = 2) -> list[str]:
    """Sub-queries of one sentence: enumeration items substituted into the sentence, or the
    coordinated clauses, each with at least ``min_words`` content words. ``[]`` when the
    sentence does not split."""
    m = _NAME_PAIR.search(sentence, 1)  # not the sentence's first (capitalised) word
    if m:
        return _substitute(sentence, (m.start(1), m.end(2)), [m.group(1), m.group(2)])
    m = _ENUM.search(sentence)
    if m:
        span_text = m.group(1)
        parts = [p.strip() for p in re.split(r",\s+(?:and|or)\s+|,\s+|\s+(?:and|or)\s+", span_text)]
        middle = parts[1:-1]
        width = max((len(p.split()) for p in middle), default=0)
        if parts and middle and width <= 2:
            first_words = parts[0].split()
            last_words = parts[-1].split()
            first = " ".join(first_words[-width:])
            last = " ".join(last_words[:width])
            start = m.start(1) + len(parts[0]) - len(first)
            end = m.end(1) - (len(parts[-1]) - len(last))
            items = [first, *middle, last]
            return _substitute(sentence, (start, end), items)
    parts = [p for p in _CLAUSE_SPLIT.split(sentence) if p]
    parts = [p for p in parts if len(content_words(p)) >= min_words]
    return parts if len(parts) >= 2 else []


def rm3_terms(
    question: str, feedback_texts: Sequence[str], feedback_scores: Sequence[float], n_terms: int
) -> list[str]:
    """The ``n_terms`` most probable relevance-model terms not in ``question`` (RM3).

    Args:
        feedback_texts: texts of the top feedback hits.
        feedback_scores: their retrieval scores (any scale; normalised to sum 1 over the set).
    """
    qwords = set(content_words(question))
    total = sum(max(s, 0.0) for s in feedback_scores) or 1.0
    prob: Counter[str] = Counter()
    for text, score in zip(feedback_texts, feedback_scores, strict=True):
        toks = [w for w in words(text) if w not in STOPWORDS and len(w) > 2 and not w.isdigit()]
        if not toks:
            continue
        tf = Counter(toks)
        p_d = max(score, 0.0) / total
        for w, c in tf.items():
            prob[w] += p_d * c / len(toks)
    return [w for w, _ in prob.most_common() if w not in qwords][:n_terms]


class RuleBasedQueryGenerator:
    """Decomposes and expands a question with rules (no LLM); see the module docstring.

    Args:
        pieces: which pieces to produce, in this order (subset of :data:`PIECES`).
        weights: fusion weight per piece (default 1.0 each).
        feedback: retriever for the ``prf`` piece (normally BM25 over the same index);
            ``prf`` is skipped when None.
        fb_docs: feedback hits used by RM3.
        fb_terms: expansion terms added.
        min_words: a paragraph / sentence / clause needs this many content words.
        clause_max_sentences: ``clauses`` applies to questions of at most this many sentences.
        max_queries: cap on the number of queries produced (None: no cap).

    Raises:
        ValueError: an unknown piece name.
    """

    def __init__(
        self,
        pieces: Sequence[str] = DEFAULT_PIECES,
        *,
        weights: Mapping[str, float] | None = None,
        feedback: Retriever | None = None,
        fb_docs: int = 5,
        fb_terms: int = 10,
        min_words: int = 2,
        clause_max_sentences: int = 1,
        max_queries: int | None = 64,
    ) -> None:
        unknown = [p for p in pieces if p not in PIECES]
        if unknown:
            raise ValueError(f"unknown rule pieces {unknown}; choose from {', '.join(PIECES)}")
        self.pieces = tuple(pieces)
        self.weights = {**DEFAULT_WEIGHTS, **(weights or {})}
        self.feedback = feedback
        self.fb_docs = fb_docs
        self.fb_terms = fb_terms
        self.min_words = min_words
        self.clause_max_sentences = clause_max_sentences
        self.max_queries = max_queries
        self.name = "rules:" + "+".join(self.pieces)

    def _enough(self, text: str) -> bool:
        return len(content_words(text)) >= self.min_words

    def generate(self, question: str) -> list[SubQuery]:
        """Queries for ``question`` in piece order; the question itself (origin ``"question"``)
        when no piece applies (a short, simple question)."""
        out: list[SubQuery] = []
        paragraphs = split_paragraphs(question)
        sentences = [s for p in paragraphs for s in split_sentences(p)]

        def add(piece: str, texts: Sequence[str]) -> None:
            out.extend(SubQuery(t, self.weights[piece], piece) for t in texts if self._enough(t))

        for piece in self.pieces:
            if piece == "paragraphs" and len(paragraphs) > 1:
                add(piece, paragraphs)
            elif piece == "sentences" and len(sentences) > 1:
                add(piece, sentences)
            elif piece == "clauses" and len(sentences) <= self.clause_max_sentences:
                add(piece, [c for s in sentences for c in split_clauses(s, self.min_words)])
            elif piece == "keywords":
                kw = content_words(question)
                if kw and len(kw) < len(words(question)):
                    add(piece, [" ".join(kw)])
            elif piece == "prf":
                add(piece, self._prf(question))
        if self.max_queries is not None:
            out = out[: self.max_queries]
        return out or [SubQuery(question, 1.0, "question")]

    def _prf(self, question: str) -> list[str]:
        if self.feedback is None:
            log.debug("rules: prf piece skipped (no feedback retriever)")
            return []
        hits = self.feedback.retrieve(question, self.fb_docs)
        if not hits:
            return []
        terms = rm3_terms(
            question, [h.chunk.text for h in hits], [h.score for h in hits], self.fb_terms
        )
        if not terms:
            return []
        return [" ".join([*content_words(question), *terms])]

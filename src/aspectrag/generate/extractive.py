"""Extractive answerer: the evidence sentences of the retrieved chunks that best answer the
question, each cited. The default when no LLM is configured."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from aspectrag.embed.base import Embedder
from aspectrag.generate.base import AnswerStream
from aspectrag.generate.compress import compress as compress_sentence
from aspectrag.generate.sentences import split_sentences
from aspectrag.types import Answer, Citation, Hit

log = logging.getLogger("aspectrag.generate")

_ANNOUNCES = re.compile(r"(:|\bas follows[.:]?|\bthe following[^.]{0,40}[.:]?)[\"'”’)\]]*$", re.I)

_LABELLED = re.compile(r"^(?:[-*•]\s|\(?\w{1,3}[.)]\s|[\w&+#() -]{1,30}:\s)")

# Defaults: the answerer as measured before the concise mode (issue 15, item 6). The settings
# best on the ARAGOG development half (``benchmarks/aragog_tune.py``) are CONCISE: held-out token
# F1 0.169 -> 0.193 but answer recall 0.370 -> 0.282, so they are not the default (recall must
# not drop); pass them as ``ExtractiveGenerator(**CONCISE)``.
BUDGET_TOKENS: int | None = None
LEXICAL_WEIGHT = 0.0
REDUNDANCY_WEIGHT = 0.0
MAX_SENTENCES = 4
COMPRESS = False
CONCISE: dict[str, float | int] = {"budget_tokens": 60, "lexical_weight": 0.2,
                                   "redundancy_weight": 0.3, "max_sentences": 3}

EXTRACTIVE_HEADER = (
    "Extractive answer (no LLM configured): the retrieved sentences that best match the question."
)


@dataclass(frozen=True, slots=True)
class Evidence:
    """One candidate sentence: its text, the 1-based hit index it comes from, its position in
    the chunk, and its scores (cosine to the question, combined score)."""

    text: str
    n: int
    position: int
    cosine: float = 0.0
    score: float = 0.0


class ExtractiveGenerator:
    """Answers with the retrieved sentences that best match the question (no LLM).

    Method: every hit's chunk text is split into sentences (``sentences.split_sentences``:
    enumerations such as "(1) ..., (2) ..., (3) ..." and "...:" + list items stay whole);
    fragments shorter than ``min_words`` words or mostly non-alphabetic (figure and table
    debris from PDFs) are dropped. Sentences and the question are embedded with ``embedder``
    (the sentence alone: prefixing the chunk heading made short sentences under a heading
    that repeats the question outrank the answer); a sentence's score is its cosine
    similarity to the question plus a retrieval-rank prior ``rank_weight / rank`` of its hit.
    Sentences are taken best first, skipping near-duplicates (cosine > ``dedup_threshold``
    to one already taken), until ``max_sentences`` are taken or the score falls more than
    ``margin`` below the best one. A taken sentence that announces what follows (ends with
    ":", "as follows", "the following") gets the next sentences of its chunk appended, since
    the answer is usually there ("...two pre-training objectives...: No NSP: ... masked LM
    ..."). Sentences with cosine below ``min_cosine`` are never used. Cost: one ``embedder.encode`` call over all sentences of
    the hits (a few hundred sentences for k=10 chunks of 256 tokens).

    Planted text (what it can and cannot do): the answer only quotes sentences of the
    retrieved chunks, each cited to its source, so a reader can always see where a sentence
    came from; it never states anything that is not in the index. It cannot tell a true
    sentence from a false one: a document written to match the question (a sentence that
    restates it, followed by a false claim) is retrieved and quoted like any other. One guard
    keeps such a sentence from *being the whole answer*: when the best sentence echoes the
    question (cosine >= ``echo_cosine``; real answer sentences score 0.5-0.8 with MiniLM),
    the ``margin`` is measured from the best sentence of the *other* hits, and the echo's hit
    gives at most ``max_per_echo_chunk`` sentences, so the other retrieved evidence is shown
    next to it. An attacker who controls several retrieved chunks still fills the answer;
    use ``Answer.extras["evidence"]`` and the citations to judge the sources.

    Args:
        embedder: any ``Embedder``; its ``"dense"`` vectors must be L2-normalised.
        max_sentences: most evidence sentences in the answer.
        min_words: shortest fragment kept, in words.
        dedup_threshold: cosine above which a sentence counts as a near-duplicate.
        rank_weight: weight of the retrieval-rank prior (score += rank_weight / rank).
        margin: sentences scoring below ``best - margin`` are not used.
        min_cosine: sentences less similar than this to the question are never evidence.
        continuation_chars: most characters appended to a sentence that announces what
            follows (ends in ":", or "as follows", "the following").
        echo_cosine: cosine to the question from which the best sentence counts as an echo
            of it (planted or restating text; see above).
        max_per_echo_chunk: most sentences taken from the hit of such an echo while other
            hits have usable evidence.
        budget_tokens: most words (whitespace tokens) of evidence, continuations included;
            binds from the second sentence on (the best sentence is always kept, and after an
            echo the first sentence of another hit); None: no budget (the old behaviour).
        lexical_weight: weight of the share of the question's content words in a sentence
            (score += lexical_weight * overlap), so the answer-bearing sentence comes first.
        redundancy_weight: MMR (Carbonell & Goldstein 1998): the next sentence maximises
            score - redundancy_weight * (max cosine to the sentences taken); 0: score order.
        compress: delete citation markers, pointers into the paper ("(see Table 3)") and a
            leading discourse phrase from each quoted sentence (``compress.compress``); the
            budget counts the words left. Off by default: on the ARAGOG dev half it gives
            F1 +0.004 [+0.002, +0.006] but answer recall -0.002 [-0.005, -0.000] (held out:
            F1 +0.006, recall -0.001; benchmarks/results/aragog_answers.txt), and recall must
            not drop.

    Defaults: no budget, no lexical term, no MMR, 4 sentences (the answerer as measured before
    the concise mode). :data:`CONCISE` (budget 60, lexical 0.2, MMR 0.3, 3 sentences), chosen
    on the first half of ARAGOG's questions (benchmarks/aragog_tune.py), gives held-out token
    F1 0.169 -> 0.193 but answer recall 0.370 -> 0.282 (benchmarks/results/aragog_answers.txt),
    so it is an option, not the default.
    """

    name = "extractive"

    def __init__(
        self,
        embedder: Embedder,
        *,
        max_sentences: int = MAX_SENTENCES,
        min_words: int = 5,
        dedup_threshold: float = 0.9,
        rank_weight: float = 0.1,
        margin: float = 0.25,
        min_cosine: float = 0.15,
        continuation_chars: int = 400,
        echo_cosine: float = 0.9,
        max_per_echo_chunk: int = 2,
        budget_tokens: int | None = BUDGET_TOKENS,
        lexical_weight: float = LEXICAL_WEIGHT,
        redundancy_weight: float = REDUNDANCY_WEIGHT,
        compress: bool = COMPRESS,
    ) -> None:
        self.embedder = embedder
        self.max_sentences = max_sentences
        self.min_words = min_words
        self.dedup_threshold = dedup_threshold
        self.rank_weight = rank_weight
        self.margin = margin
        self.min_cosine = min_cosine
        self.continuation_chars = continuation_chars
        self.echo_cosine = echo_cosine
        self.max_per_echo_chunk = max_per_echo_chunk
        self.budget_tokens = budget_tokens
        self.lexical_weight = lexical_weight
        self.redundancy_weight = redundancy_weight
        self.compress = compress

    def candidates(self, hits: Sequence[Hit]) -> list[Evidence]:
        """All usable sentences of ``hits`` (unscored), in hit order; ``n`` is the hit index."""
        out: list[Evidence] = []
        seen: set[str] = set()
        for n, hit in enumerate(hits, start=1):
            sents = split_sentences(hit.chunk.text)
            for s in sents:
                key = re.sub(r"\W+", " ", s.text.lower()).strip()
                if key in seen or not _usable(s.text, self.min_words):
                    continue
                # Pieces cut by the chunk boundaries: a start mid-sentence, an end mid-sentence.
                if s.position == 0 and s.text[:1].islower():
                    continue
                if s.position == len(sents) - 1 and re.search(r"[a-z,;]$", s.text):
                    continue
                seen.add(key)
                out.append(Evidence(text=s.text, n=n, position=s.position))
        return out

    def select(self, question: str, hits: Sequence[Hit]) -> list[Evidence]:
        """The evidence sentences for ``question``, best first (see the class doc)."""
        cands = self.candidates(hits)
        if not cands:
            return []
        texts = [c.text for c in cands]
        q = np.asarray(self.embedder.encode([question], kind="query")["dense"][0], np.float32)
        emb = np.asarray(self.embedder.encode(texts, kind="document")["dense"], np.float32)
        cos = emb @ q
        prior = np.array([self.rank_weight / c.n for c in cands], dtype=np.float32)
        lex = np.array([_lexical_overlap(question, c.text) for c in cands], dtype=np.float32)
        score = cos + self.lexical_weight * lex + prior
        order = np.argsort(-score, kind="stable")
        best = float(score[order[0]])
        floor = best - self.margin
        echo_n = None  # hit of a sentence echoing the question (see the class doc)
        if cos[order[0]] >= self.echo_cosine:
            top_n = cands[order[0]].n
            others = [i for i in order if cands[i].n != top_n and cos[i] >= self.min_cosine]
            if others:
                echo_n = top_n
                floor = min(floor, float(score[others[0]]) - self.margin)
        pool = [int(i) for i in order if float(score[i]) >= floor and cos[i] >= self.min_cosine]
        taken: list[int] = []
        per_hit: dict[int, int] = {}
        covered: set[tuple[int, int]] = set()  # (n, position) already shown as a continuation
        out: list[Evidence] = []
        used_tokens = 0
        while pool and len(taken) < self.max_sentences:
            # MMR (Carbonell & Goldstein 1998): relevance less redundancy with what is taken.
            if taken and self.redundancy_weight > 0:
                red = np.max(emb[pool] @ emb[taken].T, axis=1)
                i = pool[int(np.argmax(score[pool] - self.redundancy_weight * red))]
            else:
                i = pool[0]
            pool.remove(i)
            c = cands[i]
            if (c.n, c.position) in covered:
                continue
            if c.n == echo_n and per_hit.get(c.n, 0) >= self.max_per_echo_chunk:
                continue
            if taken and float(np.max(emb[taken] @ emb[i])) > self.dedup_threshold:
                continue
            text, used = self._continue(c, hits[c.n - 1])
            if self.compress:
                text = compress_sentence(text)
            n_tokens = len(text.split())
            # The budget (words) binds from the second sentence on; the first sentence of
            # another hit after an echo is always kept, so the echo is never the whole answer.
            after_echo = echo_n is not None and all(e.n == echo_n for e in out) and c.n != echo_n
            if (self.budget_tokens is not None and out and not after_echo
                    and used_tokens + n_tokens > self.budget_tokens):
                continue
            taken.append(i)
            used_tokens += n_tokens
            per_hit[c.n] = per_hit.get(c.n, 0) + 1
            covered.update((c.n, p) for p in used)
            out.append(Evidence(text, c.n, c.position, float(cos[i]), float(score[i])))
        return out

    def _continue(self, ev: Evidence, hit: Hit) -> tuple[str, list[int]]:
        """A sentence that announces what follows ("...as BERT-base:", "...as follows.") is
        incomplete alone: append the next sentences of its chunk, up to ``continuation_chars``
        characters. Returns the text and the positions of the sentences appended."""
        if not _ANNOUNCES.search(ev.text):
            return ev.text, []
        sents = split_sentences(hit.chunk.text)
        text, used = ev.text, []
        for s in sents[ev.position + 1 :]:
            # After the first sentence, go on only while the items look alike ("Label: ...").
            if used and not _LABELLED.match(s.text):
                break
            if used and len(text) + len(s.text) > len(ev.text) + self.continuation_chars:
                break
            text = f"{text} {s.text}"
            used.append(s.position)
        return text, used

    def generate(self, question: str, hits: Sequence[Hit]) -> Answer:
        """Extractive answer: a header line saying so, then one evidence sentence per line,
        each followed by its citation ``[n]`` (n = 1-based hit index). ``citations`` lists
        only the hits used, in order of n; ``Citation.text`` is the evidence quoted from it.
        ``extras["evidence"]`` gives ``[{"text", "n", "score"}]`` best first;
        ``extras["supported"]`` is True when some evidence was found."""
        evidence = self.select(question, hits)
        if not evidence:
            body = "The retrieved passages contain no sentence that answers the question."
            return Answer(answer=f"{EXTRACTIVE_HEADER}\n{body}", mode="extractive", citations=[],
                          extras={"supported": False})
        lines = [f"- {e.text} [{e.n}]" for e in evidence]
        by_n: dict[int, list[str]] = {}
        for e in evidence:
            by_n.setdefault(e.n, []).append(e.text)
        citations = [
            Citation(n=n, chunk=hits[n - 1].chunk, text=" … ".join(by_n[n])) for n in sorted(by_n)
        ]
        return Answer(
            answer="\n".join([EXTRACTIVE_HEADER, *lines]),
            mode="extractive",
            citations=citations,
            extras={
                "evidence": [
                    {"text": e.text, "n": e.n, "score": round(e.score, 4)} for e in evidence
                ],
                "supported": True,
            },
        )

    def stream(self, question: str, hits: Sequence[Hit]) -> AnswerStream:
        """Streams the extractive answer line by line (it is computed at once)."""
        answer = self.generate(question, hits)

        def pieces() -> Iterator[str]:
            for i, line in enumerate(answer.answer.split("\n")):
                yield line if i == 0 else "\n" + line

        return AnswerStream(pieces(), finish=lambda text: answer)


_STOP = frozenset(
    """a an the of in on at to for from by with and or is are was were be been what which who
    whom how why when where does do did can could should would will this that these those it its
    as into about than their there they them we our you your paper""".split()
)


def _content_words(text: str) -> set[str]:
    """Lower-cased word stems (first 6 letters) of ``text`` without stop words."""
    return {w[:6] for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _STOP}


def _lexical_overlap(question: str, sentence: str) -> float:
    """Share (0..1) of the question's content words (6-letter prefixes) found in ``sentence``."""
    q = _content_words(question)
    return len(q & _content_words(sentence)) / len(q) if q else 0.0


def _usable(text: str, min_words: int) -> bool:
    """Drop short fragments and debris (figure labels, tables, reference lists)."""
    words = text.split()
    if len(words) < min_words:
        return False
    chars = [ch for ch in text if not ch.isspace()]
    alpha = sum(ch.isalpha() for ch in chars)
    return alpha >= 0.6 * len(chars)

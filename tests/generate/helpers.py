"""Test helpers for generate/: hits from plain text and a deterministic bag-of-words embedder."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence

import numpy as np

from aspectrag.types import Chunk, Hit


def make_hits(
    texts: Sequence[str], *, source: str = "doc.txt", heading: str | None = None
) -> list[Hit]:
    """One hit per text, ranked in order, with decreasing scores."""
    hits = []
    for i, t in enumerate(texts):
        c = Chunk(
            chunk_id=f"{source}#{i}",
            doc_id=source,
            source=source,
            title=f"Title {i}",
            index=i,
            text=t,
            start=0,
            end=len(t),
            heading=heading,
        )
        hits.append(Hit(chunk=c, score=1.0 - 0.1 * i, rank=i + 1))
    return hits


class BagOfWordsEmbedder:
    """Hashed bag of lower-cased words (stop words removed), L2-normalised: cosine = word overlap."""

    name = "bow"
    dim = 512
    max_tokens = 10_000
    STOP = frozenset(
        "a an the of to and or is are be by on in for with what which it this that".split()
    )

    def __init__(self) -> None:
        self.calls = 0

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def encode(
        self, texts: Sequence[str], *, kind: str = "document", show_progress: bool = False
    ) -> Mapping[str, np.ndarray]:
        self.calls += 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"\w+", t.lower()):
                if w not in self.STOP:
                    out[i, int(hashlib.md5(w.encode()).hexdigest(), 16) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return {"dense": out / np.maximum(norms, 1e-9)}

"""De-duplication of crawled pages: exact (SHA-256 of the normalised text) and near-duplicate
(MinHash over word 5-shingles with LSH banding, datasketch; Broder 1997 "On the resemblance and
containment of documents"; Leskovec, Rajaraman & Ullman, Mining of Massive Datasets ch. 3).

Normalised text: lower case, every run of non-word characters one space. The signatures of
every kept page live in the crawl state, so duplicates are found across crawls and against
what the index already holds from earlier crawls.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
from datasketch import MinHash, MinHashLSH

NUM_PERM = 128
SHINGLE = 5
SCHEME = "affine32"  # datasketch's hash family (fixed, so stored signatures stay comparable)
_NON_WORD = re.compile(r"\W+")


def normalise_text(text: str) -> str:
    return _NON_WORD.sub(" ", text.lower()).strip()


def content_hash(text: str) -> str:
    """SHA-256 hex digest (64 chars) of the normalised text."""
    return hashlib.sha256(normalise_text(text).encode("utf-8")).hexdigest()


def minhash(text: str) -> MinHash:
    """MinHash (128 permutations) of the word 5-shingles of the normalised text."""
    words = normalise_text(text).split()
    shingles = {" ".join(words[i:i + SHINGLE]) for i in range(max(1, len(words) - SHINGLE + 1))}
    m = MinHash(num_perm=NUM_PERM, scheme=SCHEME)
    m.update_batch([s.encode("utf-8") for s in shingles])
    return m


class Deduplicator:
    """Exact and near-duplicate lookup over the pages kept so far.

    Args:
        threshold: Jaccard similarity (estimated from the MinHash) at or above which a page is a
            near-duplicate; LSH banding is tuned for it by datasketch.
    """

    def __init__(self, threshold: float = 0.9) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"near-duplicate threshold must be in (0, 1], not {threshold}")
        self.threshold = threshold
        self.lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
        self.hashes: dict[str, str] = {}  # content hash -> source
        self.sigs: dict[str, MinHash] = {}  # source -> signature

    def add(self, source: str, chash: str, sig: MinHash) -> None:
        """Remember a kept page (replacing an earlier version of the same source)."""
        if source in self.sigs:
            self.lsh.remove(source)
            self.hashes = {h: s for h, s in self.hashes.items() if s != source}
        self.hashes.setdefault(chash, source)
        self.sigs[source] = sig
        self.lsh.insert(source, sig)

    def duplicate_of(self, source: str, chash: str, sig: MinHash) -> tuple[str, str] | None:
        """``(kind, other_source)`` with kind ``"exact"`` or ``"near"`` when the page duplicates a
        kept page other than ``source`` itself, else None."""
        other = self.hashes.get(chash)
        if other is not None and other != source:
            return "exact", other
        best: tuple[float, str] | None = None
        for cand in self.lsh.query(sig):
            if cand == source:
                continue
            j = sig.jaccard(self.sigs[cand])
            if j >= self.threshold and (best is None or j > best[0]):
                best = (j, cand)
        if best is not None:
            return f"near:{best[0]:.2f}", best[1]
        return None

    @staticmethod
    def to_bytes(sig: MinHash) -> bytes:
        """The signature as bytes: the ``SCHEME`` hash values, uint64 little-endian."""
        return sig.hashvalues.astype("<u8").tobytes()

    @staticmethod
    def from_bytes(raw: bytes) -> MinHash:
        return MinHash(num_perm=NUM_PERM, scheme=SCHEME,
                       hashvalues=np.frombuffer(raw, dtype="<u8").astype(np.uint64))

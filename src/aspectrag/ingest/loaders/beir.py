"""BEIR corpus loader: ``corpus.jsonl`` with one JSON object per line ``{"_id", "title", "text"}``
(Thakur et al. 2021, "BEIR: A Heterogeneous Benchmark for Zero-shot Evaluation of Information
Retrieval Models", NeurIPS Datasets and Benchmarks; corpus format of section 3).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

from aspectrag.errors import LoadError
from aspectrag.ingest.loaders.common import check_not_binary, fingerprint, resolve_path
from aspectrag.types import Document

log = logging.getLogger("aspectrag.ingest")


def is_beir_corpus(source: str) -> bool:
    """True for a file named ``corpus.jsonl`` (or ``*.corpus.jsonl`` / ``*_corpus.jsonl``)."""
    name = Path(source).name.lower()
    return name == "corpus.jsonl" or name.endswith((".corpus.jsonl", "_corpus.jsonl"))


class BeirCorpusLoader:
    """One ``Document`` per line of a BEIR ``corpus.jsonl``.

    ``doc_id`` is the line's ``_id`` (so qrels match), ``title`` its ``title``, ``text`` its
    ``text`` (the title when the text is empty), ``source`` is ``"<abs path>#<_id>"`` and
    ``fingerprint`` the SHA-256 of the line's bytes; other fields go to ``metadata``. The file is
    streamed (constant memory). A document with neither title nor text (real BEIR corpora have
    some) is yielded with empty ``text`` and ``metadata["empty"] = True``: the ingest skips it
    ("empty document", not a failure), and ``aspectrag eval beir`` reports it.

    Raises (from ``load``):
        LoadError: missing or empty file, binary content. Malformed lines (bad JSON or UTF-8, no
            ``_id``, an ``_id`` seen before) are skipped with a warning
            each and, once all good lines have been yielded, reported in one ``LoadError``
            ("N malformed lines skipped (first: line L: reason)").
    """

    def can_load(self, source: str) -> bool:
        return is_beir_corpus(source)

    def load(self, source: str) -> Iterator[Document]:
        path = resolve_path(source)
        try:
            fh = path.open("rb")
        except FileNotFoundError:
            raise LoadError(source, "no such file") from None
        except IsADirectoryError:
            raise LoadError(source, "is a folder, not a file") from None
        except OSError as exc:
            raise LoadError(source, f"cannot be read ({exc.strerror or exc})") from None
        bad: list[tuple[int, str]] = []
        seen: set[str] = set()
        count = 0
        with fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                if lineno == 1:
                    check_not_binary(str(path), line)
                try:
                    doc = self._parse_line(path, line, seen)
                except ValueError as exc:
                    log.warning("%s: line %d skipped: %s", path, lineno, exc)
                    bad.append((lineno, str(exc)))
                    continue
                count += 1
                yield doc
        if bad:
            lineno, reason = bad[0]
            raise LoadError(
                str(path),
                f"{len(bad)} malformed line(s) skipped (first: line {lineno}: {reason}); "
                f"{count} documents loaded",
            )
        if count == 0:
            raise LoadError(str(path), "empty corpus (no documents)")

    @staticmethod
    def _parse_line(path: Path, line: bytes, seen: set[str]) -> Document:
        try:
            obj = json.loads(line)
        except UnicodeDecodeError:
            raise ValueError("not valid UTF-8") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"invalid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise ValueError("not a JSON object")
        doc_id = obj.get("_id")
        if doc_id is None or str(doc_id).strip() == "":
            raise ValueError('no "_id" field')
        doc_id = str(doc_id)
        if doc_id in seen:
            raise ValueError(f'duplicate "_id" {doc_id!r}')
        title = str(obj.get("title") or "").strip()
        text = str(obj.get("text") or "")
        empty = not text.strip() and not title
        if not text.strip():
            text = title
        seen.add(doc_id)
        extra = {k: v for k, v in obj.items() if k not in ("_id", "title", "text")}
        if empty:
            extra["empty"] = True
        return Document(
            doc_id=doc_id,
            source=f"{path}#{doc_id}",
            title=title,
            text=text,
            fingerprint=fingerprint(line.rstrip(b"\r\n")),
            metadata={"format": "beir", **extra},
        )

"""Loaders: turn files, folders and URLs into ``Document``s.

Entry points:
    ``discover(paths, glob)`` expands folders into the files a loader can read;
    ``load(source)`` yields the documents of one file or URL, using the first loader whose
    ``can_load`` accepts it (``default_loaders()``: BEIR corpus.jsonl, http(s) URL, HTML, PDF,
    docx / pptx / xlsx / csv, epub, text/Markdown).
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Iterator, Sequence
from fnmatch import fnmatch
from pathlib import Path

from aspectrag.errors import LoadError
from aspectrag.ingest.base import Loader
from aspectrag.ingest.loaders.beir import BeirCorpusLoader
from aspectrag.ingest.loaders.common import resolve_path
from aspectrag.ingest.loaders.epub import EpubLoader
from aspectrag.ingest.loaders.html import HtmlLoader
from aspectrag.ingest.loaders.office import OfficeLoader
from aspectrag.ingest.loaders.pdf import PdfLoader
from aspectrag.ingest.loaders.text import TextLoader
from aspectrag.ingest.loaders.url import UrlLoader, is_url
from aspectrag.types import Document

__all__ = [
    "BeirCorpusLoader",
    "EpubLoader",
    "HtmlLoader",
    "OfficeLoader",
    "PdfLoader",
    "TextLoader",
    "UrlLoader",
    "default_loaders",
    "discover",
    "get_loader",
    "is_url",
    "load",
]

log = logging.getLogger("aspectrag.ingest")

SUPPORTED = (".txt .md .html .htm .pdf .docx .pptx .xlsx .csv .epub, corpus.jsonl (BEIR), "
             "http(s) URLs")


def default_loaders(
    *, url_timeout: float = 20.0, url_max_redirects: int = 5, url_max_bytes: int = 50 * 1024 * 1024
) -> list[Loader]:
    """The built-in loaders, in the order they are tried.

    Args:
        url_timeout: seconds allowed per URL request (whole body included).
        url_max_redirects: redirects followed per URL.
        url_max_bytes: largest URL body accepted, in bytes.
    """
    return [
        BeirCorpusLoader(),
        UrlLoader(timeout=url_timeout, max_redirects=url_max_redirects, max_bytes=url_max_bytes),
        HtmlLoader(),
        PdfLoader(),
        OfficeLoader(),
        EpubLoader(),
        TextLoader(),
    ]


_DEFAULT_LOADERS: list[Loader] = default_loaders()


def get_loader(source: str, loaders: Sequence[Loader] | None = None) -> Loader:
    """The first loader of ``loaders`` (default: ``default_loaders()``) that accepts ``source``.

    Raises:
        LoadError: no such file, a folder, or a type no loader handles.
    """
    candidates = _DEFAULT_LOADERS if loaders is None else loaders
    if not is_url(source):
        path = _resolve(source)
        if path.is_dir():
            raise LoadError(source, "is a folder; expand it with discover() first")
        if not path.exists():
            raise LoadError(source, "no such file")
    for loader in candidates:
        if loader.can_load(source):
            return loader
    kind = Path(source).suffix or "files without a suffix"
    raise LoadError(source, f"unsupported file type {kind!r} (supported: {SUPPORTED})")


def load(
    source: str, loaders: Sequence[Loader] | None = None, *, allow_hosts: Sequence[str] = ()
) -> Iterator[Document]:
    """Documents of one file or URL (one per line for a BEIR corpus.jsonl).

    This is a generator: every error, including an unsupported type, is raised while iterating.
    ``allow_hosts`` (hosts / CIDRs) is passed to the URL loader's SSRF guard: without it,
    loopback, private, link-local and metadata addresses are refused.

    Raises:
        LoadError: naming ``source`` and the reason (missing, empty, binary, undecodable, corrupt,
            unsupported type, HTTP error, too large...).
    """
    loader = get_loader(source, loaders)
    if allow_hosts and isinstance(loader, UrlLoader):
        loader = copy.copy(loader)
        loader.allow_hosts = tuple(loader.allow_hosts) + tuple(allow_hosts)
    yield from loader.load(source)


def _resolve(source: str) -> Path:
    """``resolve_path`` with a symlink loop or an unreadable path as a ``LoadError``."""
    try:
        path = resolve_path(source)
        path.is_dir()  # stat now: ELOOP / EACCES surface here, not inside a loader
        return path
    except RuntimeError:  # Path.resolve on Python < 3.13: "Symlink loop from ..."
        raise LoadError(source, "symlink loop (the link points back at itself); fix or "
                        "remove the link") from None
    except OSError as exc:
        raise LoadError(source, f"cannot be read ({exc.strerror or exc})") from None


def _matches(rel: str, name: str, pattern: str) -> bool:
    bare = pattern[3:] if pattern.startswith("**/") else pattern
    return fnmatch(rel, pattern) or fnmatch(rel, bare) or fnmatch(name, bare)


def discover(
    paths: Sequence[str],
    glob: str | None = None,
    loaders: Sequence[Loader] | None = None,
    *,
    skipped_types: dict[str, int] | None = None,
) -> list[str]:
    """Expand ``paths`` into the sources to load.

    URLs are kept as given. Files named explicitly are kept (resolved to absolute paths) even when
    missing, of an unsupported type or a symlink loop, so that ``load`` reports them. Folders are walked
    recursively in sorted order, skipping hidden files and folders (names starting with "."),
    keeping files that match ``glob`` (``fnmatch`` on the file name or the path relative to the
    folder, e.g. ``"*.pdf"`` or ``"papers/*.pdf"``) and that some loader can read; others are
    skipped, counted by lower-case extension (``"(none)"`` for files without one) into
    ``skipped_types`` when given. Duplicates are dropped, first occurrence kept.

    Returns:
        Absolute file paths and URLs, in order.
    """
    candidates = [
        loader
        for loader in (_DEFAULT_LOADERS if loaders is None else loaders)
        if not isinstance(loader, UrlLoader)
    ]
    out: list[str] = []
    seen: set[str] = set()

    def add(source: str) -> None:
        if source not in seen:
            seen.add(source)
            out.append(source)

    for given in paths:
        if is_url(given):
            add(given)
            continue
        try:
            root = _resolve(given)
        except LoadError:  # kept as given: load() reports it on one line
            add(os.path.abspath(os.path.expanduser(given)))
            continue
        if not root.is_dir():
            add(str(root))
            continue
        found: list[str] = []
        skipped = 0
        for folder, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in files:
                if name.startswith("."):
                    continue
                full = os.path.join(folder, name)
                if glob and not _matches(os.path.relpath(full, root), name, glob):
                    continue
                if any(loader.can_load(full) for loader in candidates):
                    found.append(full)
                else:
                    skipped += 1
                    if skipped_types is not None:
                        ext = Path(name).suffix.lower() or "(none)"
                        skipped_types[ext] = skipped_types.get(ext, 0) + 1
        if skipped:
            log.debug("%s: %d files of unsupported types skipped", root, skipped)
        for full in sorted(found):
            add(full)
    return out

"""What the writer thread does with each job kind: ``files`` (uploaded files), ``text`` (a JSON
text document), ``url`` (a web page) and ``remove`` (delete a source). Every write to the index
goes through here, one job at a time."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aspectrag.service.state import ServiceState

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str, default: str = "document") -> str:
    """A file name without folders or odd characters (``../a b.txt`` -> ``a_b.txt``)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = _UNSAFE.sub("_", base).strip("._") or default
    return base[:120]


def uploads_dir(state: ServiceState) -> Path:
    """The folder whose files are the sources of uploaded and text documents."""
    return state.state_dir / "uploads"


def make_handler(state: ServiceState) -> Callable[..., dict[str, Any]]:
    """The job handler for ``JobRunner``: runs one job against ``state.engine``."""
    engine = state.engine

    def handle(kind: str, payload: dict[str, Any],
               report: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        t0 = time.perf_counter()
        if kind == "remove":
            return {"removed": engine.remove(payload["source"])}
        if kind == "crawl":
            report({"documents": None, "chunks_done": 0, "chunks_total": None,
                    "chunks_per_second": 0.0, "phase": "crawling"})
            result = engine.crawl(payload.pop("crawl"), allow_hosts=state.config.url_allow,
                                  **payload)
            report({"documents": len(result["indexed"]), "chunks_done": result["chunks"],
                    "chunks_total": result["chunks"], "chunks_per_second": 0.0, "phase": "done",
                    "final": True})
            return result
        dest = uploads_dir(state)
        dest.mkdir(parents=True, exist_ok=True)
        if kind == "files":
            incoming = Path(payload["incoming"])
            sources = []
            for name in payload["files"]:
                target = dest / name
                shutil.move(str(incoming / name), target)  # same name: replaces the old version
                sources.append(str(target.resolve()))
        elif kind == "text":
            target = dest / "text" / f"{safe_name(payload['source'])}.md"
            target.parent.mkdir(parents=True, exist_ok=True)
            title = payload.get("title") or ""
            target.write_text((f"# {title}\n\n" if title else "") + payload["text"])
            sources = [str(target.resolve())]
        elif kind == "url":
            sources = [payload["url"]]
        else:
            raise ValueError(f"unknown job kind {kind!r}")
        documents = len(sources)
        progress: dict[str, Any] = {"documents": documents, "chunks_done": 0, "chunks_total": None,
                                    "chunks_per_second": 0.0, "phase": "ingesting"}
        report(dict(progress))

        def on_progress(done: int, total: int) -> None:
            el = time.perf_counter() - t0
            progress.update(chunks_done=done, chunks_total=total,
                            chunks_per_second=done / el if el > 0 else 0.0, phase="embedding")
            report(dict(progress))

        result = engine.ingest(sources, allow_hosts=state.config.url_allow, on_progress=on_progress)
        progress.update(chunks_done=result["chunks"], chunks_total=result["chunks"],
                        chunks_per_second=result["chunks_per_second"], phase="done", final=True)
        progress.pop("final")
        report({**progress, "final": True})
        result["documents"] = documents
        result["sources"] = sources
        if result["failed"] and not (result["added"] or result["updated"] or result["unchanged"]):
            reasons = "; ".join(f"{f['source']}: {f['reason']}" for f in result["failed"])
            raise _AllFailed(f"nothing could be ingested: {reasons}", result)
        return result

    return handle


class _AllFailed(ValueError):
    def __init__(self, msg: str, result: dict[str, Any]) -> None:
        super().__init__(msg)
        self.result = result

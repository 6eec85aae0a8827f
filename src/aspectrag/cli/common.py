"""What every ``aspectrag`` command module shares: consoles, the error line, common options,
opening an index, and the process-wide set-up done once at the command-line edge.

Command modules (``cli/main.py``, ``cli/rerank.py``, ``cli/heads.py``, ``cli/train.py``,
``cli/eval_mrag.py``) import from here, never from each other's command modules; ``cli/main.py``
registers all their commands on the ``aspectrag`` app.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from aspectrag.errors import AspectragError

console = Console(stderr=True)
out = Console(soft_wrap=True)

DEFAULT_INDEX = Path(".aspectrag")  # overridden by --index / ASPECTRAG_INDEX
IndexOpt = Annotated[Path, typer.Option("--index", envvar="ASPECTRAG_INDEX",
                                        help="Index folder.", show_default=True)]
RetrieverOpt = Annotated[str, typer.Option("--retriever", "-r",
                                           help="bm25 | dense | hybrid | multiquery | multihead ...")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
AdapterOpt = Annotated[Path | None, typer.Option(
    "--embedder-adapter", help="LoRA adapter folder (aspectrag train embedder) applied to the "
    "embedder; an index built with it must be searched with it.")]
RerankOpt = Annotated[str | None, typer.Option(
    "--rerank", help="Second stage: late-interaction | cross-encoder | bi-encoder.")]
RerankDepthOpt = Annotated[int, typer.Option("--rerank-depth", help="First-stage candidates reranked.")]
RerankModelOpt = Annotated[Path | None, typer.Option(
    "--rerank-model", help="Cross-encoder model folder (sequence classification).")]


def fail(msg: str, code: int = 2) -> None:
    """Print one clear error line and exit with ``code``."""
    # soft_wrap: never break the line inside a path or message, whatever the terminal width
    console.print(f"[bold red]error:[/] {msg}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def open_index(path: Path, adapter: Path | None = None):  # type: ignore[no-untyped-def]
    """The index at ``path``; with ``adapter``, its embedder is the base model + LoRA adapter."""
    from aspectrag.index import Index

    if adapter is None:
        return Index(path)
    from aspectrag.embed.factory import build_embedder

    try:
        return Index(path, embedder=build_embedder(adapter=str(adapter)))
    except AspectragError as e:
        fail(str(e))


def edge_setup() -> None:
    """Process-wide settings applied once, at the command-line edge, before a command loads
    models: the torch / BLAS thread split (:func:`aspectrag.config.setup_threads`). Model
    loaders never change them."""
    from aspectrag.config import setup_threads

    setup_threads()

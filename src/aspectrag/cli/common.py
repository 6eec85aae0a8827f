"""What every ``aspectrag`` command module shares: consoles, the error line, common options,
opening an index, and the process-wide set-up done once at the command-line edge.

Command modules (``cli/main.py``, ``cli/rerank.py``, ``cli/heads.py``, ``cli/train.py``,
``cli/eval_mrag.py``) import from here, never from each other's command modules; ``cli/main.py``
registers all their commands on the ``aspectrag`` app.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from aspectrag.errors import AspectragError
from aspectrag.settings import IndexSettings

console = Console(stderr=True)
out = Console(soft_wrap=True)

def settings():  # type: ignore[no-untyped-def]
    """The settings (``aspectrag.settings.get_settings``); a bad value ends with one error line."""
    from aspectrag.settings import get_settings

    try:
        return get_settings()
    except AspectragError as e:
        fail(str(e))


def _index_default(ctx: typer.Context, param: typer.CallbackParam, value: str) -> str:
    """``--index`` when given, else the ``index.location`` setting (env > config file > default):
    the settings' precedence, not typer's envvar."""
    source = ctx.get_parameter_source(param.name or "index")
    if source is not None and source.name == "DEFAULT":  # typer vendors click: compare names
        return str(settings().index.location)
    return value


DEFAULT_INDEX = str(IndexSettings().location)  # --index's callback resolves the setting
IndexOpt = Annotated[str, typer.Option(
    "--index", callback=_index_default, show_default=False,
    help="Index folder or scheme://... of a store backend (default: $ASPECTRAG_INDEX, the "
         "config file's [index] location, or ./.aspectrag).")]
NoWaitOpt = Annotated[bool, typer.Option(
    "--no-wait", help="Fail at once if another process is writing the index (default: wait).")]
RetrieverOpt = Annotated[str, typer.Option("--retriever", "-r",
                                           help="bm25 | dense | hybrid | multiquery | multihead ...")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
AdapterOpt = Annotated[Path | None, typer.Option(
    "--embedder-adapter", help="LoRA adapter folder (aspectrag train embedder) applied to the "
    "embedder; an index built with it must be searched with it (default: "
    "$ASPECTRAG_EMBEDDER_ADAPTER / the config file's [embedder] adapter).")]
RuntimeOpt = Annotated[str | None, typer.Option(
    "--runtime", help="Embedder runtime of a new index: torch | onnx-int8 | onnx-fp32 | auto "
    "(default: the embedder.runtime setting, $ASPECTRAG_EMBEDDER_RUNTIME, else torch). An "
    "existing index is always searched with the runtime it was built with; naming another "
    "one is refused.")]
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


def path_or_none(value: str | None) -> Path | None:
    return Path(value) if value else None


def open_index(path: str | Path, adapter: Path | None = None, *,  # type: ignore[no-untyped-def]
               must_exist: bool = False, for_queries: bool = False):
    """The index at ``path``; with ``adapter``, its embedder is the base model + LoRA adapter.
    ``must_exist`` (read commands): fail with one line when there is no index at ``path``
    instead of creating an empty one. ``for_queries`` (search, ask): see ``Index``."""
    from aspectrag.index import Index
    from aspectrag.validate import require_index

    if must_exist:
        try:
            require_index(path)
        except AspectragError as e:
            fail(str(e))
    adapter = adapter or path_or_none(settings().embedder.adapter)
    idx = Index(path, for_queries=for_queries)
    if adapter is None:
        return idx
    try:
        factory = adapter_embedder_factory(idx.store, adapter)
        return Index(path, store=idx.store, embedder=factory(), embedder_factory=factory)
    except AspectragError as e:
        fail(str(e))


def prepare_twin(idx) -> None:  # type: ignore[no-untyped-def]
    """After an ingest into a torch-built index: export the fp32 ONNX query twin once per
    model (``embed.factory.prepare_query_twin``), so that later ``search`` / ``ask`` processes
    start without torch. A failure only loses that speed-up: it is reported in one line."""
    from aspectrag.embed.factory import prepare_query_twin
    from aspectrag.multihead.layout import META_KEY

    try:
        prepare_query_twin(idx.store.get_meta("embedder"),
                           heads=idx.store.get_meta(META_KEY) is not None)
    except Exception as e:  # the ingest itself succeeded; searches just keep using torch
        console.print(f"[yellow]note[/] the torch-free query path is not available: {e}",
                      highlight=False)


def adapter_embedder_factory(store, adapter: Path):  # type: ignore[no-untyped-def]
    """A picklable factory of the embedder with LoRA ``adapter`` for the index in ``store``:
    the runtime the index recorded (``build_embedder(recorded=...)``), else the setting."""
    from aspectrag.embed.factory import build_embedder

    return functools.partial(build_embedder, adapter=str(adapter),
                             recorded=store.get_meta("embedder"))


def edge_setup(runtime: str | None = None) -> None:
    """Process-wide settings applied once, at the command-line edge, before a command loads
    models: ``--runtime`` mapped onto the ``embedder.runtime`` setting (one error line for an
    unknown name), the runtime / BLAS thread split (:func:`aspectrag.config.setup_threads`),
    and no library noise in the default output (:func:`quiet_libraries`). Model loaders never
    change them."""
    from aspectrag.config import setup_threads

    if runtime is not None:
        from aspectrag.embed.factory import RUNTIMES
        from aspectrag.settings import use_flag

        if runtime not in RUNTIMES:
            fail(f"--runtime {runtime}: unknown runtime; use one of {', '.join(RUNTIMES)}")
        use_flag("ASPECTRAG_EMBEDDER_RUNTIME", runtime)
    setup_threads()
    quiet_libraries()


def quiet_libraries() -> None:
    """No Hugging Face loading bars or warnings, and no bm25s DEBUG lines. Called by the CLI
    edge and by every server process.

    Imports neither torch nor transformers (the query path of an ONNX index needs neither):
    when transformers is not loaded yet, its verbosity and the hub's progress bars are set
    through the variables they read at import (``TRANSFORMERS_VERBOSITY``,
    ``HF_HUB_DISABLE_PROGRESS_BARS``; a value the user set is kept). bm25s sets its logger to
    DEBUG when it is imported, so a level set here would be undone: a filter stays."""
    import logging
    import sys

    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # no "Loading weights" bars in the default output
        hf_logging.set_verbosity_error()
    else:
        from aspectrag.settings import export_to_libraries

        quiet = {"TRANSFORMERS_VERBOSITY": "error", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
        export_to_libraries(quiet, keep_user=frozenset(quiet))
    bm25s_log = logging.getLogger("bm25s")
    if not any(isinstance(f, _BelowWarning) for f in bm25s_log.filters):
        bm25s_log.addFilter(_BelowWarning())


class _BelowWarning:
    """A logging filter that drops records below WARNING."""

    def filter(self, record: object) -> bool:
        import logging

        return getattr(record, "levelno", logging.WARNING) >= logging.WARNING

"""``aspectrag rerank cache``: precompute late-interaction token vectors of an index."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from aspectrag.cli.common import (
    DEFAULT_INDEX,
    AdapterOpt,
    IndexOpt,
    console,
    edge_setup,
    fail,
    open_index,
)
from aspectrag.errors import AspectragError

rerank_app = typer.Typer(no_args_is_help=True, help="Second-stage reranking utilities.")
"""``aspectrag rerank ...`` (registered by ``cli/main.py``)."""


@rerank_app.command("cache")
def cache_cmd(
    index: IndexOpt = DEFAULT_INDEX,
    embedder_adapter: AdapterOpt = None,
    skip_punctuation: Annotated[
        bool, typer.Option(help="Drop punctuation token vectors (ColBERT).")
    ] = False,
) -> None:
    """Store every chunk's token vectors in <index>/token_vectors.sqlite, so that
    ``--rerank late-interaction`` reads them instead of running the model on the candidates.
    Only chunks that are new or changed since the last run are computed."""
    edge_setup()
    idx = open_index(index, embedder_adapter, must_exist=True)
    build_token_cache(idx, Path(index), skip_punctuation=skip_punctuation)


def build_token_cache(idx, index: Path, *, skip_punctuation: bool = False) -> None:  # type: ignore[no-untyped-def]
    """Fill ``<index>/token_vectors.sqlite`` with the token vectors of the chunks that are not
    (validly) cached yet and print a one-line summary; exits with code 2 on an error."""
    from aspectrag.embed.base import TransformerEmbedder
    from aspectrag.rerank.cache import CACHE_FILE, TokenVectorCache
    from aspectrag.rerank.late_interaction import LateInteractionReranker, fill_cache

    emb = idx.embedder
    if not isinstance(emb, TransformerEmbedder):
        fail(f"late interaction needs a Hugging Face embedder; the index uses {emb.name!r}")
    try:
        from aspectrag.ingest.pipeline import check_embedder

        check_embedder(idx.store, emb)
        reranker = LateInteractionReranker(emb, skip_punctuation=skip_punctuation)
        path = idx.store.side_path(CACHE_FILE)  # None: a store without local side files
        if path is None:
            fail(f"index {index}: this store keeps no local files; no token cache")
        reranker.cache = TokenVectorCache(path, emb.name, emb.dim, reranker.cache_config)
        t0 = time.perf_counter()
        n = fill_cache(reranker, idx.store.iter_chunks(), show_progress=sys.stderr.isatty())
    except AspectragError as e:
        fail(str(e))
    size = path.stat().st_size / 2**20
    console.print(
        f"{n} chunks encoded in {time.perf_counter() - t0:.1f} s; cache {path}: "
        f"{len(reranker.cache)} chunks, {size:.0f} MiB",
        highlight=False,
    )

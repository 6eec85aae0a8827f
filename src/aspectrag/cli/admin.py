"""``aspectrag check`` and ``aspectrag repair``: damage detection and repair of an index.

``check`` opens the index read-only (it writes nothing) and reports: the database integrity
(``PRAGMA integrity_check``), the derived indexes against the store, the declared vector
spaces against the stored vectors, and the embedder fingerprint (the embedder the index would
be searched with must have the recorded name and give the declared spaces). Exit code 0 when
sound, 1 when something is wrong.

``repair`` rebuilds what can be rebuilt (derived indexes, SQL indexes, orphan rows, the
multi-head statistics) under the writer lock and says what cannot (damaged table pages,
missing vectors: re-ingest). Exit code 1 when something could not be repaired.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from aspectrag.cli.common import (
    DEFAULT_INDEX,
    AdapterOpt,
    IndexOpt,
    JsonOpt,
    adapter_embedder_factory,
    console,
    fail,
    out,
)
from aspectrag.errors import AspectragError


def _open(index: str, adapter: Path | None, *, readonly: bool):  # type: ignore[no-untyped-def]
    from aspectrag.index import Index
    from aspectrag.store.factory import is_local

    if is_local(index) and not (Path(index) / "index.sqlite").is_file():
        fail(f"{index}: no index here (no index.sqlite); pass --index with an index folder")
    idx = Index(index, readonly=readonly)
    if adapter is None:
        return idx
    try:
        emb = adapter_embedder_factory(idx.store, adapter)()
    except AspectragError as e:
        fail(str(e))
    return Index(index, embedder=emb, store=idx.store, readonly=readonly)


def embedder_problems(idx) -> list[str]:  # type: ignore[no-untyped-def]
    """The embedder fingerprint check: the index's embedder (as it would be loaded for a
    search) has the recorded name and gives exactly the declared vector spaces."""
    from aspectrag.store.base import specs_of_vectors

    store = idx.store
    recorded = store.get_meta("embedder")
    if recorded is None:
        return []
    try:
        emb = idx.embedder
        if emb.name != recorded:
            return [f"embedder: the index was built with {recorded!r} but {emb.name!r} would be "
                    "used; pass --embedder-adapter as when it was built"]
        given = {s.name: s.dim for s in specs_of_vectors(emb.encode(["check"], kind="document"))}
    except AspectragError as e:
        return [f"embedder {recorded!r} cannot be loaded: {e}"]
    declared = {s.name: s.dim for s in store.spaces()}
    if declared and given != declared:
        return [f"embedder {recorded!r} gives spaces {given} but the index declares {declared}; "
                "cannot be repaired: re-ingest into a new --index folder"]
    return []


def check(
    index: IndexOpt = DEFAULT_INDEX,
    embedder_adapter: AdapterOpt = None,
    embedder: Annotated[bool, typer.Option(
        "--embedder/--no-embedder",
        help="Also load the index's embedder and compare it with the recorded one.")] = True,
    quick: Annotated[bool, typer.Option(help="Only the quick database check.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check an index for damage (writes nothing). Exit code 1 if something is wrong."""
    idx = _open(index, embedder_adapter, readonly=True)
    try:
        rep = idx.store.check(quick=quick)
        if embedder and rep.repairable and not quick:
            extra = embedder_problems(idx)
            rep.problems += extra
            rep.repairable = rep.repairable and not extra
    except AspectragError as e:
        fail(str(e))
    if as_json:
        print(json.dumps({"index": index, "ok": rep.ok, "repairable": rep.repairable,
                          "problems": rep.problems, "notes": rep.notes}))
    else:
        for note in rep.notes:
            out.print(note, highlight=False, soft_wrap=True)
        for p in rep.problems:
            console.print(f"[red]problem[/] {p}", highlight=False, soft_wrap=True)
        if rep.ok:
            out.print(f"{index}: ok", highlight=False)
        elif rep.repairable:
            out.print(f"{index}: damaged; run `aspectrag repair --index {index}`",
                      highlight=False, soft_wrap=True)
        else:
            out.print(f"{index}: damaged beyond repair (see above)", highlight=False)
    if not rep.ok:
        raise typer.Exit(1)


def repair(index: IndexOpt = DEFAULT_INDEX) -> None:
    """Rebuild what can be rebuilt (derived indexes, SQL indexes, multi-head statistics) and
    say what cannot. Exit code 1 if something could not be repaired."""
    idx = _open(index, None, readonly=False)
    try:
        lines = idx.store.repair()
        if not any(x.startswith("cannot: ") for x in lines):
            lines += _repair_head_stats(idx.store)
    except AspectragError as e:
        fail(str(e))
    for line in lines:
        if line.startswith("cannot: "):
            console.print(f"[red]cannot repair[/] {line[8:]}", highlight=False, soft_wrap=True)
        else:
            out.print(line, highlight=False, soft_wrap=True)
    if any(x.startswith("cannot: ") for x in lines):
        raise typer.Exit(1)
    out.print(f"{index}: repaired", highlight=False)


def _repair_head_stats(store) -> list[str]:  # type: ignore[no-untyped-def]
    """Recompute the multi-head statistics when the index has head spaces and they are
    missing or do not cover the stored chunks."""
    from aspectrag.multihead.stats import STATS_KEY, HeadStats, head_spaces, recompute

    if not head_spaces(store):
        return []
    raw = store.get_meta(STATS_KEY)
    try:
        if raw is not None and HeadStats.from_json(raw).count == store.stats()["chunks"]:
            return []
    except AspectragError:
        pass
    recompute(store)
    return ["recomputed the multi-head statistics"]

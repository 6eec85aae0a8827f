"""``aspectrag eval mrag``: multi-aspect retrieval on the Multi-Head RAG data sets."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from aspectrag.cli.common import RuntimeOpt, console, edge_setup, fail, out
from aspectrag.errors import AspectragError


def eval_mrag(  # registered as ``aspectrag eval mrag`` by cli/main.py
    dataset: Annotated[str, typer.Argument(help="wikipedia | legal | chem (the v1 sets).")],
    strategy: Annotated[
        list[str] | None,
        typer.Option(
            "--strategy",
            "-s",
            help="Strategy (repeatable): standard, split, mrag, mrag-paper, "
            "mrag-unweighted, mrag-distance, mrag-centred, mrag-g1..g6, bm25, hybrid, mrag+bm25, "
            "fusion, fusion-mrag, or any retriever name. Default: all (fusion ones on Wikipedia).",
        ),
    ] = None,
    baseline: Annotated[
        str, typer.Option(help="Strategy the others are compared with.")
    ] = "standard",
    data: Annotated[
        Path | None,
        typer.Option(
            "--data", help="Shared data folder (default $ASPECTRAG_SHARED_DATA or ../shared/data)."
        ),
    ] = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option(help="Where evaluation indexes are kept (default ~/.cache/aspectrag/mrag)."),
    ] = None,
    plot: Annotated[
        Path | None, typer.Option(help="Write the improvement plot (PNG) here.")
    ] = None,
    details: Annotated[
        Path | None, typer.Option(help="Write every figure with its 95% CI (JSON) here.")
    ] = None,
    n_boot: Annotated[int, typer.Option(help="Bootstrap replicates for the CIs.")] = 10_000,
    runtime: RuntimeOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the results as JSON on stdout.")
    ] = False,
) -> None:
    """Success, retrieval success ratio, category success ratio and weighted score per aspect
    count (at k = aspects; weighted also averaged over k..k+10), for each strategy, with
    paired-bootstrap 95% CIs against the baseline (Besta et al. 2024, arXiv 2406.05085)."""
    from aspectrag.evaluate.mrag import load_mrag
    from aspectrag.evaluate.mrag_report import details as make_details
    from aspectrag.evaluate.mrag_report import plot as make_plot
    from aspectrag.evaluate.mrag_report import results_json, tables
    from aspectrag.evaluate.mrag_strategies import DEFAULT_STRATEGIES, MragEvaluation
    from aspectrag.evaluate.mrag_strategies import strategy as get_strategy

    edge_setup(runtime)  # the evaluation indexes are per runtime (the embedder name)
    try:
        ds = load_mrag(dataset, data)
        names = list(strategy or DEFAULT_STRATEGIES)
        if not any(q.fusion for q in ds.queries) and not strategy:
            names = [n for n in names if not n.startswith("fusion")]
        if baseline not in names:
            names.insert(0, baseline)
        for n in names:
            get_strategy(n)  # validate every name before the long work
        if plot is not None:  # and the plot's optional package
            from aspectrag.extras import optional_import

            optional_import("matplotlib", "--plot")
        ev = MragEvaluation(ds, cache_dir, progress=sys.stderr.isatty())
        ev.index("main")
        ev.warm()  # query encodings cached: the ms/query figures are search time only
        runs = []
        for n in names:
            console.print(f"[dim]{ds.name}: running {n}…[/]")
            runs.append(ev.run(n))
    except AspectragError as e:
        fail(str(e))
    det = make_details(ds, runs, baseline, n_boot=n_boot)
    if details is not None:
        details.parent.mkdir(parents=True, exist_ok=True)
        details.write_text(json.dumps(det, indent=1))
    if plot is not None:
        show = [
            n
            for n in names
            if n in ("mrag", "split", "mrag-paper", "fusion", "fusion-mrag", "mrag+bm25")
        ] or None
        make_plot(det, runs, ds, plot, strategies=show)
        console.print(f"plot written to {plot}")
    if as_json:
        print(json.dumps(results_json(ds, runs)))
        return
    for t in tables(det):
        out.print(t)

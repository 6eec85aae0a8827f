"""``aspectrag heads``: the attention heads of an index and their importance (Multi-Head RAG)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from aspectrag.cli.common import DEFAULT_INDEX, IndexOpt, console, fail, open_index, out
from aspectrag.errors import AspectragError


def heads_cmd(  # registered as ``aspectrag heads`` by cli/main.py
    index: IndexOpt = DEFAULT_INDEX,
    plot: Annotated[Path | None, typer.Option(help="Write a bar plot of s_i (PNG) here.")] = None,
    recompute: Annotated[
        bool,
        typer.Option("--recompute", help="Recompute the statistics from every stored head vector."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """Per head: mean vector norm a_i, mean pairwise cosine distance b_i, importance
    s_i = a_i * b_i (and its share of the votes), from statistics kept exact at ingest."""
    from aspectrag.multihead import stats as hs
    from aspectrag.multihead.layout import META_KEY, head_space

    store = open_index(index, must_exist=True).store
    try:
        stats = hs.recompute(store) if recompute else hs.load_stats(store)
    except AspectragError as e:
        fail(str(e))
    cfg = store.get_meta(META_KEY)
    a, b, s = stats.mean_norm, stats.mean_pairwise_distance, stats.importance
    share = s / s.sum() if s.sum() > 0 else s
    centre_norm = [float(x) for x in (stats.centre.astype(float) ** 2).sum(1) ** 0.5]
    rows = [
        {
            "head": i,
            "space": head_space(i),
            "mean_norm": float(a[i]),
            "mean_pairwise_distance": float(b[i]),
            "importance": float(s[i]),
            "vote_share": float(share[i]),
            "centre_norm": centre_norm[i],
        }
        for i in range(len(s))
    ]
    if plot is not None:
        try:
            _bar_plot(rows, plot, f"{index} ({stats.count} chunks)")
        except AspectragError as e:  # matplotlib missing
            fail(str(e))
        console.print(f"plot written to {plot}")
    if as_json:
        print(
            json.dumps(
                {"chunks": stats.count, "config": json.loads(cfg) if cfg else None, "heads": rows}
            )
        )
        return
    from rich.table import Table

    t = Table(title=f"{index}: {stats.count} chunks, heads config {cfg or '(default)'}")
    for col in (
        "head",
        "a_i mean norm",
        "b_i mean pair dist",
        "s_i = a_i*b_i",
        "s_i share",
        "|centre|",
    ):
        t.add_column(col, justify="right")
    for r in rows:
        t.add_row(
            str(r["head"]),
            f"{r['mean_norm']:.4f}",
            f"{r['mean_pairwise_distance']:.4f}",
            f"{r['importance']:.4f}",
            f"{r['vote_share']:.1%}",
            f"{r['centre_norm']:.4f}",
        )
    out.print(t)


def _bar_plot(rows: list[dict], path: Path, title: str) -> None:  # type: ignore[type-arg]
    from aspectrag.extras import optional_import

    matplotlib = optional_import("matplotlib", "plotting head importances (--plot)")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * len(rows) + 1.5), 3.0))
    ax.bar([str(r["head"]) for r in rows], [r["importance"] for r in rows], color="#3174a2")
    ax.set_xlabel("head")
    ax.set_ylabel("importance s_i = a_i * b_i")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)

"""Reporting MRAG evaluation results: the JSON of the issue, CI details, tables, plots.

Plots follow the paper's figures (Besta et al. 2024, Fig. 5/6: improvement of the weighted
score over Standard RAG against the number of documents fetched, one panel per aspect count),
here with paired-bootstrap 95% bands instead of box plots.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aspectrag.evaluate.metrics import paired_bootstrap
from aspectrag.evaluate.mrag import AVG_SPAN, MragDataset, StrategyRun

CI_METRICS = ("success", "rsr", "crsr", "weighted", "weighted_avg", "rsr_avg")


def results_json(ds: MragDataset, runs: Sequence[StrategyRun]) -> dict[str, Any]:
    """``{STRATEGY: {"by_aspects": {"<a>": {"success", "rsr", "crsr", "weighted",
    "weighted_avg"}}, "mean_weighted_avg": x}}`` (the issue's ``--json`` shape)."""
    return {r.name: r.summary(ds) for r in runs}


def details(
    ds: MragDataset, runs: Sequence[StrategyRun], baseline: str, *, n_boot: int = 10_000
) -> dict[str, Any]:
    """Everything behind the tables: per strategy, the summary, per-metric differences to
    ``baseline`` with paired-bootstrap 95% CIs (per aspect count and for the mean over aspect
    counts), mean retrieval time per query, and the mean weighted score per k (curves).

    Raises:
        KeyError: ``baseline`` is not among the runs.
    """
    by_name = {r.name: r for r in runs}
    base = by_name[baseline]
    out: dict[str, Any] = {
        "dataset": ds.name,
        "baseline": baseline,
        "queries": len(ds.queries),
        "missing_units": ds.missing_units,
        "strategies": {},
    }
    for r in runs:
        entry: dict[str, Any] = {
            "summary": r.summary(ds),
            "ms_per_query": 1000 * r.seconds / max(len(ds.queries), 1),
            "weighted_by_k": {
                str(a): np.nanmean(r.scores["weighted"][_sel(ds, a)], axis=0).round(4).tolist()
                for a in ds.buckets
            },
            "extra": r.extra,
        }
        if r is not base:
            entry["vs_baseline"] = {
                m: {
                    k: [round(x, 4) for x in v]
                    for k, v in paired_bootstrap(
                        r.per_query[m], base.per_query[m], ds.strata, n_boot=n_boot
                    ).items()
                }
                for m in CI_METRICS
            }
        out["strategies"][r.name] = entry
    return out


def _sel(ds: MragDataset, a: int) -> np.ndarray:
    return np.array([q.aspects == a for q in ds.queries])


def markdown(det: Mapping[str, Any], metric: str = "weighted_avg") -> str:
    """A Markdown table: one row per strategy, one column per aspect count with the value of
    ``metric`` (a key of the summary: success, rsr, crsr, weighted, weighted_avg) and, for non-baseline rows, the difference to the baseline with its 95% CI
    (``*`` marks a CI that excludes 0); last column: the mean over aspect counts."""
    strategies = det["strategies"]
    first = next(iter(strategies.values()))
    buckets = list(first["summary"]["by_aspects"])
    lines = [f"| strategy | {' | '.join(buckets)} | mean |", "|---" * (len(buckets) + 2) + "|"]
    for name, e in strategies.items():
        by = e["summary"]["by_aspects"]
        vals = [by[b][metric] for b in buckets]
        mean = float(np.mean(vals))
        cells = []
        vs = e.get("vs_baseline", {}).get(metric)
        for b, v in zip(buckets, vals, strict=True):
            cells.append(f"{v:.3f}" + (_ci(vs[b]) if vs else ""))
        cells.append(f"{mean:.3f}" + (_ci(vs["mean"]) if vs else ""))
        lines.append(f"| {name} | {' | '.join(cells)} |")
    return "\n".join(lines)


def _ci(t: Sequence[float]) -> str:
    d, lo, hi = t
    star = "*" if lo > 0 or hi < 0 else ""
    return f" ({d:+.3f} [{lo:+.3f}, {hi:+.3f}]{star})"


def tables(det: Mapping[str, Any]):  # type: ignore[no-untyped-def]
    """Rich tables: weighted_avg and RSR (k = aspects) per aspect count, with differences to
    the baseline (green/red when the 95% CI excludes 0)."""
    from rich.table import Table

    out = []
    strategies = det["strategies"]
    buckets = list(next(iter(strategies.values()))["summary"]["by_aspects"])
    for metric, title in (
        ("weighted_avg", "weighted score, mean over k = a..a+10"),
        ("rsr", "retrieval success ratio at k = a"),
        ("crsr", "category success ratio at k = a"),
        ("success", "success at k = a"),
    ):
        t = Table(title=f"{det['dataset']}: {title} (vs {det['baseline']}, 95% CI)")
        t.add_column("strategy")
        for b in buckets:
            t.add_column(f"{b} asp.", justify="right")
        t.add_column("mean", justify="right")
        t.add_column("ms/q", justify="right")
        for name, e in strategies.items():
            by = e["summary"]["by_aspects"]
            vals = [by[b][metric] for b in buckets]
            vs = e.get("vs_baseline", {}).get(metric)
            cells = [
                _rich_cell(v, vs[b] if vs else None) for b, v in zip(buckets, vals, strict=True)
            ]
            cells.append(_rich_cell(float(np.mean(vals)), vs["mean"] if vs else None))
            t.add_row(name, *cells, f"{e['ms_per_query']:.1f}")
        out.append(t)
    return out


def _rich_cell(v: float, ci: Sequence[float] | None) -> str:
    if ci is None:
        return f"{v:.3f}"
    d, lo, hi = ci
    colour = "green" if lo > 0 else "red" if hi < 0 else "white"
    return f"{v:.3f} [{colour}]{d:+.3f}[/]"


def plot(
    det: Mapping[str, Any],
    runs: Sequence[StrategyRun],
    ds: MragDataset,
    path: str | Path,
    *,
    strategies: Sequence[str] | None = None,
    buckets: Sequence[int] = (5, 10, 15, 20),
    n_boot: int = 2000,
) -> Path:
    """PNG like the paper's Fig. 5: mean improvement of the weighted score over the baseline
    against the number of documents fetched (k = a .. a + 10), one panel per aspect count,
    with paired-bootstrap 95% bands. Returns the path written."""
    from aspectrag.extras import optional_import

    matplotlib = optional_import("matplotlib", "the MRAG report figure")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_name = {r.name: r for r in runs}
    base = by_name[det["baseline"]]
    names = [n for n in (strategies or [r.name for r in runs]) if n != base.name]
    buckets = [b for b in buckets if b in ds.buckets] or ds.buckets[-4:]
    fig, axes = plt.subplots(1, len(buckets), figsize=(3.2 * len(buckets), 3.0), sharey=True)
    axes = np.atleast_1d(axes)
    rng = np.random.default_rng(0)
    k_max = base.scores["weighted"].shape[1]
    for ax, a in zip(axes, buckets, strict=True):
        sel = _sel(ds, a)
        ks = np.arange(a, min(a + AVG_SPAN, k_max) + 1)
        for name in names:
            diff = (by_name[name].scores["weighted"][sel] - base.scores["weighted"][sel])[:, ks - 1]
            idx = rng.integers(0, diff.shape[0], size=(n_boot, diff.shape[0]))
            reps = diff[idx].mean(axis=1)
            lo, hi = np.quantile(reps, [0.025, 0.975], axis=0)
            (line,) = ax.plot(ks, diff.mean(0), marker="o", markersize=3, label=name)
            ax.fill_between(ks, lo, hi, color=line.get_color(), alpha=0.15)
        ax.axhline(0, color="grey", linewidth=0.8)
        ax.set_title(f"{a} aspects", fontsize=10)
        ax.set_xlabel("documents fetched")
    axes[0].set_ylabel(f"weighted score - {base.name}")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(
        handles, labels, loc="lower center", ncol=min(len(labels), 6), fontsize=8, frameon=False
    )
    fig.suptitle(f"MRAG {ds.name}: improvement over {base.name} (95% bootstrap bands)", fontsize=10)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path

"""Quality bars of the ONNX int8 runtime against torch (issue 14), with paired-bootstrap CIs.

Usage: python benchmarks/onnx_quality.py [--runtime onnx-int8] [--skip-scifact] [--skip-mrag]
           [--out benchmarks/results/onnx_quality]

- SciFact test (300 queries): nDCG@10 of ``dense`` and ``hybrid``; bar: |int8 - torch| <= 0.005.
  The torch index is the eval cache one (``aspectrag eval beir ../shared/data/scifact``);
  the ONNX one beside it, ``<cache_dir>/beir/scifact-<hash>-<runtime>``; a missing (empty)
  index is built through the product ingest, as ``eval beir`` does; a built one is only read.
- MRAG Wikipedia v1: mean weighted (``mean_weighted_avg``) of ``mrag`` (and ``standard``, for
  reference); bar: |int8 - torch| <= 0.01. Each runtime has its own evaluation indexes
  (``MragEvaluation(runtime=...)``); the CI is stratified by aspect count, like the figure.

Writes ``<out>.txt`` (the table) and ``<out>.json`` (figures, CIs, per-query values; a part
skipped keeps its figures from an earlier run's JSON). The
difference is ONNX minus torch; ``pass`` compares the point difference with the bar,
``ci_within_bar`` whether the whole 95% CI lies inside +-bar.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = (ROOT.parent / "shared/data/scifact").resolve()  # the path the indexes record
SCIFACT_BAR, MRAG_BAR = 0.005, 0.01
N_BOOT = 10_000


def _index(path: Path, runtime: str):  # type: ignore[no-untyped-def]
    """The index at ``path`` (built with ``runtime`` if new); raises when it holds another
    runtime's vectors."""
    from aspectrag.embed.factory import build_embedder, recorded_runtime
    from aspectrag.index import Index

    if path.exists() and any(path.iterdir()):
        idx = Index(path)
        rec = idx.store.get_meta("embedder") or ""
        if rec and recorded_runtime(rec) != runtime:
            raise SystemExit(f"{path}: built with {rec}, not {runtime}")
        return idx
    return Index(path, embedder=build_embedder(runtime=runtime))


def scifact(runtime: str) -> dict:  # type: ignore[type-arg]
    from aspectrag.evaluate.beir import beir_run, default_eval_index, load_beir
    from aspectrag.evaluate.metrics import paired_bootstrap, per_query_scores

    ds = load_beir(SCIFACT, "test")
    torch_path = default_eval_index(SCIFACT)
    paths = {"torch": torch_path, runtime: default_eval_index(SCIFACT, runtime)}
    per: dict[str, dict[str, np.ndarray]] = {}
    for rt, path in paths.items():
        idx = _index(path, rt)
        if not idx.store.stats()["chunks"]:  # a built index is only read
            rep = idx.ingest([str(ds.corpus)])
            if rep.failed:
                raise SystemExit(f"{ds.corpus}: {rep.failed[0][1]}")
        per[rt] = {}
        for name in ("dense", "hybrid"):
            run = beir_run(idx.retriever(name), ds.queries)
            per[rt][name] = per_query_scores(ds.qrels, run)
    out: dict[str, object] = {"queries": len(ds.qrels), "bar": SCIFACT_BAR,
                              "indexes": {k: str(v) for k, v in paths.items()}, "rows": {}}
    for name in ("dense", "hybrid"):
        a, b = per[runtime][name], per["torch"][name]
        d, lo, hi = paired_bootstrap(a, b, n_boot=N_BOOT)["mean"]
        out["rows"][name] = {  # type: ignore[index]
            "torch": float(b.mean()), runtime: float(a.mean()), "diff": d, "ci": [lo, hi],
            "pass": abs(d) <= SCIFACT_BAR, "ci_within_bar": max(abs(lo), abs(hi)) <= SCIFACT_BAR,
            "per_query": {"torch": b.round(5).tolist(), runtime: a.round(5).tolist()}}
    return out


def mrag(runtime: str) -> dict:  # type: ignore[type-arg]
    from aspectrag.evaluate.metrics import paired_bootstrap
    from aspectrag.evaluate.mrag import load_mrag
    from aspectrag.evaluate.mrag_strategies import MragEvaluation

    ds = load_mrag("wikipedia", ROOT.parent / "shared/data")
    strata = [q.aspects for q in ds.queries]
    runs: dict[str, dict[str, object]] = {}
    for rt in ("torch", runtime):
        ev = MragEvaluation(ds, runtime=rt)
        ev.index("main")
        ev.warm()
        runs[rt] = {"root": str(ev.root)}
        for name in ("mrag", "standard"):
            runs[rt][name] = ev.run(name)
    out: dict[str, object] = {"queries": len(ds.queries), "bar": MRAG_BAR, "rows": {},
                              "indexes": {rt: r["root"] for rt, r in runs.items()}}
    for name in ("mrag", "standard"):
        a, b = runs[runtime][name], runs["torch"][name]
        d, lo, hi = paired_bootstrap(a.per_query["weighted_avg"], b.per_query["weighted_avg"],  # type: ignore[attr-defined]
                                     strata, n_boot=N_BOOT)["mean"]
        out["rows"][name] = {  # type: ignore[index]
            "torch": b.summary(ds)["mean_weighted_avg"],  # type: ignore[attr-defined]
            runtime: a.summary(ds)["mean_weighted_avg"],  # type: ignore[attr-defined]
            "diff": d, "ci": [lo, hi], "bar_applies": name == "mrag",
            "pass": abs(d) <= MRAG_BAR, "ci_within_bar": max(abs(lo), abs(hi)) <= MRAG_BAR}
    return out


def table(res: dict, runtime: str) -> str:  # type: ignore[type-arg]
    lines = [f"ONNX Runtime {runtime} vs torch: quality bars (issue 14); diff = {runtime} - "
             f"torch, paired bootstrap 95% CI ({N_BOOT} replicates)", ""]
    head = f"{'set':26} {'metric':22} {'torch':>7} {runtime:>9} {'diff':>8} {'95% CI':>19} " \
           f"{'bar':>6} {'pass':>5}"
    for key, label, metric in (("scifact", "SciFact test", "nDCG@10"),
                               ("mrag", "MRAG Wikipedia v1", "mean weighted")):
        if key not in res:
            continue
        part = res[key]
        lines += [head]
        for name, row in part["rows"].items():
            bar = f"{part['bar']:.3f}" if row.get("bar_applies", True) else "-"
            ok = ("yes" if row["pass"] else "NO") if row.get("bar_applies", True) else "-"
            lines.append(f"{label + ' (' + str(part['queries']) + ' q)':26} "
                         f"{metric + ' ' + name:22} {row['torch']:7.4f} {row[runtime]:9.4f} "
                         f"{row['diff']:+8.4f} [{row['ci'][0]:+.4f}, {row['ci'][1]:+.4f}] "
                         f"{bar:>6} {ok:>5}")
        lines.append("")
    bars = [r["pass"] for p in res.values() for r in p["rows"].values()
            if r.get("bar_applies", True)]
    lines.append(f"all quality bars hold: {'yes' if bars and all(bars) else 'NO'}")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runtime", default="onnx-int8", choices=("onnx-int8", "onnx-fp32"))
    ap.add_argument("--skip-scifact", action="store_true")
    ap.add_argument("--skip-mrag", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/onnx_quality")
    args = ap.parse_args()
    from aspectrag.cli.common import edge_setup

    edge_setup()
    new: dict[str, object] = {}
    if not args.skip_scifact:
        new["scifact"] = scifact(args.runtime)
    if not args.skip_mrag:
        new["mrag"] = mrag(args.runtime)
    js = args.out.with_suffix(".json")  # read at the end: two part runs may overlap
    res: dict[str, object] = json.loads(js.read_text()) if js.exists() else {}
    res.update(new)
    text = table(res, args.runtime)  # type: ignore[arg-type]
    print(text, end="")
    args.out.with_suffix(".txt").write_text(text)
    js.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()

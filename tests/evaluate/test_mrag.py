"""MRAG evaluation: loaders on the real data sets, metrics, bootstrap, report, any Retriever."""

from __future__ import annotations

import json

import numpy as np
import pytest

from aspectrag.evaluate.metrics import paired_bootstrap
from aspectrag.evaluate.mrag import (
    MragDataset,
    MragQuery,
    load_mrag,
    per_query_scores,
    run_strategy,
    score_rankings,
    summarise,
)
from aspectrag.evaluate.mrag_report import details, markdown, plot, results_json
from aspectrag.types import Chunk, Document, Hit


def _toy() -> MragDataset:
    """6 units in 3 categories; two 2-aspect queries and one 1-aspect query."""
    docs = [Document(f"d{i}", f"s#{i}", f"t{i}", f"text {i}") for i in range(6)]
    unit_of = {f"d{i}": f"u{i}" for i in range(6)}
    category_of = {f"u{i}": f"c{i // 2}" for i in range(6)}
    queries = [
        MragQuery("2-0", "q0", ("u0", "u2"), (), 2),
        MragQuery("2-1", "q1", ("u1", "u5"), (), 2),
        MragQuery("1-0", "q2", ("u3",), (), 1),
    ]
    return MragDataset("toy", docs, unit_of, category_of, queries)


def test_metrics_on_constructed_rankings() -> None:
    ds = _toy()
    rankings = [["d0", "d2", "d1"], ["d0", "d1", "d4"], ["d2", "d3"]]
    sc = score_rankings(ds, rankings, k_max=4)
    # q0: both found by k=2
    np.testing.assert_array_equal(sc["success"][0], [0, 1, 1, 1])
    np.testing.assert_allclose(sc["rsr"][0], [0.5, 1, 1, 1])
    # q1: u1 found at k=2, u5 never; category c0 at k=1 (d0), c2 at k=3 (d4 is another c2 unit)
    np.testing.assert_allclose(sc["rsr"][1], [0, 0.5, 0.5, 0.5])
    np.testing.assert_allclose(sc["crsr"][1], [0.5, 0.5, 1, 1])
    np.testing.assert_array_equal(sc["csuccess"][1], [0, 0, 1, 1])
    # q2 (1 aspect): the category of u3 (c1) is reached at k=1 by d2, the unit at k=2
    np.testing.assert_allclose(sc["crsr"][2], [1, 1, 1, 1])
    np.testing.assert_allclose(sc["rsr"][2], [0, 1, 1, 1])
    np.testing.assert_allclose(sc["weighted"], (2 * sc["rsr"] + sc["crsr"]) / 3)
    pq = per_query_scores(ds, sc)
    np.testing.assert_allclose(pq["rsr"], [1.0, 0.5, 0.0])  # at k = aspects
    np.testing.assert_allclose(pq["weighted_avg"][2], np.mean(sc["weighted"][2, 0:4]))
    s = summarise(ds, pq)
    assert set(s) == {"by_aspects", "mean_weighted_avg"}
    assert set(s["by_aspects"]) == {"1", "2"}
    assert set(s["by_aspects"]["2"]) == {"success", "rsr", "crsr", "weighted", "weighted_avg"}
    assert s["by_aspects"]["2"]["rsr"] == 0.75
    with pytest.raises(ValueError):
        score_rankings(ds, rankings[:2])


def test_paired_bootstrap() -> None:
    ds = _toy()
    a = np.array([0.5, 0.5, 0.5])
    same = paired_bootstrap(a, a, ds.strata, n_boot=200)
    assert all(v == (0.0, 0.0, 0.0) for v in same.values())
    better = paired_bootstrap(a + np.array([0.2, 0.3, 0.1]), a, ds.strata, n_boot=500)
    assert better["mean"][1] > 0 and better["2"][0] == pytest.approx(0.25)
    assert better["2"][1] == pytest.approx(0.2) and better["2"][2] == pytest.approx(0.3)


class _Oracle:
    """A Retriever that returns the relevant documents first (as chunk hits, two per doc)."""

    name = "oracle"

    def __init__(self, ds: MragDataset) -> None:
        self.ds = ds
        self.rel = {q.text: q.relevant for q in ds.queries}

    def retrieve(self, query, k=10, sources=None):  # type: ignore[no-untyped-def]
        return self.retrieve_batch([query], k, sources)[0]

    def retrieve_batch(self, queries, k=10, sources=None):  # type: ignore[no-untyped-def]
        out = []
        inv = {u: d for d, u in self.ds.unit_of.items()}
        for q in queries:
            docs = [inv[u] for u in self.rel[q]] + [d.doc_id for d in self.ds.documents]
            hits, seen = [], set()
            for d in docs:
                for j in range(2):
                    if (d, j) not in seen:
                        seen.add((d, j))
                        hits.append(
                            Hit(Chunk(f"{d}#{j}", d, "s", "t", j, "x", 0, 1), 1.0, len(hits) + 1)
                        )
            out.append(hits[:k])
        return out


def test_run_strategy_with_any_retriever_and_report(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ds = _toy()
    oracle = run_strategy(ds, "oracle", _Oracle(ds), k_max=4)
    assert all(len(r) == 4 for r in oracle.rankings)  # chunk hits collapsed to documents
    assert oracle.summary(ds)["by_aspects"]["2"]["success"] == 1.0
    worst = run_strategy(ds, "reversed", _Reversed(ds), k_max=4)
    res = results_json(ds, [oracle, worst])
    assert list(res) == ["oracle", "reversed"]
    json.dumps(res)
    det = details(ds, [oracle, worst], "oracle", n_boot=200)
    d = det["strategies"]["reversed"]["vs_baseline"]["weighted_avg"]["mean"]
    assert d[0] < 0
    md = markdown(det)
    assert md.splitlines()[0].startswith("| strategy | 1 | 2 | mean |") and "reversed" in md
    png = plot(det, [oracle, worst], ds, tmp_path / "p.png", buckets=(1, 2))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


class _Reversed(_Oracle):
    def retrieve_batch(self, queries, k=10, sources=None):  # type: ignore[no-untyped-def]
        return [list(reversed(h)) for h in super().retrieve_batch(queries, 100, sources)]


@pytest.mark.parametrize("name", ["wikipedia", "legal", "chem"])
def test_loaders_on_the_shared_data(data_dir, name) -> None:  # type: ignore[no-untyped-def]
    ds = load_mrag(name, data_dir)
    assert ds.buckets == [1, 2, 3, 4, 5, 6, 10, 15, 20, 25]
    assert len(ds.queries) == 250
    assert len({d.doc_id for d in ds.documents}) == len(ds.documents)
    assert len(set(ds.category_of.values())) == 25
    assert sum(not q.text.strip() for q in ds.queries) <= 1  # chem has one empty query text
    for q in ds.queries:
        assert all(u in ds.category_of for u in q.relevant)
        assert q.aspects - len(q.relevant) <= 3
    if name == "wikipedia":
        assert len(ds.documents) == 1250 and not ds.missing_units
        assert all(len(q.fusion) >= 4 for q in ds.queries)
        assert all(len(q.relevant) == q.aspects for q in ds.queries)
    else:
        assert len(ds.category_of) == 620 and len(ds.documents) > 6000
        # topic files absent from the v1 archive (names with "/" and a few others)
        assert len(ds.missing_units) == {"legal": 6, "chem": 5}[name]


def test_unknown_dataset_is_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from aspectrag.errors import AspectragError

    with pytest.raises(AspectragError, match="choose one of"):
        load_mrag("imdb", tmp_path)
    with pytest.raises(AspectragError, match="missing"):
        load_mrag("wikipedia", tmp_path)

import pytest

from aspectrag.retrieve.fusion import convex_combination, reciprocal_rank_fusion
from aspectrag.store.base import ScoredId


def test_rrf_matches_formula_with_one_based_ranks():
    fused = dict(reciprocal_rank_fusion([["a", "b", "c"], ["b", "d"]], c=60))
    assert fused["a"] == pytest.approx(1 / 61)
    assert fused["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert fused["d"] == pytest.approx(1 / 62)
    assert list(dict(reciprocal_rank_fusion([["a", "b", "c"], ["b", "d"]])))[0] == "b"


def test_rrf_weights_apply_and_duplicates_count_once():
    fused = reciprocal_rank_fusion([["a", "a", "b"], ["b"]], weights=[1.0, 3.0])
    d = dict(fused)
    assert d["a"] == pytest.approx(1 / 61)
    assert d["b"] == pytest.approx(1 / 62 + 3 / 61)
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([["a"]], weights=[1.0, 2.0])


def test_convex_combination_min_max_normalises_each_run():
    bm25 = [ScoredId("a", 10.0), ScoredId("b", 5.0), ScoredId("c", 0.0)]
    dense = [ScoredId("c", 0.9), ScoredId("a", 0.5)]
    fused = dict(convex_combination([bm25, dense], [0.5, 0.5]))
    assert fused["a"] == pytest.approx(0.5 * 1.0 + 0.5 * 0.0)
    assert fused["b"] == pytest.approx(0.5 * 0.5)
    assert fused["c"] == pytest.approx(0.5 * 0.0 + 0.5 * 1.0)

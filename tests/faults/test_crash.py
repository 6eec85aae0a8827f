"""Crash tests (issue 17 item 9a): a child ingest with the bundled MiniLM is SIGKILLed at
injected points (an SQL statement inside the write transaction, the COMMIT, the derived-index
rebuild after it, a derived-index file rename, a random time); after each kill the index passes
``PRAGMA integrity_check``, holds exactly the before or the after state (sources, chunk texts,
vectors), serves searches only from that state, and a re-run of the ingest completes.
``benchmarks/faults.py --crash-trials 50`` runs the long version."""

from __future__ import annotations

import numpy as np
import pytest
from tests.faults.harness import crash_points, crash_setup, crash_trial

TRIALS = 5


@pytest.fixture(scope="module")
def setup(tmp_path_factory, embedder):  # type: ignore[no-untyped-def]
    return crash_setup(tmp_path_factory.mktemp("crash"), embedder)


def test_kill_points_cover_the_transaction_commit_and_rebuild(setup):
    points = crash_points(setup, TRIALS, np.random.default_rng(17))
    assert len(points) == TRIALS
    assert "stmt:1" in points and f"stmt:{setup.statements}" in points
    assert any(p.startswith("time:") for p in points) and any(p.startswith("fs:") for p in points)


@pytest.mark.parametrize("trial", range(TRIALS))
def test_sigkill_leaves_before_or_after_state(setup, embedder, trial):
    point = crash_points(setup, TRIALS, np.random.default_rng(17))[trial]
    res = crash_trial(setup, point, trial, embedder)
    assert res.integrity == "ok", res
    assert res.outcome in ("before", "after"), res
    assert res.recovered, res

"""I/O-error tests (issue 17 item 9b): ``aspectrag ingest`` runs in a child whose writes fail
(a full disk via ``RLIMIT_FSIZE``, or SQLite writes refused after N via an authorizer); the
index keeps its previous state and passes ``integrity_check``, and the CLI prints one error
line (exit 1 or 2), no traceback. ``benchmarks/faults.py --io-trials`` runs more limits."""

from __future__ import annotations

import pytest
from tests.faults.harness import io_setup, io_trial


@pytest.fixture(scope="module")
def setup(tmp_path_factory):  # type: ignore[no-untyped-def]
    return io_setup(tmp_path_factory.mktemp("io"))


@pytest.mark.parametrize("fault", ["fsize:8192", "deny:0", "deny:4"])
def test_failed_writes_leave_the_index_and_print_one_line(setup, fault):
    res = io_trial(setup, fault, 0)
    assert res.exit_code in (1, 2), res  # 1: OS/SQLite error mapped by the CLI; 2: StoreError
    assert not res.traceback and res.integrity == "ok", res
    assert res.outcome == "before", res
    assert len(res.error_lines) == 1, res


def test_a_limit_never_reached_gives_the_after_state(setup):
    res = io_trial(setup, "fsize:100000000", 1)
    assert res.exit_code == 0 and res.outcome == "after" and res.ok, res

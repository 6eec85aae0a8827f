"""Fuzzing (issue 17 item 9c) with a small budget; ``benchmarks/faults.py`` runs the large one.
Every loader, the splitter, the rule-based decomposition, the LLM-output parser and query
validation meet their contract on generated inputs and raise nothing but AspectragError."""

from __future__ import annotations

import pytest
from tests.faults.fuzz_targets import TARGETS, fuzz

BUDGET = 60  # examples per target (deterministic: derandomized)


@pytest.mark.parametrize("name", list(TARGETS))
def test_fuzz_target(name):
    assert fuzz(name, BUDGET) >= BUDGET // 2

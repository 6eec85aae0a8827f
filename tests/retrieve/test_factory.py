"""The retriever table: every retriever listed up front, declared options, clear errors."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from aspectrag.errors import ConfigError
from aspectrag.retrieve import factory
from aspectrag.retrieve.factory import (
    RETRIEVERS,
    RetrieverEntry,
    available,
    build_retriever,
    options_of,
    register,
)


def test_every_retriever_is_listed_without_importing_it() -> None:
    names = available()
    assert {"bm25", "dense", "hybrid", "multiquery", "multihead", "multihead-paper",
            "multihead-bm25", "split"} <= set(names)
    code = ("import sys; from aspectrag.retrieve.factory import available; available(); "
            "print('aspectrag.multihead.retriever' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.stdout.strip() == "False"  # listing the table imports no retriever


def test_each_retriever_declares_its_options() -> None:
    assert options_of("bm25") == ()
    assert options_of("hybrid") == ("fusion", "weight", "depth")
    assert options_of("multihead") == ("votes", "centre", "dense_weight", "bm25_weight", "depth")
    assert "queries" in options_of("multiquery") and "rrf_depth" in options_of("multiquery")


def test_an_unknown_option_is_an_error_naming_the_valid_ones() -> None:
    # raised before anything is built: no store or embedder is touched
    with pytest.raises(ConfigError) as e:
        build_retriever("multihead", None, None, weight=0.3)  # type: ignore[arg-type]
    msg = str(e.value)
    assert "'weight'" in msg and "votes, centre, dense_weight, bm25_weight, depth" in msg
    with pytest.raises(ConfigError, match=r"bm25 has no option 'fusion'; its options: \(none\)"):
        build_retriever("bm25", None, None, fusion="rrf")  # type: ignore[arg-type]
    # multiquery passes its base's options on, and checks them against the base's table row
    with pytest.raises(ConfigError, match=r"multiquery \(base bm25\) has no option 'weight'"):
        build_retriever("multiquery", None, None, base="bm25", weight=0.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown retriever 'nope'; choose one of"):
        build_retriever("nope", None, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="another retriever"):
        build_retriever("multiquery", None, None, base="multiquery")  # type: ignore[arg-type]


def test_a_plugin_whose_dependency_is_missing_names_the_extra(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(factory, "RETRIEVERS", dict(RETRIEVERS))
    register(RetrieverEntry("colbert-v2", "aspectrag_no_such_plugin.module:Builder",
                            extra="colbert"))
    assert "colbert-v2" in available()
    with pytest.raises(ConfigError) as e:
        build_retriever("colbert-v2", None, None)  # type: ignore[arg-type]
    assert "aspectrag_no_such_plugin" in str(e.value)
    assert "pip install 'aspectrag[colbert]'" in str(e.value)

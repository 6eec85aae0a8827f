"""Ray Data ingestion (``--engine ray``) builds the same index as the in-process pipeline:
same chunk ids and texts, vectors within 1e-5 in every space (dense and per-head), same
report; a failed Ray ingest leaves the index intact. One local Ray runtime (2 CPUs) for the
module."""

from __future__ import annotations

import functools
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'aspectrag[ray]')")
pytest.importorskip("ray.data", reason="Ray Data is not installed (pip install 'ray[data]')")

from tests.fakes import tiny_bert_folder  # noqa: E402

from aspectrag.errors import IngestEngineError  # noqa: E402
from aspectrag.index import Index  # noqa: E402
from aspectrag.multihead.embedder import MultiHeadEmbedder  # noqa: E402
from aspectrag.multihead.layout import META_KEY, STATS_KEY  # noqa: E402
from aspectrag.multihead.stats import HeadStats  # noqa: E402

TEXTS = {
    "rome.txt": "The Roman Republic was governed by two consuls elected every year. "
                "The senate advised the consuls on war and finance.\n\n" * 3,
    "bees.md": "# Bees\n\nHoney bees live in colonies with one queen.\n\n"
               "## Dances\n\nWorkers dance to show where the flowers are.\n",
    "tea.txt": "Green tea is made from leaves that are not oxidised. Black tea is oxidised.\n",
    "sub/rivers.txt": "The Nile flows north through Egypt into the Mediterranean Sea.\n",
}


def _broken_factory() -> MultiHeadEmbedder:
    raise RuntimeError("the embedder cannot be built here")


@pytest.fixture(scope="module")
def ray_runtime():  # type: ignore[no-untyped-def]
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level=logging.WARNING)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def setup(tmp_path_factory, ray_runtime):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("ray_ingest")
    model = str(tiny_bert_folder(root / "model"))
    docs = root / "docs"
    for name, text in TEXTS.items():
        (docs / name).parent.mkdir(parents=True, exist_ok=True)
        (docs / name).write_text(text)
    (docs / "broken.txt").write_bytes(b"abc\x00\x01\x02def" * 10)
    corpus = docs / "beir" / "corpus.jsonl"
    corpus.parent.mkdir()
    corpus.write_text("".join(json.dumps(d) + "\n" for d in [
        {"_id": "d1", "title": "Owls", "text": "Owls hunt at night and see well in the dark."},
        {"_id": "d2", "title": "", "text": ""},
        {"_id": "d3", "title": "Maps", "text": "A map shows places and the roads between them."},
    ]))
    local = Index(root / "local", embedder=MultiHeadEmbedder(model, batch_size=8))
    dist = Index(root / "ray", embedder=MultiHeadEmbedder(model, batch_size=8),
                 embedder_factory=functools.partial(MultiHeadEmbedder, model, batch_size=8))
    # an older rome.txt and tea.txt are indexed first (in-process): the Ray ingest must update
    # the one, skip the other as unchanged, and add the rest, like the in-process one
    (docs / "rome.txt").write_text("The Roman Republic had consuls.\n")
    for idx in (local, dist):
        idx.ingest([str(docs / "rome.txt"), str(docs / "tea.txt")])
    (docs / "rome.txt").write_text(TEXTS["rome.txt"])
    local_report = local.ingest([str(docs)])
    # two embedding actors on the 2-CPU runtime: a pipeline stage asking for a CPU of its own
    # (a repartition task once did) leaves no room and the ingest waits for ever
    ray_report = dist.ingest([str(docs)], engine="ray", workers=2)
    return root, model, docs, local, local_report, dist, ray_report


def _names(pairs):  # type: ignore[no-untyped-def]
    return sorted((Path(s.split("#")[0]).name + ("#" + s.split("#")[1] if "#" in s else ""), r)
                  for s, r in pairs)


def test_ray_index_equals_in_process(setup) -> None:  # type: ignore[no-untyped-def]
    _, _, _, local, lrep, dist, rrep = setup
    a = {c.chunk_id: c for c in local.store.iter_chunks()}
    b = {c.chunk_id: c for c in dist.store.iter_chunks()}
    assert len(a) >= 6 and sorted(a) == sorted(b)
    assert all((a[k].text, a[k].source, a[k].start, a[k].end) ==
               (b[k].text, b[k].source, b[k].start, b[k].end) for k in a)
    spaces = local.store.vector_spaces()
    assert "dense" in spaces and any(s.startswith("head") for s in spaces)
    assert sorted(dist.store.vector_spaces()) == sorted(spaces)
    ids = sorted(a)
    for space in spaces:
        va, vb = local.store.get_vectors(space, ids), dist.store.get_vectors(space, ids)
        assert va.shape == vb.shape and va.shape[0] == len(ids)
        np.testing.assert_allclose(va, vb, atol=1e-5, err_msg=space)
    for key in ("embedder", META_KEY):
        assert local.store.get_meta(key) == dist.store.get_meta(key) is not None
    sa, sb = (HeadStats.from_json(i.store.get_meta(STATS_KEY)) for i in (local, dist))
    np.testing.assert_allclose(sa.importance, sb.importance, rtol=1e-4, atol=1e-6)
    assert (rrep.added, rrep.updated, rrep.unchanged, rrep.chunks) == (
        lrep.added, lrep.updated, lrep.unchanged, lrep.chunks)
    assert (rrep.added, rrep.updated, rrep.unchanged) == (4, 1, 1) and rrep.chunks >= 5
    assert _names(rrep.failed) == _names(lrep.failed)
    assert [n for n, _ in _names(rrep.failed)] == ["broken.txt"]
    assert _names(rrep.skipped) == _names(lrep.skipped) == [
        ("corpus.jsonl#d2", "empty document (neither title nor text)")]


def test_failed_ray_ingest_leaves_the_index_intact(setup) -> None:  # type: ignore[no-untyped-def]
    root, model, docs, _, _, dist, _ = setup
    chunks = sorted(c.chunk_id for c in dist.store.iter_chunks())
    (root / "new.txt").write_text("Volcanoes erupt when magma reaches the surface.\n")
    broken = Index(dist.location, embedder=MultiHeadEmbedder(model, batch_size=8),
                   embedder_factory=_broken_factory)
    with pytest.raises(IngestEngineError, match="index is unchanged"):
        broken.ingest([str(root / "new.txt")], engine="ray")
    assert sorted(c.chunk_id for c in dist.store.iter_chunks()) == chunks

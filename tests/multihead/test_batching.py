"""The one batching loop (``embed/batching.length_batches``) and the four embedders on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aspectrag.embed.batching import length_batches

TEXTS = ["bb", "a", "dddd", "cc", "eeeee", "f", "gg"]


class _Bar:
    """Stands in for aspectrag.progress.progress_bar: records updates and the close."""

    def __init__(self, total: int, *_: object) -> None:
        self.total, self.updates, self.closed = total, [], False
        BARS.append(self)

    def update(self, n: int) -> None:
        self.updates.append(n)

    def close(self) -> None:
        self.closed = True


BARS: list[_Bar] = []


@pytest.fixture
def bars(monkeypatch: pytest.MonkeyPatch) -> list[_Bar]:
    import aspectrag.progress

    BARS.clear()
    monkeypatch.setattr(aspectrag.progress, "progress_bar", _Bar)
    return BARS


def test_batches_longest_first_stable_and_complete() -> None:
    got = [b.tolist() for b in length_batches(TEXTS, 3)]
    # lengths 2 1 4 2 5 1 2 -> 5 (4), 4 (2), then the 2s in input order (0 3 6), then the 1s
    assert got == [[4, 2, 0], [3, 6, 1], [5]]
    flat = np.concatenate(list(length_batches(TEXTS, 2)))
    assert sorted(flat.tolist()) == list(range(len(TEXTS))) and flat.dtype == np.int64
    assert list(length_batches([], 4)) == []
    with pytest.raises(ValueError, match="batch_size"):
        list(length_batches(TEXTS, 0))


def test_progress_advances_per_batch_and_closes_on_break_and_error(bars: list[_Bar]) -> None:
    assert [len(b) for b in length_batches(TEXTS, 3, show_progress=True)] == [3, 3, 1]
    assert bars[0].total == 7 and bars[0].updates == [3, 3, 1] and bars[0].closed
    with pytest.raises(RuntimeError):
        for _ in length_batches(TEXTS, 3, show_progress=True):
            raise RuntimeError("model failed")
    assert bars[1].updates == [] and bars[1].closed
    gen = length_batches(TEXTS, 3, show_progress=True)
    next(gen)
    gen.close()
    assert bars[2].closed
    list(length_batches(TEXTS, 3))  # no bar unless asked
    assert len(bars) == 3


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> str:  # type: ignore[no-untyped-def]
    from tests.fakes import tiny_bert_folder

    return str(tiny_bert_folder(tmp_path_factory.mktemp("tiny_bert_batching"), seed=2))


def _embedders(tiny_bert: str, cache: Path, batch_size: int):  # type: ignore[no-untyped-def]
    from aspectrag.embed.hf import HFEmbedder
    from aspectrag.multihead.embedder import MultiHeadEmbedder

    out = {"torch": HFEmbedder(tiny_bert, batch_size=batch_size),
           "torch-heads": MultiHeadEmbedder(tiny_bert, batch_size=batch_size)}
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:  # the ONNX pair is checked where onnxruntime is installed
        return out
    from aspectrag.embed.onnx import OnnxEmbedder, OnnxMultiHeadEmbedder

    out["onnx"] = OnnxEmbedder(tiny_bert, runtime="onnx-fp32", cache_dir=cache,
                               batch_size=batch_size)
    out["onnx-heads"] = OnnxMultiHeadEmbedder(tiny_bert, runtime="onnx-fp32", cache_dir=cache,
                                              batch_size=batch_size)
    return out


def test_every_embedder_batches_through_it_rows_in_input_order(
    tiny_bert: str, tmp_path: Path, bars: list[_Bar]
) -> None:
    texts = ["The consuls governed the Roman Republic for a year each.", "Cakes.",
             "Enzymes are biological catalysts that speed up reactions in cells.", "Gaul",
             "The legions fought in Gaul."]
    whole = {k: e.encode(texts) for k, e in _embedders(tiny_bert, tmp_path, 64).items()}
    small = _embedders(tiny_bert, tmp_path, 2)
    assert {"torch", "torch-heads"} <= set(small)
    for name, emb in small.items():
        BARS.clear()
        got = emb.encode(texts, show_progress=True)
        assert len(bars) == 1 and bars[0].updates == [2, 2, 1] and bars[0].closed, name
        assert set(got) == set(whole[name]), name
        for space, v in got.items():  # batches of 2 (other padding) give the same rows
            np.testing.assert_allclose(v, whole[name][space], atol=1e-4, err_msg=name)
        single = emb.encode([texts[3]])
        for space, v in single.items():
            np.testing.assert_allclose(v[0], got[space][3], atol=1e-4, err_msg=name)
        empty = emb.encode([])
        assert {k: v.shape for k, v in empty.items()} == {
            k: (0, v.shape[1]) for k, v in got.items()}, name

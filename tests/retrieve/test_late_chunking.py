"""Late chunking of multi-query sub-queries (embed/late.py, the ONNX embedders, the retriever)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from aspectrag.embed.late import active_plan, late_chunking, plan_spans, span_rows, word_ranges
from aspectrag.retrieve.multiquery import MultiQueryRetriever
from aspectrag.retrieve.query_gen.base import SubQuery
from aspectrag.types import Chunk, Hit

Q = "Were Scott Derrickson and Ed Wood of the same nationality?"
SPAN = "Scott Derrickson and Ed Wood"
OTHER = "filmmaker director american citizenship"


def test_word_ranges_spans_subsequences_and_non_spans() -> None:
    assert word_ranges(Q, SPAN) == ((5, 33),)
    assert word_ranges(Q, "the same nationality") == ((37, 57),)  # "?" ignored
    sub = "Were Scott Derrickson of the same nationality?"
    assert word_ranges(Q, sub) is None
    assert [Q[a:b] for a, b in word_ranges(Q, sub, "subsequences")] == [  # type: ignore[union-attr]
        "Were Scott Derrickson", "of the same nationality"]
    assert word_ranges(Q, "Wood Ed") is None and word_ranges(Q, "Wood Ed", "subsequences") is None
    assert word_ranges(Q, "scott derrickson") is None  # case kept
    assert word_ranges(Q, Q) is None and word_ranges(Q, OTHER) is None
    with pytest.raises(ValueError):
        word_ranges(Q, SPAN, "words")


def test_span_rows_skips_specials_and_refuses_truncated_spans() -> None:
    offs = np.array([[0, 0], [0, 4], [5, 10], [11, 16], [0, 0]])
    assert span_rows(offs, ((5, 16),), specials=False).tolist() == [2, 3]  # type: ignore[union-attr]
    assert span_rows(offs, ((5, 10),), specials=True).tolist() == [0, 2, 4]  # type: ignore[union-attr]
    assert span_rows(offs, ((11, 30),), specials=False) is None


# -- the ONNX embedder on a tiny random BERT ------------------------------------------------
@pytest.fixture(scope="module")
def onnx_embedder(tmp_path_factory):  # type: ignore[no-untyped-def]
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from tests.fakes import tiny_bert_folder

    from aspectrag.embed.onnx import OnnxEmbedder

    folder = tiny_bert_folder(tmp_path_factory.mktemp("tiny_bert_late"), seed=3)
    return OnnxEmbedder(str(folder), runtime="onnx-fp32", threads=1,
                        cache_dir=tmp_path_factory.mktemp("late_cache"))


def _by_hand(emb, question: str, chars: tuple[int, int]) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Mean of the question's token rows whose characters fall in ``chars``, L2-normalised:
    tokenizer.json and the ONNX session driven directly."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(emb.model_path) / "tokenizer.json"))
    enc = tok.encode(question)
    sess = emb.session([-1])
    names = {i.name for i in sess.get_inputs()}
    feeds = {"input_ids": [enc.ids], "attention_mask": [enc.attention_mask],
             "token_type_ids": [enc.type_ids]}
    hidden = sess.run(None, {k: np.array(v, dtype=np.int64) for k, v in feeds.items()
                             if k in names})[0][0]
    rows = [i for i, (a, b) in enumerate(enc.offsets) if b > a and a < chars[1] and b > chars[0]]
    assert rows and len(rows) < len(enc.ids) - 2
    v = hidden[rows].mean(0)
    return v / np.linalg.norm(v)


def test_span_pooled_from_the_question_equals_pooling_by_hand(onnx_embedder) -> None:  # type: ignore[no-untyped-def]
    plain = onnx_embedder.encode([Q, SPAN, OTHER], kind="query")["dense"]
    with late_chunking(plan_spans([(Q, SPAN), (Q, OTHER)])):
        late = onnx_embedder.encode([Q, SPAN, OTHER], kind="query")["dense"]
        docs = onnx_embedder.encode([SPAN], kind="document")["dense"]
    np.testing.assert_allclose(late[1], _by_hand(onnx_embedder, Q, (5, 33)), atol=1e-5)
    assert abs(float(late[1] @ plain[1])) < 0.9999  # really another vector than alone
    np.testing.assert_allclose(late[0], plain[0], atol=1e-5)  # the question as before
    np.testing.assert_allclose(late[2], plain[2], atol=1e-5)  # not a span: encoded normally
    np.testing.assert_allclose(docs[0], plain[1], atol=1e-5)  # documents never late-pooled
    assert late.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(late, axis=1), 1.0, atol=1e-5)


def test_span_without_the_question_in_the_batch_and_truncated_fallback(
    onnx_embedder, tmp_path  # type: ignore[no-untyped-def]
) -> None:
    from aspectrag.embed.onnx import OnnxEmbedder

    with late_chunking(plan_spans([(Q, SPAN)])):
        alone = onnx_embedder.encode([SPAN], kind="query")["dense"]
    np.testing.assert_allclose(alone[0], _by_hand(onnx_embedder, Q, (5, 33)), atol=1e-5)
    short = OnnxEmbedder(onnx_embedder.model_path, runtime="onnx-fp32", threads=1,
                         max_tokens=6, cache_dir=onnx_embedder.cache_dir)
    tail = "of the same nationality"
    with late_chunking(plan_spans([(Q, tail)])):  # beyond 6 tokens: encoded alone
        got = short.encode([Q, tail], kind="query")["dense"]
    np.testing.assert_allclose(got[1], short.encode([tail], kind="query")["dense"][0], atol=1e-6)


def test_multihead_mean_heads_pooled_over_the_span(tmp_path_factory, onnx_embedder) -> None:  # type: ignore[no-untyped-def]
    from aspectrag.embed.onnx import OnnxMultiHeadEmbedder

    mh = OnnxMultiHeadEmbedder(onnx_embedder.model_path, runtime="onnx-fp32", threads=1,
                               pooling="mean", cache_dir=onnx_embedder.cache_dir)
    with late_chunking(plan_spans([(Q, SPAN)])):
        dense, heads = mh.encode_raw([Q, SPAN, OTHER])
    np.testing.assert_allclose(dense[1], _by_hand(onnx_embedder, Q, (5, 33)), atol=1e-5)
    d0, h0 = mh.encode_raw([Q, OTHER])
    np.testing.assert_allclose(dense[[0, 2]], d0, atol=1e-5)
    key = (mh.layer, "mean")
    np.testing.assert_allclose(heads[key][[0, 2]], h0[key], atol=1e-5)
    assert not np.allclose(heads[key][1], h0[key][0], atol=1e-4)


# -- the retriever sets the plan -------------------------------------------------------------
class PlanRecorder:
    """Base retriever that records the late-chunking plan seen during each batch."""

    def __init__(self, name: str = "dense") -> None:
        self.name = name
        self.plans: list[dict[str, tuple[str, tuple[tuple[int, int], ...]]] | None] = []

    def retrieve(self, query: str, k: int = 10, sources: Sequence[str] | None = None) -> list[Hit]:
        return self.retrieve_batch([query], k, sources)[0]

    def retrieve_batch(self, queries: Sequence[str], k: int = 10,
                       sources: Sequence[str] | None = None) -> list[list[Hit]]:
        plan = active_plan()
        self.plans.append(dict(plan.spans) if plan is not None else None)
        return [[Hit(Chunk(q, q, "/s", "t", 0, q, 0, 1), 1.0, 1)] for q in queries]


class Fixed:
    name = "fixed"

    def generate(self, question: str) -> list[SubQuery]:
        return [SubQuery(SPAN, 1.0, "clauses"), SubQuery(OTHER, 1.0, "prf")]


@pytest.mark.parametrize("workers", [1, 2])
def test_retriever_plans_spans_only_when_on(workers: int) -> None:
    base = PlanRecorder()
    MultiQueryRetriever(base, Fixed(), late_chunking="spans", workers=workers).retrieve(Q)
    merged = {k: v for p in base.plans for k, v in (p or {}).items()}
    assert merged == {SPAN: (Q, ((5, 33),))}
    off = PlanRecorder()
    MultiQueryRetriever(off, Fixed()).retrieve(Q)
    mh = PlanRecorder("multihead")
    MultiQueryRetriever(mh, Fixed(), late_chunking="spans").retrieve(Q)
    assert off.plans == [None] and mh.plans == [None]
    assert active_plan() is None
    with pytest.raises(ValueError):
        MultiQueryRetriever(base, Fixed(), late_chunking="tokens")


def test_setting_turns_it_on_for_the_factories(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from aspectrag.retrieve.auto import build_auto
    from aspectrag.retrieve.multiquery import DEFAULT_LATE_MODE, late_chunking_mode

    class Store:  # what build_auto touches: the BM25 feedback retriever is built lazily
        pass

    monkeypatch.setenv("ASPECTRAG_MULTIQUERY_LATE_CHUNKING", "0")
    assert late_chunking_mode() is None
    monkeypatch.setenv("ASPECTRAG_MULTIQUERY_LATE_CHUNKING", "1")
    assert late_chunking_mode() == DEFAULT_LATE_MODE
    auto = build_auto(Store(), None, base=PlanRecorder())
    assert auto.late_chunking == DEFAULT_LATE_MODE
    assert build_auto(Store(), None, base=PlanRecorder(), late_chunking="off").late_chunking is None

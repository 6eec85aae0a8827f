"""Training pairs: JSONL validation, BEIR split reading, BM25 hard-negative mining."""

from __future__ import annotations

import json

import pytest

from aspectrag.errors import ConfigError
from aspectrag.train.data import (
    TrainPair,
    add_hard_negatives,
    beir_pairs,
    load_pairs_jsonl,
    mine_hard_negatives,
    read_beir,
)


def test_load_pairs_jsonl(tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "pairs.jsonl"
    f.write_text(
        json.dumps({"query": "q1", "positive": "p1"}) + "\n\n"
        + json.dumps({"query": "q2", "positive": "p2", "negatives": ["n"]}) + "\n"
    )  # fmt: skip
    pairs = load_pairs_jsonl(f)
    assert pairs == [TrainPair("q1", "p1"), TrainPair("q2", "p2", ["n"])]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r"pairs.jsonl:2: not valid JSON"),
        ('{"query": "q"}', r"pairs.jsonl:2: field 'positive' must be a non-empty string"),
        ('{"query": "", "positive": "p"}', r"pairs.jsonl:2: field 'query'"),
        ('{"query": "q", "positive": "p", "negatives": "n"}', r"field 'negatives' must be a list"),
        ('["q", "p"]', r"pairs.jsonl:2: expected an object"),
    ],
)
def test_load_pairs_jsonl_errors_name_file_and_line(tmp_path, line, message) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "pairs.jsonl"
    f.write_text('{"query": "ok", "positive": "ok"}\n' + line + "\n")
    with pytest.raises(ConfigError, match=message):
        load_pairs_jsonl(f)


def test_missing_or_empty_pairs_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="not found"):
        load_pairs_jsonl(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(ConfigError, match="no pairs"):
        load_pairs_jsonl(tmp_path / "empty.jsonl")


def test_mined_negatives_exclude_positives_and_are_lexically_close() -> None:
    corpus = [
        "solar panels convert sunlight into electricity",
        "solar eclipses happen when the moon blocks sunlight",
        "wind turbines convert wind into electricity",
        "bananas are rich in potassium",
        "sunlight and solar power for homes",
    ]
    out = mine_hard_negatives(["solar electricity from sunlight"], corpus, [{0}], 2, depth=3)
    assert len(out[0]) == 2 and 0 not in out[0]
    assert 3 not in out[0]  # the unrelated passage is not in the BM25 top-3 negatives
    again = mine_hard_negatives(["solar electricity from sunlight"], corpus, [{0}], 2, depth=3)
    assert out == again  # seeded


def test_add_hard_negatives_from_file_pool() -> None:
    pairs = [
        TrainPair("solar power sunlight", "solar panels turn sunlight into power"),
        TrainPair("solar power sunlight", "photovoltaic cells and sunlight"),
        TrainPair("potassium fruit", "bananas contain potassium"),
        TrainPair("solar eclipse", "the moon blocks the sun during a solar eclipse"),
    ]
    add_hard_negatives(pairs, 1, depth=5)
    own = {"solar panels turn sunlight into power", "photovoltaic cells and sunlight"}
    for p in pairs[:2]:
        assert len(p.negatives) == 1 and p.negatives[0] not in own


def test_scifact_train_pairs(data_dir) -> None:  # type: ignore[no-untyped-def]
    d = data_dir / "scifact"
    if not d.is_dir():
        pytest.skip(f"{d} is absent")
    split = read_beir(d, "train")
    assert len(split.qrels) == 809
    pairs = beir_pairs(d, "train", hard_negatives=1, seed=3)
    assert len(pairs) == 919

    def text(doc_id: str) -> str:
        title, body = split.corpus[doc_id]
        return f"{title}\n{body}" if title else body

    rel_texts: dict[str, set[str]] = {}
    for q, r in split.qrels.items():  # some claims occur twice with different ids
        rel_texts.setdefault(split.queries[q], set()).update(text(d) for d in r)
    for p in pairs:
        assert len(p.negatives) == 1
        assert p.positive in rel_texts[p.query]
        assert p.negatives[0] not in rel_texts[p.query]
    with pytest.raises(ConfigError, match="qrels/dev.tsv"):
        read_beir(d, "dev")

"""LoRA training: no-op at start, loss goes down, save/load and merge give the same embeddings."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tests.train.helpers import toy_pairs

from aspectrag.embed.adapter import adapter_id, load_unmerged, merge_adapter
from aspectrag.embed.hf import HFEmbedder
from aspectrag.errors import ConfigError
from aspectrag.train.lora import (
    LoraSettings,
    embed_train,
    epoch_negatives,
    make_batches,
    make_lora_model,
    mnrl_loss,
    train_embedder,
)

TEXTS = ["LoRA freezes the pretrained weights.", "A short query", "Mitochondria make ATP."]
FAST = dict(r=8, alpha=16, dropout=0.0, lr=0.1, batch_size=8, max_tokens=32)


def _emb(model, tok, texts=TEXTS) -> np.ndarray:  # type: ignore[no-untyped-def]
    with torch.inference_mode():
        return embed_train(model, tok, texts, 256).numpy()


def test_adapter_is_exact_noop_at_start(embedder: HFEmbedder) -> None:
    """B = 0 at initialisation: the real MiniLM with a fresh adapter embeds bit-identically."""
    from transformers import AutoModel

    base = embedder.encode(TEXTS)["dense"]
    torch.manual_seed(0)
    peft_model = make_lora_model(AutoModel.from_pretrained(embedder.model_path), LoraSettings())
    peft_model.eval()
    lora_b = [p for n, p in peft_model.named_parameters() if "lora_B" in n]
    lora_a = [p for n, p in peft_model.named_parameters() if "lora_A" in n]
    assert len(lora_b) == 12  # query + value in 6 layers
    assert all(torch.count_nonzero(b) == 0 for b in lora_b)
    assert all(torch.count_nonzero(a) > 0 for a in lora_a)  # A is random, only B is zero
    np.testing.assert_array_equal(_emb(peft_model, embedder.tokenizer), base)


@pytest.mark.slow
def test_training_lowers_loss_and_save_load_merge_agree(tiny_bert, tmp_path) -> None:  # type: ignore[no-untyped-def]
    pairs = toy_pairs()
    s = LoraSettings(epochs=15, **FAST)
    before = HFEmbedder(str(tiny_bert))
    res = train_embedder(pairs, tmp_path / "ad", model_path=str(tiny_bert), settings=s,
                         show_progress=False)  # fmt: skip
    after = HFEmbedder(str(tiny_bert), adapter=str(tmp_path / "ad"))

    def full_loss(emb: HFEmbedder) -> float:
        q = torch.from_numpy(emb.encode([p.query for p in pairs])["dense"])
        d = torch.from_numpy(emb.encode([p.positive for p in pairs])["dense"])
        docs = [p.positive for p in pairs]
        known = {p.query: {p.positive} for p in pairs}
        return float(mnrl_loss(q, d, pairs, docs, known, s.scale))

    assert full_loss(after) < 0.8 * full_loss(before)
    assert np.mean(res.losses[-3:]) < np.mean(res.losses[:3])
    # files: small adapter, metadata, loss curve
    ad = tmp_path / "ad"
    meta = json.loads((ad / "training.json").read_text())
    assert meta["steps"] == len(res.losses) == 15 and meta["settings"]["r"] == 8
    assert (ad / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert res.adapter_bytes < 50_000
    # save -> load: a fresh base + saved adapter embeds identically to the trained model
    from transformers import AutoModel

    loaded = load_unmerged(AutoModel.from_pretrained(str(tiny_bert)), ad).eval()
    trained = _emb(res.model, before.tokenizer)
    np.testing.assert_array_equal(_emb(loaded, before.tokenizer), trained)
    # adapter merged on load (HFEmbedder) and written merged (train merge): same within 1e-5
    np.testing.assert_allclose(after.encode(TEXTS)["dense"], trained, atol=1e-5)
    merged = merge_adapter(ad, tmp_path / "merged")
    plain = HFEmbedder(str(merged))
    np.testing.assert_allclose(plain.encode(TEXTS)["dense"], trained, atol=1e-5)
    assert not (merged / "adapter_config.json").exists()
    assert plain.name != before.name != after.name
    with pytest.raises(ConfigError, match="not empty"):
        merge_adapter(ad, tmp_path / "merged")


def test_training_is_reproducible(tiny_bert, tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = LoraSettings(epochs=2, **{**FAST, "dropout": 0.1})
    runs = [
        train_embedder(
            toy_pairs(),
            tmp_path / f"r{i}",
            model_path=str(tiny_bert),
            settings=s,
            show_progress=False,
        )  # fmt: skip
        for i in range(2)
    ]
    assert runs[0].losses == runs[1].losses
    assert adapter_id(tmp_path / "r0").split("@")[1] == adapter_id(tmp_path / "r1").split("@")[1]
    other = train_embedder(toy_pairs(), tmp_path / "r2", model_path=str(tiny_bert),
                           settings=LoraSettings(epochs=2, **{**FAST, "seed": 1}), show_progress=False)  # fmt: skip
    assert other.losses != runs[0].losses


def test_adapter_name_and_refusals(tiny_bert, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="not a LoRA adapter folder"):
        HFEmbedder(str(tiny_bert), adapter=str(tmp_path))
    with pytest.raises(ConfigError, match="at least 2"):
        train_embedder(toy_pairs()[:1], tmp_path / "x", model_path=str(tiny_bert))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("data")
    with pytest.raises(ConfigError, match="not empty"):
        train_embedder(toy_pairs(), tmp_path / "full", model_path=str(tiny_bert))
    assert (tmp_path / "full" / "keep.txt").read_text() == "data"
    with pytest.raises(ConfigError, match="target modules"):
        train_embedder(toy_pairs(), tmp_path / "y", model_path=str(tiny_bert),
                       settings=LoraSettings(target_modules=("q_proj",)), show_progress=False)  # fmt: skip


def test_batches_have_no_duplicate_queries_or_passages() -> None:
    from aspectrag.train.data import TrainPair

    pairs = [TrainPair(f"q{i % 5}", f"d{i % 7}", [f"n{i % 3}"]) for i in range(40)]
    batches = make_batches(pairs, 4, np.random.default_rng(0))
    assert sorted(i for b in batches for i in b) == list(range(40))
    for b in batches:
        qs = [pairs[i].query for i in b]
        docs = [x for i in b for x in (pairs[i].positive, *pairs[i].negatives)]
        assert len(set(qs)) == len(qs) and len(set(docs)) == len(docs)


def test_known_positives_are_masked_not_negatives() -> None:
    from aspectrag.train.data import TrainPair

    batch = [TrainPair("q", "a"), TrainPair("q2", "b")]
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    d = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # "b" looks exactly like q's positive
    plain = mnrl_loss(q, d, batch, ["a", "b"], {"q": {"a"}, "q2": {"b"}}, 20.0)
    masked = mnrl_loss(q, d, batch, ["a", "b"], {"q": {"a", "b"}, "q2": {"b"}}, 20.0)
    assert masked < plain  # with "b" known relevant to "q", it no longer counts against it


def test_epoch_negatives_rotate_through_every_mined_negative() -> None:
    from aspectrag.train.data import TrainPair

    pair = TrainPair("q", "p", [f"n{i}" for i in range(6)])
    seen = [epoch_negatives([pair], e, 2)[0].negatives for e in range(3)]
    assert seen == [["n0", "n1"], ["n2", "n3"], ["n4", "n5"]]
    assert epoch_negatives([pair], 3, 2)[0].negatives == ["n0", "n1"]  # cycles
    assert epoch_negatives([pair], 1, 0)[0].negatives == pair.negatives  # 0: all, every step
    short = TrainPair("q", "p", ["only"])
    assert epoch_negatives([short], 2, 2)[0].negatives == ["only"]
    assert pair.negatives == [f"n{i}" for i in range(6)]  # input untouched

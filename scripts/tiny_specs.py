"""What each tiny reference model is: its transformers config and how it is saved (`SPECS`, in
seed order: a model's seed is SEED + its index). The shared shape and the `Spec` record are in
tiny_shape.py; the encoders after BERT's three (MPNet, ModernBERT, Nomic BERT) in tiny_specs_encoders.py."""

from __future__ import annotations

import torch
import transformers
from tiny_shape import HEADS, HIDDEN, INTERMEDIATE, LAYERS, MAX_POSITIONS, Spec, bert_family_common, ids_of, llama_family_config, tiny_common
from tiny_specs_encoders import ENCODER_SPECS
from tokenizers import Tokenizer


def config_bert(tok: Tokenizer):
    (pad,) = ids_of(tok, "[PAD]")
    return transformers.BertConfig(
        **bert_family_common(tok),
        max_position_embeddings=MAX_POSITIONS,
        type_vocab_size=2,
        layer_norm_eps=1e-12,
        pad_token_id=pad,
    )


def config_roberta(tok: Tokenizer):
    bos, pad, eos = ids_of(tok, "<s>", "<pad>", "</s>")
    return transformers.RobertaConfig(
        **bert_family_common(tok),
        # positions pad+1 .. : 128 usable positions, like roberta-base's 514 = 512 + 2
        max_position_embeddings=MAX_POSITIONS + pad + 1,
        type_vocab_size=1,
        layer_norm_eps=1e-5,
        pad_token_id=pad,
        bos_token_id=bos,
        eos_token_id=eos,
    )


def config_distilbert(tok: Tokenizer):
    (pad,) = ids_of(tok, "[PAD]")
    return transformers.DistilBertConfig(
        vocab_size=tok.get_vocab_size(),
        dim=HIDDEN,
        n_layers=LAYERS,
        n_heads=HEADS,
        hidden_dim=INTERMEDIATE,
        activation="gelu",
        max_position_embeddings=MAX_POSITIONS,
        sinusoidal_pos_embds=False,
        pad_token_id=pad,
    )


def config_gpt2(tok: Tokenizer):
    (eot,) = ids_of(tok, "<|endoftext|>")
    return transformers.GPT2Config(
        vocab_size=tok.get_vocab_size(),
        n_positions=MAX_POSITIONS,
        n_embd=HIDDEN,
        n_layer=LAYERS,
        n_head=HEADS,
        n_inner=INTERMEDIATE,
        activation_function="gelu_new",
        layer_norm_epsilon=1e-5,
        bos_token_id=eot,
        eos_token_id=eot,
    )


def config_llama(tok: Tokenizer):
    return llama_family_config(transformers.LlamaConfig, tok, ("<s>", "</s>"), 1e-5, 50000.0, attention_bias=False, mlp_bias=False)

def config_llama3rope(tok: Tokenizer):
    llama3 = {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 32}
    return llama_family_config(
        transformers.LlamaConfig, tok, ("<s>", "</s>"), 1e-5, 50000.0,
        head_dim=32, max_position_embeddings=256, rope_parameters={"rope_type": "llama3", "rope_theta": 50000.0, **llama3},
        attention_bias=False, mlp_bias=False,
    )

def config_mistral(tok: Tokenizer):
    return llama_family_config(transformers.MistralConfig, tok, ("<s>", "</s>"), 1e-5, 10000.0, sliding_window=4)

def config_qwen2(tok: Tokenizer):
    # Saved through Qwen2ForCausalLM with tied embeddings, like Qwen2-0.5B: keys are
    # "model.*" and the tied lm_head.weight is not stored.
    return llama_family_config(transformers.Qwen2Config, tok, ("<|endoftext|>",), 1e-6, 1000000.0, tie_word_embeddings=True, use_sliding_window=False)

def config_qwen3(tok: Tokenizer):
    return llama_family_config(
        transformers.Qwen3Config, tok, ("<|endoftext|>",), 1e-6, 1000000.0, head_dim=24, attention_bias=False, use_sliding_window=False
    )

def config_gemma3(tok: Tokenizer):
    return llama_family_config(
        transformers.Gemma3TextConfig, tok, ("<s>", "</s>"), 1e-6, 10000.0,
        head_dim=24,
        hidden_activation="gelu_pytorch_tanh",
        query_pre_attn_scalar=20,  # != head_dim, so that the scaling is tested
        sliding_window=4,
        layer_types=["sliding_attention", "full_attention"],
        rope_parameters={
            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
            "full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1000000.0},
        },
        pad_token_id=0,
    )

def gemma3_multimodal_config(text_config) -> transformers.PretrainedConfig:
    """A Gemma 3 (image + text) checkpoint around the tiny text model, with a tiny vision tower."""
    vision = transformers.SiglipVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=16, patch_size=8)
    return transformers.Gemma3Config(text_config=text_config.to_dict(), vision_config=vision.to_dict(), mm_tokens_per_image=4)


def config_gpt_neox(tok: Tokenizer):
    (eot,) = ids_of(tok, "<|endoftext|>")
    # Pythia's shape: partial rotary (a quarter of each head turns), parallel residual, biases,
    # an untied LM head (saved through GPTNeoXForCausalLM, as Pythia's checkpoints are).
    return transformers.GPTNeoXConfig(
        **tiny_common(tok),
        hidden_act="gelu",
        max_position_embeddings=MAX_POSITIONS,
        layer_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.25},
        use_parallel_residual=True,
        attention_bias=True,
        tie_word_embeddings=False,
        bos_token_id=eot,
        eos_token_id=eot,
    )

def config_gpt_neox_sequential(tok: Tokenizer):
    """GPT-NeoX's other settings: the sequential residual, no attention biases, half of each
    head rotating, the tanh GELU."""
    return config_gpt_neox(tok).__class__(
        **config_gpt_neox(tok).to_dict()
        | {"use_parallel_residual": False, "attention_bias": False, "hidden_act": "gelu_new"}
        | {"rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5}}
    )


def config_olmo2(tok: Tokenizer):
    (eot,) = ids_of(tok, "<|endoftext|>")
    # rms_norm_eps 1e-6: not the default 1e-5, which the config must then say
    return llama_family_config(
        transformers.Olmo2Config, tok, ("<|endoftext|>",), 1e-6, 500000.0, attention_bias=False, bos_token_id=None, pad_token_id=eot
    )

def config_phi3(tok: Tokenizer):
    (eos,) = ids_of(tok, "</s>")
    # Phi-3-mini-4k's sliding window (here 4) and Phi-4-mini's partial rotary (0.75 of each head)
    return llama_family_config(
        transformers.Phi3Config, tok, ("<s>", "</s>"), 1e-5, 10000.0,
        original_max_position_embeddings=MAX_POSITIONS,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.75},
        sliding_window=4,
        pad_token_id=eos,
    )

EXPERT_INTERMEDIATE = INTERMEDIATE // 2  # each expert's; several of them per layer


def config_mixtral(tok: Tokenizer):
    return llama_family_config(
        transformers.MixtralConfig, tok, ("<s>", "</s>"), 1e-5, 1000000.0,
        intermediate_size=EXPERT_INTERMEDIATE, num_local_experts=4, num_experts_per_tok=2, sliding_window=None,  # Mixtral 8x7B's
    )

def config_qwen3_moe(tok: Tokenizer):
    # Layer 0 has experts and layer 1 a dense SwiGLU (mlp_only_layers), so that both run;
    # top-k weights not renormalised (Qwen3MoeConfig's default; Mixtral's fixture renormalises).
    return llama_family_config(
        transformers.Qwen3MoeConfig, tok, ("<|endoftext|>",), 1e-6, 1000000.0,
        head_dim=24,
        moe_intermediate_size=EXPERT_INTERMEDIATE,
        num_experts=6,
        num_experts_per_tok=2,
        norm_topk_prob=False,
        mlp_only_layers=[1],
        use_sliding_window=False,
    )


SPECS: list[Spec] = [
    Spec("bert", "wordpiece", config_bert, "BertModel", "bert", token_types=True),
    Spec(
        "bert-prefixed", "wordpiece", config_bert, "BertModel", "bert",
        source="bert", save_class="BertForMaskedLM", token_types=True,
    ),
    Spec("roberta", "roberta-bpe", config_roberta, "RobertaModel", "roberta", token_types=True, position_offset=2),
    Spec("distilbert", "wordpiece", config_distilbert, "DistilBertModel", "distilbert"),
    Spec("gpt2", "gpt2-bpe", config_gpt2, "GPT2Model", "gpt2", causal=True),
    Spec("gpt2-sharded", "gpt2-bpe", config_gpt2, "GPT2Model", "gpt2", source="gpt2", max_shard_size="150KB", causal=True),
    Spec("llama", "llama-bpe", config_llama, "LlamaModel", "llama", rope=True, causal=True),
    Spec(
        "llama-bf16", "llama-bpe", config_llama, "LlamaModel", "llama",
        source="llama", save_dtype=torch.bfloat16, rope=True, causal=True,
    ),
    Spec("llama3rope", "llama-bpe", config_llama3rope, "LlamaModel", "llama", rope=True, causal=True),
    Spec("mistral", "llama-bpe", config_mistral, "MistralModel", "mistral", rope=True, causal=True, sliding_window=4),
    Spec("qwen2", "qwen-bpe", config_qwen2, "Qwen2Model", "qwen2", save_class="Qwen2ForCausalLM", rope=True, causal=True),
    Spec("qwen3", "qwen-bpe", config_qwen3, "Qwen3Model", "qwen3", rope=True, causal=True),
    Spec("gemma3", "llama-bpe", config_gemma3, "Gemma3TextModel", "gemma3", rope=True, causal=True, layer_windows=(4, None)),
    Spec(
        "gemma3-multimodal", "llama-bpe", config_gemma3, "Gemma3TextModel", "gemma3", source="gemma3",
        save_class="Gemma3ForConditionalGeneration", rope=True, causal=True, layer_windows=(4, None),
    ),
    Spec("gpt_neox", "gpt2-bpe", config_gpt_neox, "GPTNeoXModel", "gpt_neox", save_class="GPTNeoXForCausalLM", rope=True, causal=True),
    Spec("gpt_neox-sequential", "gpt2-bpe", config_gpt_neox_sequential, "GPTNeoXModel", "gpt_neox", rope=True, causal=True),
    Spec("olmo2", "gpt2-bpe", config_olmo2, "Olmo2Model", "olmo2", rope=True, causal=True),
    Spec("phi3", "llama-bpe", config_phi3, "Phi3Model", "phi3", rope=True, causal=True, sliding_window=4),
    Spec("mixtral", "llama-bpe", config_mixtral, "MixtralModel", "mixtral", rope=True, causal=True),
    Spec("qwen3_moe", "qwen-bpe", config_qwen3_moe, "Qwen3MoeModel", "qwen3_moe", rope=True, causal=True),
]


def config_gemma2(tok: Tokenizer):
    return llama_family_config(
        transformers.Gemma2Config, tok, ("<s>", "</s>"), 1e-6, 10000.0,
        head_dim=24,
        hidden_activation="gelu_pytorch_tanh",
        query_pre_attn_scalar=20,  # != head_dim, so that the scaling is tested
        sliding_window=4,
        layer_types=["sliding_attention", "full_attention"],
        attn_logit_softcapping=5.0,  # small enough to bite: the tiny model's scaled scores reach ~40
        final_logit_softcapping=3.0,
        pad_token_id=0,
    )



SPECS += [
    Spec("gemma2", "llama-bpe", config_gemma2, "Gemma2Model", "gemma2", rope=True, causal=True, layer_windows=(4, None)),
    *ENCODER_SPECS,
]

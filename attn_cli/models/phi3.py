"""Phi-3 (`model_type: phi3`): Microsoft's Phi-3 and Phi-4-mini.

Llama's layer (pre-RMSNorm, RoPE, grouped-query attention, SwiGLU) with fused projections:
q, k and v from one `qkv_proj` (its outputs q | k | v, heads·d then kv_heads·d twice), the
MLP's gate and up from one `gate_up_proj` (gate | up); a sliding window over every layer when
the config sets `sliding_window` (Phi-3-mini-4k: 2047); partial rotary where
`partial_rotary_factor` < 1 (Phi-4-mini: 0.75). LongRoPE scaling (the 128k models) is refused:
transformers switches its frequencies by the length of the sequence, so a text crossing
`original_max_position_embeddings` would be rotated two ways. Weight names follow
transformers' `Phi3Model` (`model.` prefix accepted).
"""

from __future__ import annotations

import numpy as np

from ..errors import ModelError
from ..maths.ops import linear, rms_norm, silu
from . import llama
from .architecture import Architecture, GGUFLayout
from .base import LayerTrace, Weights, kept, rope_parts, rotary_layer
from .hyper import MAX_POSITIONS, ConfigValues, Hyper, decoder_hyper, head_dim, windows
from .runtime import rows_runner


def parse(config: dict) -> Hyper:
    c = ConfigValues(config)
    c.choice("hidden_act", ("silu",), "silu", "Phi-3 hidden_act")
    params = c.mapping("rope_parameters") or c.mapping("rope_scaling")
    kind = params.get("rope_type", params.get("type", "default"))
    if kind in ("longrope", "su"):  # "su": the first 128k models' name for it
        raise ModelError(
            f"Phi-3 with {kind} RoPE scaling (a 128k-context model) is not supported: transformers changes its frequencies with the text's length",
            "use a Phi-3 model without rope_scaling (Phi-3-mini-4k-instruct)",
        )
    hidden, heads = c.integer("hidden_size"), c.integer("num_attention_heads")
    layers, dim = c.integer("num_hidden_layers"), head_dim(c, hidden, heads)
    return decoder_hyper(
        c, "phi3", layers, heads, dim,
        eps=c.number("rms_norm_eps", 1e-5),
        activation="silu",
        windows=windows(layers, c.integer("sliding_window", None, high=MAX_POSITIONS)),
        inv_freq=(llama.rope_frequencies(config, dim, partial=True),) * layers,
    )


def block(x, w: Weights, layer: int, s: Hyper, cos, sin, cache=None, whole: bool = True, iv=None) -> LayerTrace:
    """One layer: x + attention(RMSNorm(x)), then + SwiGLU(RMSNorm(x)), both projections fused.
    With a KV cache, x is the new tokens only. Not `whole` (and no cache): q, k and v only. The
    steps before and after attention are row-local: one split of the rows each (`runtime.row_local`)."""
    p = f"layers.{layer}."
    run = rows_runner(len(x)) if iv is None else None  # an intervened pass runs on one thread: its captures are whole arrays
    norm_in, norm_mid = w[f"{p}input_layernorm.weight"], w[f"{p}post_attention_layernorm.weight"]
    qkv, wo = w[f"{p}self_attn.qkv_proj.weight"], w[f"{p}self_attn.o_proj.weight"]
    gate_up, down = w[f"{p}mlp.gate_up_proj.weight"], w[f"{p}mlp.down_proj.weight"]
    queries, keys = s.heads * s.head_dim, s.kv_heads * s.head_dim

    def project(x, cos, sin):
        """RMSNorm, the fused q | k | v projection, RoPE: (rows, hidden) -> q, k, v, q and k after RoPE, each (rows, heads·d)."""
        fused = linear(rms_norm(x, norm_in, s.eps), qkv)
        q = fused[:, :queries].reshape(len(x), s.heads, s.head_dim)
        k = fused[:, queries : queries + keys].reshape(len(x), s.kv_heads, s.head_dim)
        return rope_parts(q, k, fused[:, queries + keys :], cos, sin)

    def tail(merged: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Output projection, residual; RMSNorm, the fused SwiGLU, residual: (rows, heads·d), (rows, hidden) -> (rows, hidden), the kept SwiGLU output."""
        x = x + linear(merged, wo)
        both = linear(rms_norm(x, norm_mid, s.eps), gate_up)
        half = both.shape[1] // 2
        fed = linear(both[:, half:] * silu(both[:, :half]), down)  # transformers: up · act(gate)
        return x + fed, kept(iv, "ffn", fed)

    return rotary_layer(x, s, layer, cos, sin, project, tail, run, cache, whole, iv)


# llama.cpp's tensor names -> this family's. Its converter keeps both fused projections as they
# are (q | k | v as attn_qkv, gate | up as ffn_up) and permutes nothing (Phi-3's RoPE is NeoX-style).
GGUF_TENSORS = {
    "token_embd.weight": "embed_tokens.weight",
    "output_norm.weight": "norm.weight",
    "output.weight": "lm_head.weight",
    "blk.{n}.attn_norm.weight": "layers.{n}.input_layernorm.weight",
    "blk.{n}.attn_qkv.weight": "layers.{n}.self_attn.qkv_proj.weight",
    "blk.{n}.attn_output.weight": "layers.{n}.self_attn.o_proj.weight",
    "blk.{n}.ffn_norm.weight": "layers.{n}.post_attention_layernorm.weight",
    "blk.{n}.ffn_up.weight": "layers.{n}.mlp.gate_up_proj.weight",  # gate | up, fused
    "blk.{n}.ffn_down.weight": "layers.{n}.mlp.down_proj.weight",
}


def gguf_config(metadata: dict, get, config: dict) -> dict:
    """Phi-3's settings from a GGUF file's metadata. llama.cpp writes the rotated dimensions per
    head as rope.dimension_count and no key_length, so the head is hidden/heads and the partial
    rotary factor their ratio; a sliding window of 0 means none (Phi-4); LongRoPE (the 128k
    models: rope_factors_long/short and an attention factor) is refused, as for a folder."""
    if "phi3.rope.scaling.attn_factor" in metadata:
        raise ModelError(
            "Phi-3 with LongRoPE scaling (a 128k-context model) is not supported", "use a Phi-3 model without rope_scaling (Phi-3-mini-4k-instruct)"
        )
    dim = int(metadata.get("phi3.attention.key_length") or config["hidden_size"] // config["num_attention_heads"])
    rope = llama.gguf_rope(get) | {"partial_rotary_factor": int(get("rope.dimension_count", dim)) / dim}
    return {"hidden_act": "silu", "head_dim": dim, "rope_parameters": rope, "sliding_window": int(get("attention.sliding_window", 0)) or None}


GGUF = GGUFLayout({"phi3": "phi3"}, GGUF_TENSORS, None, gguf_config)
ARCHITECTURE = Architecture(
    "phi3", parse, llama.rotary_decoder(block), llama.final_norm, llama.output_projection, ("model.",), logits=llama.logits, gguf=GGUF
)

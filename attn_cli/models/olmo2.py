"""OLMo 2 (`model_type: olmo2`): AI2's fully open decoders.

Llama's pieces (RoPE, grouped-query attention, SwiGLU, RMSNorm) put together otherwise: no norm
before attention or the MLP; each branch's output is RMSNorm'd inside the residual branch
instead, x + norm(attention(x)), then x + norm(MLP(x)); and q and k are RMSNorm'd over the
whole projection (all heads at once, weights of heads·head_dim), before the split into heads
and RoPE. Weight names follow transformers' `Olmo2Model` (`model.` prefix accepted).
"""

from __future__ import annotations

import numpy as np

from ..maths.ops import linear, rms_norm
from . import llama
from .architecture import Architecture, GGUFLayout
from .base import LayerTrace, Weights, kept, rope_parts, rotary_layer
from .hyper import ConfigValues, Hyper, decoder_hyper, head_dim, windows
from .runtime import rows_runner


def parse(config: dict) -> Hyper:
    c = ConfigValues(config)
    c.choice("hidden_act", ("silu",), "silu", "OLMo 2 hidden_act")
    hidden, heads = c.integer("hidden_size"), c.integer("num_attention_heads")
    layers, dim = c.integer("num_hidden_layers"), head_dim(c, hidden, heads)
    return decoder_hyper(
        c, "olmo2", layers, heads, dim,
        eps=c.number("rms_norm_eps", 1e-5),  # Olmo2Config's default (Llama's is 1e-6),
        activation="silu",
        windows=windows(layers, None),
        inv_freq=(llama.rope_frequencies(config, dim),) * layers,
    )


def block(x, w: Weights, layer: int, s: Hyper, cos, sin, cache=None, whole: bool = True, iv=None) -> LayerTrace:
    """One layer: x + RMSNorm(attention(x)), then + RMSNorm(SwiGLU(x)). With a KV cache, x is
    the new tokens only. Not `whole` (and no cache): q, k and v only (`base.layer_plan`). The
    steps before and after attention are row-local: one split of the rows each (`runtime.row_local`)."""
    p = f"layers.{layer}."
    run = rows_runner(len(x)) if iv is None else None  # an intervened pass runs on one thread: its captures are whole arrays
    wq, wk, wv, wo = (w[f"{p}self_attn.{n}_proj.weight"] for n in "qkvo")
    bq, bk, bv, bo = (w[f"{p}self_attn.{n}_proj.bias"] if f"{p}self_attn.{n}_proj.bias" in w else None for n in "qkvo")
    q_norm, k_norm = w[f"{p}self_attn.q_norm.weight"], w[f"{p}self_attn.k_norm.weight"]
    post_attention, post_ffn = w[f"{p}post_attention_layernorm.weight"], w[f"{p}post_feedforward_layernorm.weight"]
    dense = llama.mlp_weights(w, layer)

    def project(x, cos, sin):
        """q, k, v of x itself (no norm first), q and k RMSNorm'd over every head's dimensions at
        once (so before the split), RoPE: (rows, hidden) -> q, k, v, q and k after RoPE, each (rows, heads·d)."""
        q = rms_norm(linear(x, wq, bq), q_norm, s.eps).reshape(len(x), s.heads, s.head_dim)
        k = rms_norm(linear(x, wk, bk), k_norm, s.eps).reshape(len(x), s.kv_heads, s.head_dim)
        return rope_parts(q, k, linear(x, wv, bv), cos, sin)

    def tail(merged: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Output projection, norm, residual; SwiGLU, norm, residual: (rows, heads·d), (rows, hidden) -> (rows, hidden), the kept SwiGLU output."""
        x = x + rms_norm(linear(merged, wo, bo), post_attention, s.eps)
        fed = llama.swiglu(x, *dense)
        return x + rms_norm(fed, post_ffn, s.eps), kept(iv, "ffn", fed)

    return rotary_layer(x, s, layer, cos, sin, project, tail, run, cache, whole, iv)


# llama.cpp's tensor names -> this family's. Its converter stores OLMo 2 as transformers has it:
# no permuted Q/K rows (llama.cpp runs OLMo 2's RoPE in the NeoX layout), no shifted norms.
GGUF_TENSORS = {
    "token_embd.weight": "embed_tokens.weight",
    "output_norm.weight": "norm.weight",
    "output.weight": "lm_head.weight",
    "blk.{n}.attn_q.weight": "layers.{n}.self_attn.q_proj.weight",
    "blk.{n}.attn_k.weight": "layers.{n}.self_attn.k_proj.weight",
    "blk.{n}.attn_v.weight": "layers.{n}.self_attn.v_proj.weight",
    "blk.{n}.attn_output.weight": "layers.{n}.self_attn.o_proj.weight",
    "blk.{n}.attn_q_norm.weight": "layers.{n}.self_attn.q_norm.weight",
    "blk.{n}.attn_k_norm.weight": "layers.{n}.self_attn.k_norm.weight",
    "blk.{n}.post_attention_norm.weight": "layers.{n}.post_attention_layernorm.weight",
    "blk.{n}.post_ffw_norm.weight": "layers.{n}.post_feedforward_layernorm.weight",
    "blk.{n}.ffn_gate.weight": "layers.{n}.mlp.gate_proj.weight",
    "blk.{n}.ffn_up.weight": "layers.{n}.mlp.up_proj.weight",
    "blk.{n}.ffn_down.weight": "layers.{n}.mlp.down_proj.weight",
}

GGUF = GGUFLayout({"olmo2": "olmo2"}, GGUF_TENSORS, None, llama.gguf_config)
ARCHITECTURE = Architecture(
    "olmo2", parse, llama.rotary_decoder(block), llama.final_norm, llama.output_projection, ("model.",), logits=llama.logits, gguf=GGUF
)

"""GPT-NeoX (`model_type: gpt_neox`): EleutherAI's Pythia and GPT-NeoX-20B.

Pre-LayerNorm causal decoder (LayerNorms with bias); partial rotary embeddings (only the first
int(head_dim · rotary_pct) dimensions of each head turn, the rest pass through); q, k and v from
one fused `query_key_value` projection whose outputs are laid out per head, (heads, 3,
head_dim), not q|k|v; a parallel residual (`use_parallel_residual`, Pythia's default): both
branches read the layer's input, x + attention(LN₁(x)) + MLP(LN₂(x)); GELU MLP; an untied LM head
(`embed_out`). Weight names follow transformers' `GPTNeoXModel` (`gpt_neox.` prefix accepted).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..maths.ops import apply_rope, gelu, gelu_tanh, layer_norm, linear, merge_heads, rope_angles
from . import base, llama
from .architecture import Architecture
from .base import LayerTrace, Weights, attend, kept, run_layers
from .hyper import MAX_POSITIONS, ConfigValues, Hyper, head_dim
from .runtime import rows_runner

ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh"}


def rope_config(config: dict) -> dict:
    """RoPE's settings as `llama.rope_frequencies` reads them: transformers 5's rope_parameters,
    or 4's (and Pythia's config.json's) rotary_emb_base and rotary_pct, whose defaults are
    10000 and 0.25 (`GPTNeoXConfig`)."""
    c = ConfigValues(config)
    params = dict(c.mapping("rope_parameters") or c.mapping("rope_scaling"))
    params.setdefault("rope_theta", c.number("rotary_emb_base", config.get("rope_theta", 10000.0)))
    params.setdefault("partial_rotary_factor", c.number("rotary_pct", 0.25))
    return {"rope_parameters": params}


def parse(config: dict) -> Hyper:
    c = ConfigValues(config)
    activation = c.choice("hidden_act", tuple(ACTIVATIONS), "gelu", "GPT-NeoX hidden_act")
    hidden, heads = c.integer("hidden_size"), c.integer("num_attention_heads")
    layers, dim = c.integer("num_hidden_layers"), head_dim(c, hidden, heads, key=None)
    parallel = c.boolean("use_parallel_residual", True)
    return Hyper(
        model_type="gpt_neox",
        layers=layers,
        heads=heads,
        kv_heads=heads,
        head_dim=dim,
        hidden=hidden,
        max_positions=c.integer("max_position_embeddings", high=MAX_POSITIONS),
        causal=True,
        eps=c.number("layer_norm_eps", 1e-5),
        activation=ACTIVATIONS[activation],
        inv_freq=(llama.rope_frequencies(rope_config(config), dim, partial=True),) * layers,
        lm_head="embed_in.weight" if c.boolean("tie_word_embeddings", False) else "embed_out.weight",
        parallel_residual=parallel,
    )


def _linear(x: np.ndarray, w: Weights, name: str, run) -> np.ndarray:
    """x·Wᵀ + b, the bias only where the checkpoint has one (attention_bias false: none)."""
    bias = f"{name}.bias"
    return linear(x, w[f"{name}.weight"], w[bias] if bias in w else None, run)


def qkv_heads(fused: np.ndarray, heads: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The fused projection (seq, heads·3·head_dim), laid out head by head as [q|k|v] of
    head_dim each, -> q, k, v, each (heads, seq, head_dim)."""
    seq = fused.shape[0]
    parts = fused.reshape(seq, heads, 3, -1).transpose(2, 1, 0, 3)
    return tuple(np.ascontiguousarray(part) for part in parts)


def block(x, w: Weights, layer: int, s: Hyper, cos, sin, cache=None, whole: bool = True, iv=None) -> LayerTrace:
    """One layer. Parallel: x + attention(LN₁(x)) + MLP(LN₂(x)); sequential: y = x +
    attention(LN₁(x)), then y + MLP(LN₂(y)). With a KV cache, x is the new tokens only. Not
    `whole` (and no cache): q, k and v only (`base.layer_plan`)."""
    p = f"layers.{layer}."
    run = rows_runner(len(x))
    h = layer_norm(x, w[f"{p}input_layernorm.weight"], w[f"{p}input_layernorm.bias"], s.eps, run)
    q, k, v = qkv_heads(_linear(h, w, f"{p}attention.query_key_value", run), s.heads)
    q_rope, k_rope = apply_rope(q, cos, sin, run), apply_rope(k, cos, sin, run)
    if not whole and cache is None:
        return LayerTrace(layer, s, q_rope, k_rope, v, None, None, q_pre_rope=q, k_pre_rope=k)
    head_output, k_all, v_all, start = attend(q_rope, k_rope, v, s, layer, cache, iv, run)
    attended = _linear(merge_heads(head_output), w, f"{p}attention.dense", run)
    # transformers' sums, in its order: (mlp + attention) + x, or (attention + x), then mlp + that
    mlp_input = x if s.parallel_residual else attended + x
    h = layer_norm(mlp_input, w[f"{p}post_attention_layernorm.weight"], w[f"{p}post_attention_layernorm.bias"], s.eps, run)
    up = _linear(h, w, f"{p}mlp.dense_h_to_4h", run)
    inner = gelu(up, run) if s.activation == "gelu" else gelu_tanh(up)
    fed = _linear(inner, w, f"{p}mlp.dense_4h_to_h", run)
    out = (fed + attended) + x if s.parallel_residual else fed + mlp_input
    k_pre = k if cache is None else None  # the cache keeps keys after RoPE, as they enter Q·Kᵀ
    return LayerTrace(layer, s, q_rope, k_all, v_all, head_output, out, q_pre_rope=q, k_pre_rope=k_pre, start=start, interventions=iv, ffn=kept(iv, "ffn", fed))


def forward(w: Weights, s: Hyper, input_ids: np.ndarray, cache=None, through=None, interventions=None) -> Iterator[LayerTrace]:
    """One `LayerTrace` per layer (up to `through`: see `base.layer_plan`). With a KV cache
    (`models.cache.KVCache`), `input_ids` are the tokens after the cached ones, at positions
    cache.length onwards."""
    start = 0 if cache is None else cache.length
    cos, sin = rope_angles(s.inv_freq[0], len(input_ids), start)  # (seq, rotary): the first rotary dims of each head turn
    x = w.rows("embed_in.weight", input_ids)
    return run_layers(x, s.layers, through, lambda x, layer, whole: block(x, w, layer, s, cos, sin, cache, whole, interventions), interventions)


def final_norm(w: Weights, s: Hyper, hidden: np.ndarray) -> np.ndarray:
    """The last hidden state as transformers reports it: final_layer_norm of the last layer's output."""
    return layer_norm(hidden, w["final_layer_norm.weight"], w["final_layer_norm.bias"], s.eps)


def logits(w: Weights, s: Hyper, hidden: np.ndarray, head: np.ndarray | None = None) -> np.ndarray:
    """Next-token logits (seq, vocab): final_layer_norm, then embed_out (lm_head.weight as
    transformers 5 names it in memory; embed_in when tied)."""
    return base.logits(final_norm(w, s, hidden), base.lm_head(w, s) if head is None else head, s)


def output_projection(w: Weights, layer: int) -> np.ndarray:
    """W_O of the layer in x·W layout, (heads·head_dim, hidden)."""
    return w[f"layers.{layer}.attention.dense.weight"].T


ARCHITECTURE = Architecture("gpt_neox", parse, forward, final_norm, output_projection, ("gpt_neox.",), logits=logits)

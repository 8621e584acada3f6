"""Gemma 3: `gemma3_text`, and the text model of `gemma3` (multimodal) checkpoints.

A pre- and post-norm decoder (four RMSNorms per layer: input, post-attention,
pre-feed-forward, post-feed-forward), each RMSNorm scaling by (1 + w); embeddings scaled by
√hidden; q and k RMSNorm'd per head before RoPE; Q·Kᵀ scaled by query_pre_attn_scalar^-½
(not head_dim); layers alternate between sliding-window attention and global attention
(`layer_types`), each kind with its own RoPE θ; GeGLU feed-forward with the tanh GELU; tied
embeddings. Weight names follow transformers' `Gemma3TextModel` (`model.`, or
`model.language_model.` in multimodal checkpoints).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from ..errors import ModelError
from ..maths.ops import apply_rope, gelu_tanh, linear, merge_heads, rope_angles, split_heads
from . import llama
from .base import MAX_POSITIONS, ConfigValues, LayerTrace, ModelSpec, Weights, attend, head_dim, layer_plan, lm_logits
from .runtime import rows_runner

WEIGHT_PREFIXES = ("model.language_model.", "language_model.model.", "model.")
SLIDING, GLOBAL = "sliding_attention", "full_attention"
DEFAULT_THETA = {GLOBAL: 1_000_000.0, SLIDING: 10_000.0}


def text_config(config: dict) -> dict:
    """The text model's settings, with Gemma3TextConfig's defaults for what is left out."""
    if config.get("model_type") == "gemma3":
        text = config.get("text_config")
        if not isinstance(text, dict):
            raise ModelError("config.json: a gemma3 checkpoint has no text_config object", "re-download config.json")
        config = dict(text, model_type="gemma3_text")
    defaults = {
        "head_dim": 256, "rms_norm_eps": 1e-6, "query_pre_attn_scalar": 256, "sliding_window": 4096,
        "hidden_activation": "gelu_pytorch_tanh", "max_position_embeddings": 131_072,
    }
    return defaults | {k: v for k, v in config.items() if v is not None}


def layer_types(c: dict) -> list[str]:
    """`sliding_attention` or `full_attention` for each layer (every `sliding_window_pattern`-th is global)."""
    if c.get("layer_types"):
        return list(c["layer_types"])
    pattern = c.get("sliding_window_pattern", 6)
    return [SLIDING if (i + 1) % pattern else GLOBAL for i in range(c["num_hidden_layers"])]


def rope_parameters(c: dict, kind: str) -> dict:
    """RoPE settings of one layer type: transformers 5's `rope_parameters[kind]`, or 4's
    `rope_theta` / `rope_local_base_freq`, with `rope_scaling` on the global layers."""
    params = c.get("rope_parameters") or {}
    if isinstance(params, dict) and kind in params:
        params = dict(params[kind] or {})
    elif kind == GLOBAL:
        params = dict(c.get("rope_scaling") or {}) | {"rope_theta": c.get("rope_theta", DEFAULT_THETA[GLOBAL])}
    else:
        params = {"rope_theta": c.get("rope_local_base_freq", DEFAULT_THETA[SLIDING])}
    params.setdefault("rope_theta", DEFAULT_THETA[kind])
    return params


def spec(config: dict) -> ModelSpec:
    t = text_config(config)
    c = ConfigValues(t)
    c.choice("hidden_activation", ("gelu_pytorch_tanh", "gelu_tanh"), what="Gemma 3 hidden_activation")
    if t.get("attn_logit_softcapping") is not None:
        raise ModelError("attention logit soft-capping is not supported", "use a Gemma 3 model without attn_logit_softcapping")
    if c.boolean("use_bidirectional_attention", False):
        raise ModelError("bidirectional Gemma 3 (an embedding model) is not supported", "use a causal Gemma 3 model")
    layers, hidden, heads = c.integer("num_hidden_layers"), c.integer("hidden_size"), c.integer("num_attention_heads")
    c.integer("sliding_window_pattern", 6)
    kinds = layer_types(t)
    if len(kinds) != layers or set(kinds) - {SLIDING, GLOBAL}:
        raise ModelError(
            f"config.json: layer_types does not give sliding_attention or full_attention for each of the {layers} layers", "re-download config.json"
        )
    c.number("rms_norm_eps")
    window = c.integer("sliding_window", high=MAX_POSITIONS)
    dim = head_dim(c, hidden, heads)
    for kind in set(kinds):
        llama.rope_frequencies({"rope_parameters": rope_parameters(t, kind)}, dim)  # refuse bad RoPE now, not mid-run
    return ModelSpec(
        model_type=ConfigValues(config).string("model_type"),  # gemma3 for an image+text checkpoint: its text model is what runs
        layers=layers,
        heads=heads,
        kv_heads=c.integer("num_key_value_heads", heads),
        head_dim=dim,
        hidden=hidden,
        max_positions=c.integer("max_position_embeddings", high=MAX_POSITIONS),
        causal=True,
        sliding_window=window,
        rotary=True,
        layer_windows=tuple(window if kind == SLIDING else None for kind in kinds),
        query_scale=c.number("query_pre_attn_scalar") ** -0.5,
    )


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    """Gemma's RMSNorm over the last axis, x·rsqrt(mean(x²) + eps)·(1 + w): (..., d) -> (..., d)."""
    inverse = np.float32(1.0) / np.sqrt(np.square(x).mean(axis=-1, keepdims=True) + np.float32(eps))
    return (x * inverse) * (np.float32(1.0) + weight)


def block(x, w: Weights, layer: int, s: ModelSpec, eps: float, cos, sin, cache=None, whole: bool = True) -> LayerTrace:
    """One layer: x + norm(attention(norm(x))), then x + norm(GeGLU(norm(x))). With a KV cache,
    x is the new tokens only (the cache keeps every position; a sliding layer's mask drops the old).
    Not `whole` (and no cache): q, k and v only (`base.layer_plan`)."""
    p = f"layers.{layer}."
    run = rows_runner(len(x))
    h = rms_norm(x, w[f"{p}input_layernorm.weight"], eps)
    q = split_heads(linear(h, w[f"{p}self_attn.q_proj.weight"], run=run), s.heads)
    k = split_heads(linear(h, w[f"{p}self_attn.k_proj.weight"], run=run), s.kv_heads)
    v = split_heads(linear(h, w[f"{p}self_attn.v_proj.weight"], run=run), s.kv_heads)
    q = rms_norm(q, w[f"{p}self_attn.q_norm.weight"], eps)
    k = rms_norm(k, w[f"{p}self_attn.k_norm.weight"], eps)
    q_rope, k_rope = apply_rope(q, cos, sin, run), apply_rope(k, cos, sin, run)
    if not whole and cache is None:
        return LayerTrace(layer, s, q_rope, k_rope, v, None, None, q_pre_rope=q, k_pre_rope=k)
    head_output, k_all, v_all, start = attend(q_rope, k_rope, v, s, layer, cache, run)
    attended = linear(merge_heads(head_output), w[f"{p}self_attn.o_proj.weight"], run=run)
    x = x + rms_norm(attended, w[f"{p}post_attention_layernorm.weight"], eps)
    h = rms_norm(x, w[f"{p}pre_feedforward_layernorm.weight"], eps)
    gate, up = linear(h, w[f"{p}mlp.gate_proj.weight"], run=run), linear(h, w[f"{p}mlp.up_proj.weight"], run=run)
    fed = linear(gelu_tanh(gate) * up, w[f"{p}mlp.down_proj.weight"], run=run)
    x = x + rms_norm(fed, w[f"{p}post_feedforward_layernorm.weight"], eps)
    return LayerTrace(layer, s, q_rope, k_all, v_all, head_output, x, q_pre_rope=q, k_pre_rope=k if cache is None else None, start=start)


def forward(w: Weights, s: ModelSpec, config: dict, input_ids: np.ndarray, cache=None, through=None) -> Iterator[LayerTrace]:
    """One `LayerTrace` per layer (up to `through`: see `base.layer_plan`); with a KV cache,
    `input_ids` follow the cached positions."""
    c = text_config(config)
    kinds = layer_types(c)
    start = 0 if cache is None else cache.length
    angles = {
        kind: rope_angles(llama.rope_frequencies({"rope_parameters": rope_parameters(c, kind)}, s.head_dim), len(input_ids), start)
        for kind in set(kinds)
    }
    x = w.rows("embed_tokens.weight", input_ids) * np.float32(math.sqrt(s.hidden))
    for layer, whole in layer_plan(s.layers, through):
        trace = block(x, w, layer, s, c["rms_norm_eps"], *angles[kinds[layer]], cache, whole)
        x = trace.hidden
        yield trace


def final_norm(w: Weights, config: dict, hidden: np.ndarray) -> np.ndarray:
    return rms_norm(hidden, w["norm.weight"], text_config(config)["rms_norm_eps"])


def logits(w: Weights, config: dict, hidden: np.ndarray) -> np.ndarray:
    """Next-token logits (seq, vocab): the final norm, the tied embeddings, then the soft-cap
    cap·tanh(logits/cap) when `final_logit_softcapping` is set."""
    c = text_config(config)
    return lm_logits(w, c, final_norm(w, config, hidden), "embed_tokens.weight", tied_by_default=True)


def output_projection(w: Weights, layer: int) -> np.ndarray:
    return w[f"layers.{layer}.self_attn.o_proj.weight"].T

"""Gemma 2 (`gemma2`): Gemma 3's layer without the q/k norms, with a soft-cap on the scores.

A pre- and post-norm decoder (four (1 + w) RMSNorms per layer: input, post-attention,
pre-feed-forward, post-feed-forward); embeddings scaled by √hidden; RoPE with one θ for every
layer; Q·Kᵀ scaled by query_pre_attn_scalar^-½; the scaled scores soft-capped,
cap·tanh(s/cap) (`attn_logit_softcapping`, `Hyper.attn_softcap`), before the mask and the
softmax; layers alternating sliding-window (the even ones) and global attention; GeGLU
feed-forward with the tanh GELU; tied embeddings; the next-token logits soft-capped too
(`final_logit_softcapping`). Weight names follow transformers' `Gemma2Model` (`model.` prefix).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from ..errors import ModelError
from ..maths.ops import apply_rope, gelu_tanh, linear, merge_heads, rope_angles, split_heads
from . import llama
from .architecture import Architecture, GGUFLayout
from .base import LayerTrace, Weights, attend, kept, run_layers
from .gemma3 import GGUF_TENSORS, GLOBAL, SLIDING, final_norm, from_gguf, logits, output_projection, rms_norm
from .hyper import MAX_POSITIONS, ConfigValues, Hyper, head_dim
from .runtime import row_local, rows_runner

# Gemma2Config's defaults for what config.json leaves out (a key set to null is not left out:
# a null cap or window means none, as transformers reads it).
DEFAULTS = {
    "head_dim": 256, "rms_norm_eps": 1e-6, "query_pre_attn_scalar": 256, "sliding_window": 4096, "hidden_activation": "gelu_pytorch_tanh",
    "max_position_embeddings": 8192, "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0,
}


def layer_kinds(c: ConfigValues, layers: int) -> list[str]:
    """`sliding_attention` or `full_attention` per layer: `layer_types`, else Gemma2Config's
    alternation (layer 0 slides, layer 1 sees everything, …)."""
    kinds = c.config.get("layer_types") or [SLIDING if (i + 1) % 2 else GLOBAL for i in range(layers)]
    if not isinstance(kinds, list) or len(kinds) != layers or set(kinds) - {SLIDING, GLOBAL}:
        problem = f"config.json: layer_types does not give sliding_attention or full_attention for each of the {layers} layers"
        raise ModelError(problem, "re-download config.json")
    return kinds


def optional_number(c: ConfigValues, key: str) -> float | None:
    """A positive number, or None where config.json sets the key to null (no cap)."""
    return None if c.config.get(key) is None else c.number(key)


def parse(config: dict) -> Hyper:
    c = ConfigValues(DEFAULTS | config)
    c.choice("hidden_activation", ("gelu_pytorch_tanh", "gelu_tanh"), what="Gemma 2 hidden_activation")
    if c.boolean("use_bidirectional_attention", False):
        raise ModelError("config.json: use_bidirectional_attention is true: bidirectional Gemma 2 is not supported", "use a causal Gemma 2 model")
    if c.boolean("attention_bias", False):
        raise ModelError("config.json: attention_bias is true: Gemma 2 with biases on q, k, v, o is not supported", "use a Gemma 2 model without them")
    layers, hidden, heads = c.integer("num_hidden_layers"), c.integer("hidden_size"), c.integer("num_attention_heads")
    kinds = layer_kinds(c, layers)
    window = None if c.config.get("sliding_window") is None else c.integer("sliding_window", high=MAX_POSITIONS)
    dim = head_dim(c, hidden, heads)
    return Hyper(
        model_type="gemma2",
        layers=layers,
        heads=heads,
        kv_heads=c.integer("num_key_value_heads", heads),
        head_dim=dim,
        hidden=hidden,
        max_positions=c.integer("max_position_embeddings", high=MAX_POSITIONS),
        causal=True,
        eps=c.number("rms_norm_eps"),
        activation="gelu_tanh",
        query_scale=c.number("query_pre_attn_scalar") ** -0.5,
        windows=tuple(window if kind == SLIDING else None for kind in kinds),
        inv_freq=(llama.rope_frequencies(config, dim),) * layers,
        lm_head="embed_tokens.weight" if c.boolean("tie_word_embeddings", True) else "lm_head.weight",
        final_softcap=optional_number(c, "final_logit_softcapping"),
        attn_softcap=optional_number(c, "attn_logit_softcapping"),
    )


def block(x, w: Weights, layer: int, s: Hyper, cos, sin, cache=None, whole: bool = True, iv=None) -> LayerTrace:
    """One layer: x + norm(attention(norm(x))), then x + norm(GeGLU(norm(x))), the attention's
    scaled scores soft-capped (`attend` reads `s.attn_softcap`). With a KV cache, x is the new
    tokens only. Not `whole` (and no cache): q, k and v only (`base.layer_plan`). The steps
    before and after attention are row-local (`runtime.row_local`)."""
    p = f"layers.{layer}."
    run = rows_runner(len(x)) if iv is None else None  # an intervened pass runs on one thread: its captures are whole arrays
    norm_in = w[f"{p}input_layernorm.weight"]
    wq, wk, wv, wo = (w[f"{p}self_attn.{n}_proj.weight"] for n in "qkvo")
    post_attention, pre_ffn, post_ffn = (w[f"{p}{n}.weight"] for n in ("post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm"))
    gate, up, down = (w[f"{p}mlp.{n}_proj.weight"] for n in ("gate", "up", "down"))
    heads, kv = s.heads * s.head_dim, s.kv_heads * s.head_dim

    def project(x, cos, sin):
        """Norm, q, k, v, RoPE: (rows, hidden) -> q, k, v, q after RoPE, k after RoPE, each (rows, heads·head_dim)."""
        h = rms_norm(x, norm_in, s.eps)
        q = linear(h, wq).reshape(len(x), s.heads, s.head_dim)
        k = linear(h, wk).reshape(len(x), s.kv_heads, s.head_dim)
        flat = lambda a: a.reshape(len(x), -1)  # noqa: E731
        return flat(q), flat(k), linear(h, wv), flat(apply_rope(q, cos, sin)), flat(apply_rope(k, cos, sin))

    parts = row_local(run, project, (heads, kv, kv, heads, kv), x, cos, sin)
    q, k, v, q_rope, k_rope = (split_heads(a, n) for a, n in zip(parts, (s.heads, s.kv_heads, s.kv_heads, s.heads, s.kv_heads), strict=True))
    if not whole and cache is None:
        return LayerTrace(layer, s, q_rope, k_rope, v, None, None, q_pre_rope=q, k_pre_rope=k)
    head_output, k_all, v_all, start = attend(q_rope, k_rope, v, s, layer, cache, iv, run)
    ffn = []

    def tail(merged: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Output projection, norm, residual; norm, GeGLU, norm, residual: (rows, heads·d), (rows, hidden) -> (rows, hidden)."""
        x = x + rms_norm(linear(merged, wo), post_attention, s.eps)
        h = rms_norm(x, pre_ffn, s.eps)
        fed = linear(gelu_tanh(linear(h, gate)) * linear(h, up), down)
        ffn.append(kept(iv, "ffn", fed))
        return x + rms_norm(fed, post_ffn, s.eps)

    x = row_local(run, tail, s.hidden, merge_heads(head_output), x)
    k_pre = k if cache is None else None  # the new tokens' keys only: the cache keeps them after RoPE
    return LayerTrace(layer, s, q_rope, k_all, v_all, head_output, x, q_pre_rope=q, k_pre_rope=k_pre, start=start, interventions=iv, ffn=ffn[0])


def forward(w: Weights, s: Hyper, input_ids: np.ndarray, cache=None, through=None, interventions=None) -> Iterator[LayerTrace]:
    """One `LayerTrace` per layer (up to `through`: see `base.layer_plan`); with a KV cache,
    `input_ids` follow the cached positions."""
    start = 0 if cache is None else cache.length
    cos, sin = rope_angles(s.inv_freq[0], len(input_ids), start)
    x = w.rows("embed_tokens.weight", input_ids) * np.float32(math.sqrt(s.hidden))
    return run_layers(x, s.layers, through, lambda x, layer, whole: block(x, w, layer, s, cos, sin, cache, whole, interventions), interventions)


LAYERS_27B = 46  # llama.cpp scales Gemma 2 27B's Q·Kᵀ by (hidden/heads)^-½, the others' by head_dim^-½


def gguf_config(metadata: dict, get, config: dict) -> dict:
    """Gemma 2's settings from a GGUF file's metadata: its window, caps and RoPE θ (every
    other layer slides, as in llama.cpp and transformers)."""
    # GGUF has no query_pre_attn_scalar: llama.cpp infers it from the model's size, as here.
    scalar = config["hidden_size"] // config["num_attention_heads"] if config["num_hidden_layers"] == LAYERS_27B else config["head_dim"]
    return {
        "hidden_activation": "gelu_pytorch_tanh",
        "query_pre_attn_scalar": scalar,
        "sliding_window": int(get("attention.sliding_window")),
        "attn_logit_softcapping": float(np.float32(get("attn_logit_softcapping"))),
        "final_logit_softcapping": float(np.float32(get("final_logit_softcapping"))),
        "rope_parameters": llama.gguf_rope(get),
    }


GGUF = GGUFLayout({"gemma2": "gemma2"}, GGUF_TENSORS, from_gguf, gguf_config)
ARCHITECTURE = Architecture("gemma2", parse, forward, final_norm, output_projection, ("model.",), logits=logits, gguf=GGUF)

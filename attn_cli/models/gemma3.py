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
from ..maths.ops import gelu_tanh, linear, rope_angles
from . import base, llama
from .architecture import Architecture, GGUFLayout
from .base import LayerTrace, Weights, kept, rope_parts, rotary_layer, run_layers
from .hyper import MAX_POSITIONS, ConfigValues, Hyper, decoder_hyper, head_dim
from .runtime import rows_runner

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


def parse(config: dict) -> Hyper:
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
    window = c.integer("sliding_window", high=MAX_POSITIONS)
    dim = head_dim(c, hidden, heads)
    inv_freq = {kind: llama.rope_frequencies({"rope_parameters": rope_parameters(t, kind)}, dim) for kind in set(kinds)}
    cap = t.get("final_logit_softcapping")
    model_type = ConfigValues(config).string("model_type")  # gemma3 for an image+text checkpoint: its text model is what runs
    return decoder_hyper(
        c, model_type, layers, heads, dim, tied=True,
        eps=c.number("rms_norm_eps"),
        activation="gelu_tanh",
        query_scale=c.number("query_pre_attn_scalar") ** -0.5,
        windows=tuple(window if kind == SLIDING else None for kind in kinds),
        inv_freq=tuple(inv_freq[kind] for kind in kinds),
        final_softcap=None if cap is None else c.number("final_logit_softcapping"),
    )


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    """Gemma's RMSNorm over the last axis, x·rsqrt(mean(x²) + eps)·(1 + w): (..., d) -> (..., d)."""
    inverse = np.float32(1.0) / np.sqrt(np.square(x).mean(axis=-1, keepdims=True) + np.float32(eps))
    return (x * inverse) * (np.float32(1.0) + weight)


def block(x, w: Weights, layer: int, s: Hyper, cos, sin, cache=None, whole: bool = True, iv=None) -> LayerTrace:
    """One layer: x + norm(attention(norm(x))), then x + norm(GeGLU(norm(x))); Gemma 3 norms each
    head's q and k, Gemma 2 (which reads this block too) does not. With a KV cache,
    x is the new tokens only (the cache keeps every position; a sliding layer's mask drops the old).
    Not `whole` (and no cache): q, k and v only (`base.layer_plan`). The steps before and after
    attention are row-local: one split of the rows between threads each (`runtime.row_local`)."""
    p = f"layers.{layer}."
    run = rows_runner(len(x)) if iv is None else None  # an intervened pass runs on one thread: its captures are whole arrays
    norm_in = w[f"{p}input_layernorm.weight"]
    q_norm, k_norm = (w[f"{p}self_attn.{n}_norm.weight"] if f"{p}self_attn.{n}_norm.weight" in w else None for n in "qk")  # Gemma 2 has none
    wq, wk, wv, wo = (w[f"{p}self_attn.{n}_proj.weight"] for n in "qkvo")
    post_attention, pre_ffn, post_ffn = (w[f"{p}{n}.weight"] for n in ("post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm"))
    gate, up, down = (w[f"{p}mlp.{n}_proj.weight"] for n in ("gate", "up", "down"))

    def project(x, cos, sin):
        """Norm, q, k, v, each head's q and k normed, RoPE: (rows, hidden) -> q, k, v, q after
        RoPE, k after RoPE, each (rows, heads·head_dim)."""
        h = rms_norm(x, norm_in, s.eps)
        q = linear(h, wq).reshape(len(x), s.heads, s.head_dim)
        k = linear(h, wk).reshape(len(x), s.kv_heads, s.head_dim)
        if q_norm is not None:
            q, k = rms_norm(q, q_norm, s.eps), rms_norm(k, k_norm, s.eps)
        return rope_parts(q, k, linear(h, wv), cos, sin)

    def tail(merged: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Output projection, norm, residual; norm, GeGLU, norm, residual: (rows, heads·d), (rows, hidden) -> (rows, hidden), the kept GeGLU output."""
        x = x + rms_norm(linear(merged, wo), post_attention, s.eps)
        h = rms_norm(x, pre_ffn, s.eps)
        fed = linear(gelu_tanh(linear(h, gate)) * linear(h, up), down)
        return x + rms_norm(fed, post_ffn, s.eps), kept(iv, "ffn", fed)

    return rotary_layer(x, s, layer, cos, sin, project, tail, run, cache, whole, iv)


def forward(w: Weights, s: Hyper, input_ids: np.ndarray, cache=None, through=None, interventions=None) -> Iterator[LayerTrace]:
    """One `LayerTrace` per layer (up to `through`: see `base.layer_plan`); with a KV cache,
    `input_ids` follow the cached positions. Each layer kind has its own RoPE frequencies."""
    start = 0 if cache is None else cache.length
    angles = {id(f): rope_angles(f, len(input_ids), start) for f in s.inv_freq}  # the layers of a kind share one array
    x = w.rows("embed_tokens.weight", input_ids) * np.float32(math.sqrt(s.hidden))
    step = lambda x, layer, whole: block(x, w, layer, s, *angles[id(s.inv_freq[layer])], cache, whole, interventions)  # noqa: E731
    return run_layers(x, s.layers, through, step, interventions)


def final_norm(w: Weights, s: Hyper, hidden: np.ndarray) -> np.ndarray:
    return rms_norm(hidden, w["norm.weight"], s.eps)


def logits(w: Weights, s: Hyper, hidden: np.ndarray, head: np.ndarray | None = None) -> np.ndarray:
    """Next-token logits (seq, vocab): the final norm, the tied embeddings, then the soft-cap
    cap·tanh(logits/cap) when `final_logit_softcapping` is set."""
    return base.logits(final_norm(w, s, hidden), base.lm_head(w, s) if head is None else head, s)


def output_projection(w: Weights, layer: int) -> np.ndarray:
    return w[f"layers.{layer}.self_attn.o_proj.weight"].T


GLOBAL_EVERY = 6  # llama.cpp and transformers: every 6th layer is global, the rest slide


def from_gguf(name: str, w: np.ndarray, config: dict) -> np.ndarray:
    """GGUF stores Gemma's norms as 1 + w; the architecture adds the 1 back."""
    return w - np.float32(1.0) if name.endswith("norm.weight") else w


def gguf_config(metadata: dict, get, config: dict) -> dict:
    """Gemma 3's settings from a GGUF file's metadata: its windows, layer kinds and two RoPE θ."""
    return {
        "hidden_activation": "gelu_pytorch_tanh",
        # GGUF has no query_pre_attn_scalar: llama.cpp scales by head_dim, which the
        # checkpoints up to 12B use (and transformers' default, 256, is head_dim there).
        "query_pre_attn_scalar": config["head_dim"],
        "sliding_window": int(get("attention.sliding_window")),
        "layer_types": [GLOBAL if (i + 1) % GLOBAL_EVERY == 0 else SLIDING for i in range(config["num_hidden_layers"])],
        "rope_parameters": {
            GLOBAL: llama.gguf_rope(get, DEFAULT_THETA[GLOBAL]),
            SLIDING: {"rope_type": "default", "rope_theta": float(np.float32(get("rope.freq_base_swa", DEFAULT_THETA[SLIDING])))},
        },
    }


GGUF_TENSORS = llama.GGUF_TENSORS | {
    "blk.{n}.ffn_norm.weight": "layers.{n}.pre_feedforward_layernorm.weight",
    "blk.{n}.post_attention_norm.weight": "layers.{n}.post_attention_layernorm.weight",
    "blk.{n}.post_ffw_norm.weight": "layers.{n}.post_feedforward_layernorm.weight",
}
GGUF = GGUFLayout({"gemma3": "gemma3_text"}, GGUF_TENSORS, from_gguf, gguf_config)
ARCHITECTURE = Architecture(
    "gemma3", parse, forward, final_norm, output_projection, ("model.language_model.", "language_model.model.", "model."), logits=logits, gguf=GGUF
)

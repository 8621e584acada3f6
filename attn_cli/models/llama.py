"""The Llama family: `llama`, `mistral`, `qwen2`, `qwen3`.

Pre-RMSNorm decoder; rotary position embeddings (RoPE) on q and k; grouped-query attention
(fewer key/value heads than query heads); SwiGLU feed-forward. The members differ only in:
Mistral's sliding window, Qwen2's biases on q/k/v, Qwen3's RMSNorm on each head's q and k
before RoPE. Weight names follow Hugging Face's `LlamaModel` (`model.` prefix accepted). Its
`block` takes another feed-forward in SwiGLU's place: `moe` runs Mixtral and Qwen3-MoE so.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import numpy as np

from ..errors import ModelError
from ..maths import rope
from ..maths.ops import linear, rms_norm, rope_angles, silu
from . import base
from .architecture import Architecture, GGUFLayout
from .base import LayerTrace, Weights, kept, rope_parts, rotary_layer, run_layers
from .hyper import MAX_POSITIONS, ConfigValues, Hyper, decoder_hyper, head_dim, windows
from .runtime import rows_runner

ROPE_TYPES = ("default", "linear", "llama3")


def parse(config: dict) -> Hyper:
    c = ConfigValues(config)
    model_type = c.string("model_type")
    hidden, heads = c.integer("hidden_size"), c.integer("num_attention_heads")
    c.choice("hidden_act", ("silu",), "silu", f"{model_type} hidden_act")
    window = c.integer("sliding_window", None, high=MAX_POSITIONS) if model_type in ("mistral", "mixtral") else None
    if model_type in ("qwen2", "qwen3", "qwen3_moe") and c.boolean("use_sliding_window", False):
        raise ModelError(f"{model_type} with use_sliding_window is not supported", "use a model without a sliding window")
    layers, dim = c.integer("num_hidden_layers"), head_dim(c, hidden, heads)
    return decoder_hyper(
        c, model_type, layers, heads, dim,
        eps=c.number("rms_norm_eps", 1e-6),
        activation="silu",
        windows=windows(layers, window),
        inv_freq=(rope_frequencies(config, dim),) * layers,
    )


def _rope_parameters(config: dict) -> dict:
    """RoPE settings, from transformers 5's `rope_parameters` or 4's `rope_theta` + `rope_scaling`."""
    c = ConfigValues(config)
    key = "rope_parameters" if config.get("rope_parameters") else "rope_scaling"
    params = dict(c.mapping(key))
    params.setdefault("rope_theta", config.get("rope_theta", 10000.0))
    p = ConfigValues(params)
    rope_type = p.choice("rope_type", ROPE_TYPES, p.string("type", "default"), f"{key}.rope_type")
    p.number("rope_theta")
    required = {"linear": ("factor",), "llama3": ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")}
    for name in required.get(rope_type, ()):
        try:
            p.number(name)
        except ModelError as exc:
            message = f"{key}: {exc.message.removeprefix('config.json: ')}"
            raise ModelError(message, f"give {key} its {rope_type} keys: {', '.join(required[rope_type])}") from None
    if rope_type == "llama3" and params["low_freq_factor"] == params["high_freq_factor"]:
        message = f"{key}: low_freq_factor equals high_freq_factor ({params['low_freq_factor']})"
        raise ModelError(message, "correct them: llama3 scaling blends between two different factors")
    # transformers 5 keeps partial_rotary_factor in rope_parameters, 4 at the top level
    fraction = p.number("partial_rotary_factor", c.number("partial_rotary_factor", 1.0))
    if fraction > 1.0:
        raise ModelError(f"{key}: partial_rotary_factor is {fraction}, expected a number from 0 to 1", "correct partial_rotary_factor")
    return params | {"rope_type": rope_type, "partial_rotary_factor": fraction}


def rope_frequencies(config: dict, head_dim: int, partial: bool = False) -> np.ndarray:
    """inv_freq (rotary/2,) float32: θ^(-2i/rotary), adjusted by the config's RoPE scaling,
    bit for bit as transformers computes it (see `maths.rope`). rotary is head_dim, or under
    partial rotary (`partial`: the family's attention rotates only part of each head, as
    GPT-NeoX and Phi do) int(head_dim · partial_rotary_factor), as transformers rounds it.
    A family whose attention rotates the whole head (`partial` False) refuses a factor below 1."""
    params = _rope_parameters(config)
    fraction = params["partial_rotary_factor"]
    if fraction != 1.0 and not partial:
        raise ModelError("partial rotary embeddings are not supported for this architecture", "use a model that rotates the whole head")
    rotary = int(head_dim * fraction)
    if rotary < 2 or rotary % 2:
        raise ModelError(
            f"config.json: partial_rotary_factor {fraction} rotates {rotary} of a head's {head_dim} dimensions, expected an even number",
            "correct partial_rotary_factor",
        )
    inv_freq = rope.inv_freq(params["rope_theta"], rotary)
    if params["rope_type"] == "linear":
        inv_freq = inv_freq / np.float32(params["factor"])
    elif params["rope_type"] == "llama3":
        inv_freq = rope.llama3_scaling(
            inv_freq, params["factor"], params["low_freq_factor"], params["high_freq_factor"], params["original_max_position_embeddings"]
        )
    return inv_freq.astype(np.float32)


def swiglu(h: np.ndarray, gate: np.ndarray, up: np.ndarray, down: np.ndarray) -> np.ndarray:
    """SwiGLU, down(silu(gate(h)) · up(h)): (seq, hidden) -> (seq, hidden)."""
    gated = silu(linear(h, gate))
    gated *= linear(h, up)
    return linear(gated, down)


def mlp_weights(w: Weights, layer: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A dense layer's SwiGLU weights: gate, up (inner, hidden) and down (hidden, inner)."""
    return tuple(w[f"layers.{layer}.mlp.{n}_proj.weight"] for n in ("gate", "up", "down"))


def block(x, w: Weights, layer: int, s: Hyper, cos, sin, cache=None, whole: bool = True, iv=None, feed_forward=None) -> LayerTrace:
    """One decoder layer: x + attention(RMSNorm(x)), then + SwiGLU(RMSNorm(x)). With a KV
    cache, x is the new tokens only and cos, sin their positions' angles. Not `whole` (and no
    cache): q, k and v only (`base.layer_plan`). The steps before and after attention are
    row-local: one split of the rows between threads each (`runtime.row_local`).
    `feed_forward(h, layer) -> (output, routing)`: another feed-forward in SwiGLU's place (a
    mixture of experts: `moe`), whose `base.Routing` (or None) the trace keeps."""
    p = f"layers.{layer}."
    run = rows_runner(len(x)) if iv is None else None  # an intervened pass runs on one thread: its captures are whole arrays
    norm_in, norm_mid = w[f"{p}input_layernorm.weight"], w[f"{p}post_attention_layernorm.weight"]
    wq, wk, wv, wo = (w[f"{p}self_attn.{n}_proj.weight"] for n in "qkvo")
    bq, bk, bv = (w[f"{p}self_attn.{n}_proj.bias"] if f"{p}self_attn.{n}_proj.bias" in w else None for n in "qkv")  # Qwen2
    q_norm, k_norm = (w[f"{p}self_attn.{n}_norm.weight"] if f"{p}self_attn.{n}_norm.weight" in w else None for n in "qk")  # Qwen3
    dense = mlp_weights(w, layer) if feed_forward is None else None

    def project(x, cos, sin):
        """RMSNorm, q, k, v (Qwen3: each head's q and k RMSNorm'd), RoPE: (rows, hidden) ->
        q, k, v, q after RoPE, k after RoPE, each (rows, heads·head_dim)."""
        h = rms_norm(x, norm_in, s.eps)
        q = linear(h, wq, bq).reshape(len(x), s.heads, s.head_dim)
        k = linear(h, wk, bk).reshape(len(x), s.kv_heads, s.head_dim)
        if q_norm is not None:
            q, k = rms_norm(q, q_norm, s.eps), rms_norm(k, k_norm, s.eps)
        return rope_parts(q, k, linear(h, wv, bv), cos, sin)

    routing = []

    def tail(merged: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Output projection, residual; RMSNorm, SwiGLU, residual: (rows, heads·d), (rows, hidden) -> (rows, hidden), the kept SwiGLU output."""
        x = _plus(linear(merged, wo), x)
        h = rms_norm(x, norm_mid, s.eps)
        fed, routed = (swiglu(h, *dense), None) if feed_forward is None else feed_forward(h, layer)
        routing.append(routed)
        captured = kept(iv, "ffn", fed)  # before _plus writes into fed
        return _plus(fed, x), captured

    # A mixture of experts routes every row at once (one Routing per layer): its tail runs on one thread.
    trace = rotary_layer(x, s, layer, cos, sin, project, tail, run, cache, whole, iv, tail_whole=feed_forward is not None)
    return replace(trace, routing=routing[0]) if routing and routing[0] is not None else trace


def _plus(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The residual x + y, into y (a fresh product): the same sums, one array fewer."""
    y += x
    return y


def rotary_decoder(block):
    """The forward pass of a decoder of Llama's shape around its `block(x, w, layer, s, cos, sin,
    cache, whole, iv)`: token embeddings, one set of RoPE angles for every layer (Llama, OLMo 2,
    Phi-3, the mixtures of experts). With a KV cache (`models.cache.KVCache`), `input_ids` are
    the tokens after the cached ones, at positions cache.length onwards."""

    def forward(w: Weights, s: Hyper, input_ids: np.ndarray, cache=None, through=None, interventions=None) -> Iterator[LayerTrace]:
        start = 0 if cache is None else cache.length
        cos, sin = rope_angles(s.inv_freq[0], len(input_ids), start)
        x = w.rows("embed_tokens.weight", input_ids)
        return run_layers(x, s.layers, through, lambda x, layer, whole: block(x, w, layer, s, cos, sin, cache, whole, interventions), interventions)

    return forward


forward = rotary_decoder(block)


def final_norm(w: Weights, s: Hyper, hidden: np.ndarray) -> np.ndarray:
    """The last hidden state as transformers reports it: the final RMSNorm of the last layer's output."""
    return rms_norm(hidden, w["norm.weight"], s.eps)


def logits(w: Weights, s: Hyper, hidden: np.ndarray, head: np.ndarray | None = None) -> np.ndarray:
    """Next-token logits (seq, vocab): the final RMSNorm, then lm_head (or the embeddings, if tied)."""
    return base.logits(final_norm(w, s, hidden), base.lm_head(w, s) if head is None else head, s)


def output_projection(w: Weights, layer: int) -> np.ndarray:
    """W_O of the layer in x·W layout, (heads·head_dim, hidden)."""
    return w[f"layers.{layer}.self_attn.o_proj.weight"].T


# llama.cpp's tensor names -> this family's. `{n}` is the layer.
GGUF_TENSORS = {
    "token_embd.weight": "embed_tokens.weight",
    "output_norm.weight": "norm.weight",
    "output.weight": "lm_head.weight",
    "blk.{n}.attn_norm.weight": "layers.{n}.input_layernorm.weight",
    "blk.{n}.attn_q.weight": "layers.{n}.self_attn.q_proj.weight",
    "blk.{n}.attn_k.weight": "layers.{n}.self_attn.k_proj.weight",
    "blk.{n}.attn_v.weight": "layers.{n}.self_attn.v_proj.weight",
    "blk.{n}.attn_q.bias": "layers.{n}.self_attn.q_proj.bias",
    "blk.{n}.attn_k.bias": "layers.{n}.self_attn.k_proj.bias",
    "blk.{n}.attn_v.bias": "layers.{n}.self_attn.v_proj.bias",
    "blk.{n}.attn_output.weight": "layers.{n}.self_attn.o_proj.weight",
    "blk.{n}.attn_q_norm.weight": "layers.{n}.self_attn.q_norm.weight",
    "blk.{n}.attn_k_norm.weight": "layers.{n}.self_attn.k_norm.weight",
    "blk.{n}.ffn_norm.weight": "layers.{n}.post_attention_layernorm.weight",  # the norm before the MLP
    "blk.{n}.ffn_gate.weight": "layers.{n}.mlp.gate_proj.weight",
    "blk.{n}.ffn_up.weight": "layers.{n}.mlp.up_proj.weight",
    "blk.{n}.ffn_down.weight": "layers.{n}.mlp.down_proj.weight",
}


def unpermute_rows(w: np.ndarray, heads: int) -> np.ndarray:
    """Undo llama.cpp's reordering of Q and K rows for Llama (its converter interleaves each
    head's two rotary halves): (heads·d, in) -> (heads·d, in), as transformers' GGUF loader does."""
    half = w.shape[0] // heads // 2
    return w.reshape(heads, half, 2, *w.shape[1:]).swapaxes(2, 1).reshape(w.shape)


def from_gguf(name: str, w: np.ndarray, config: dict) -> np.ndarray:
    """A tensor as transformers has it: llama.cpp permuted Llama's (not Qwen's) Q and K rows."""
    if config["model_type"] == "llama" and name.endswith(("q_proj.weight", "k_proj.weight")):
        heads = config["num_attention_heads" if name.endswith("q_proj.weight") else "num_key_value_heads"]
        w = unpermute_rows(w, heads)
    return w


def gguf_rope(get, theta: float = 10000.0) -> dict:
    """RoPE's settings from a GGUF file's metadata (`get(key, default)` reads `<arch>.<key>`)."""
    params = {"rope_type": "default", "rope_theta": float(np.float32(get("rope.freq_base", theta)))}
    scaling = get("rope.scaling.type", "none")
    if scaling != "none":
        if scaling != "linear":
            raise ModelError(f"the file uses RoPE scaling {scaling!r}, which attn does not support for GGUF", "use a model with linear or no RoPE scaling")
        params |= {"rope_type": "linear", "factor": float(get("rope.scaling.factor"))}
    return params


def gguf_config(metadata: dict, get, config: dict) -> dict:
    """A Llama-family GGUF file's own settings: RoPE's and the activation."""
    return {"hidden_act": "silu", "rope_parameters": gguf_rope(get)}


GGUF = GGUFLayout({"llama": "llama", "qwen2": "qwen2", "qwen3": "qwen3"}, GGUF_TENSORS, from_gguf, gguf_config)
ARCHITECTURE = Architecture("llama", parse, forward, final_norm, output_projection, ("model.",), logits=logits, gguf=GGUF)

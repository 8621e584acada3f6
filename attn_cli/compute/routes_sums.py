"""The two sums of a decoder layer that `routes` splits into parts, for every decoder family attn
reads, by one mechanism (docs/contributions.md#routes):

- the attention's write A_t to the residual stream is z_t = Σ_h Σ_j α_tj^h·v_j^h·W_O^h + b_O,
  or, where the family norms it before the residual sum (Gemma 2 and 3, OLMo 2: x +
  RMSNorm(z)), that norm linearised as ALTI linearises it: RMSNorm(z)_t = z_t ⊙ g/r_t with
  r_t = √(mean(z_t²) + ε) the row's statistic, so each head's part is its write times the same
  row scale g/r_t and the parts still add up to A_t exactly (an RMSNorm has no bias; a norm's
  bias would go with b_V·W_O and b_O: into the sum, no part of its own);
- the feed-forward's write F_t is its output, after its own norm where it has one (Gemma, OLMo 2's
  post-feed-forward RMSNorm): one part whether the FFN is dense or a routed sum of experts (MoE);
- the attention's sum is mid_t = y_t - F_t = x_t + A_t (y_t the layer output, x_t its input). A
  sequential layer is x → mid → y; a parallel one (GPT-NeoX's `use_parallel_residual`) is
  y = x + A + F, both branches reading x: one sum of the residual, every head's part and F.

Only where the families keep their weights differs (`WIRING`): the mechanism is shared.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..loading.model import Model, Weights
from ..maths.ops import merge_heads
from ..models.hyper import Hyper
from ..records import frozen
from .contrib_matrices import head_vectors

Getter = Callable[[Weights, int, Hyper], "np.ndarray | None"]


def _none(w: Weights, layer: int, s: Hyper) -> None:
    return None


def _named(pattern: str, gain: float = 0.0) -> Getter:
    """The tensor `pattern.format(layer)` (plus `gain`: Gemma's norms scale by 1 + w), or None where the checkpoint has none."""

    def get(w: Weights, layer: int, s: Hyper) -> np.ndarray | None:
        name = pattern.format(layer)
        return w[name].astype(np.float64) + gain if name in w else None

    return get


def _gpt2_value_bias(w: Weights, layer: int, s: Hyper) -> np.ndarray:
    return w[f"h.{layer}.attn.c_attn.bias"][2 * s.hidden :]  # the fused q, k, v bias: v is the last third


def _neox_value_bias(w: Weights, layer: int, s: Hyper) -> np.ndarray | None:
    name = f"layers.{layer}.attention.query_key_value.bias"  # laid out per head, (heads, 3, head_dim): v is each head's third
    return w[name].reshape(s.heads, 3, s.head_dim)[:, 2].reshape(-1) if name in w else None


def _phi3_value_bias(w: Weights, layer: int, s: Hyper) -> np.ndarray | None:
    name = f"layers.{layer}.self_attn.qkv_proj.bias"  # q | k | v: v is the last kv_heads·head_dim
    return w[name][(s.heads + s.kv_heads) * s.head_dim :] if name in w else None


@frozen
class Wiring:
    """Where a family keeps b_V ((kv_heads·head_dim,)), b_O ((hidden,)) and the gains (hidden,) of
    the norms on the attention's and the feed-forward's writes (None: none)."""

    value_bias: Getter = _none
    output_bias: Getter = _none
    attention_norm: Getter = _none
    ffn_norm: Getter = _none


_LLAMA = Wiring(_named("layers.{}.self_attn.v_proj.bias"), _named("layers.{}.self_attn.o_proj.bias"))
_GEMMA = Wiring(
    attention_norm=_named("layers.{}.post_attention_layernorm.weight", 1.0), ffn_norm=_named("layers.{}.post_feedforward_layernorm.weight", 1.0)
)
WIRING = {
    "gpt2": Wiring(_gpt2_value_bias, _named("h.{}.attn.c_proj.bias")),
    **dict.fromkeys(("llama", "mistral", "qwen2", "qwen3", "mixtral", "qwen3_moe"), _LLAMA),
    "phi3": Wiring(_phi3_value_bias, _named("layers.{}.self_attn.o_proj.bias")),
    "gpt_neox": Wiring(_neox_value_bias, _named("layers.{}.attention.dense.bias")),
    **dict.fromkeys(("gemma2", "gemma3", "gemma3_text"), _GEMMA),
    "olmo2": Wiring(
        _LLAMA.value_bias, _LLAMA.output_bias,
        _named("layers.{}.post_attention_layernorm.weight"), _named("layers.{}.post_feedforward_layernorm.weight"),
    ),
}


@frozen
class LayerSums:
    """One layer's sums, each (seq, hidden) float64: its input x, the attention's sum mid = x + A,
    the feed-forward's write F and the output y; `scale` the linearised norm's row scale g/r_t on
    the attention's parts (None: no norm), `bias` the attention's write that is no head's part
    ((Σ_h b_V^h·W_O^h + b_O), times the scale); `parallel`: y = x + A + F, both reading x."""

    x: np.ndarray
    mid: np.ndarray
    ffn: np.ndarray
    post: np.ndarray
    scale: np.ndarray | None
    bias: np.ndarray
    parallel: bool


def rms_scale(z: np.ndarray, gain: np.ndarray, eps: float) -> np.ndarray:
    """The RMSNorm of z linearised: g/√(mean(z²) + ε) per row, (seq, hidden) -> (seq, hidden)."""
    return gain[None] / np.sqrt(np.square(z).mean(axis=-1, keepdims=True) + eps)


def layer_sums(model: Model, trace, x: np.ndarray, post: np.ndarray) -> LayerSums:
    """The sums of the layer `trace` ran (capturing `ffn`) from its input x to its output `post`."""
    s, w, layer = model.spec, model.weights, trace.layer
    wiring = WIRING[s.model_type]
    ffn = trace.ffn.astype(np.float64)
    gain = wiring.ffn_norm(w, layer, s)
    if gain is not None:
        ffn = ffn * rms_scale(ffn, gain, s.eps)
    post = post.astype(np.float64)
    mid = post - ffn
    w_o = model.arch.output_projection(w, layer).astype(np.float64)
    b_o = wiring.output_bias(w, layer, s)
    bias = np.zeros(s.hidden) if b_o is None else b_o.astype(np.float64)
    b_v = head_value_bias(model, trace)
    if b_v is not None:  # Σ_j α_tj = 1: each head writes b_V^h·W_O^h whatever it attends to
        bias = bias + b_v.reshape(-1) @ w_o
    gain, scale = wiring.attention_norm(w, layer, s), None
    bias = np.broadcast_to(bias, mid.shape)
    if gain is not None:
        z = merge_heads(trace.head_output.astype(np.float64)) @ w_o + (0.0 if b_o is None else b_o)
        scale = rms_scale(z, gain, s.eps)
        bias = bias * scale
    return LayerSums(x.astype(np.float64), mid, ffn, post, scale, bias, bool(s.parallel_residual))


def value_vectors(model: Model, trace) -> np.ndarray:
    """(v_j^h - b_V^h)·W_O^h for every head and position: (heads, seq, hidden), float64."""
    s = model.spec
    w_o = model.arch.output_projection(model.weights, trace.layer)
    f = head_vectors(trace, w_o)
    b = head_value_bias(model, trace)
    if b is not None:  # b_V·W_O^h, one vector per head, taken off every position
        f -= np.einsum("hd,hdo->ho", b, w_o.astype(np.float64).reshape(s.heads, s.head_dim, -1))[:, None, :]
    return f


def head_value_bias(model: Model, trace) -> np.ndarray | None:
    """Each head's b_V (a grouped-query head's is its value head's): (heads, head_dim) float64, or None."""
    s = model.spec
    bias = WIRING[s.model_type].value_bias(model.weights, trace.layer, s)
    return None if bias is None else bias.astype(np.float64).reshape(s.kv_heads, s.head_dim)[[trace.kv_head(h) for h in range(s.heads)]]

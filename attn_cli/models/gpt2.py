"""GPT-2 (`model_type: gpt2`): pre-LayerNorm causal decoder with learned positions.

Its linear layers are `Conv1D`: weights stored (in, out), so y = x·W + b with no transpose,
and q, k, v come from one fused `c_attn` projection. The MLP uses the tanh GELU ("gelu_new").
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..errors import ModelError
from ..maths.ops import gelu, gelu_tanh, layer_norm, linear, merge_heads, split_heads
from .base import MAX_POSITIONS, ConfigValues, LayerTrace, ModelSpec, Weights, attend, head_dim, layer_plan, lm_logits
from .runtime import rows_runner

WEIGHT_PREFIXES = ("transformer.",)
ACTIVATIONS = {"gelu_new": gelu_tanh, "gelu_pytorch_tanh": gelu_tanh, "gelu": gelu}


def spec(config: dict) -> ModelSpec:
    c = ConfigValues(config)
    c.choice("activation_function", tuple(ACTIVATIONS), "gelu_new", "GPT-2 activation_function")
    if c.boolean("scale_attn_by_inverse_layer_idx", False) or not c.boolean("scale_attn_weights", True):
        raise ModelError("GPT-2 attention scaling other than 1/√d_k is not supported", "use a standard GPT-2 config")
    c.number("layer_norm_epsilon", 1e-5)
    hidden, heads = c.integer("n_embd"), c.integer("n_head")
    return ModelSpec(
        model_type="gpt2",
        layers=c.integer("n_layer"),
        heads=heads,
        kv_heads=heads,
        head_dim=head_dim(c, hidden, heads, key=None),
        hidden=hidden,
        max_positions=c.integer("n_positions", high=MAX_POSITIONS),
        causal=True,
    )


def conv1d(x: np.ndarray, w: Weights, name: str, run=None) -> np.ndarray:
    """GPT-2's Conv1D: x·W + b with W stored (in, out): `linear` of Wᵀ (a view, no copy)."""
    return linear(x, w[f"{name}.weight"].T, w[f"{name}.bias"], run)


def block(x: np.ndarray, w: Weights, layer: int, s: ModelSpec, config: dict, cache=None, whole: bool = True) -> LayerTrace:
    """x + attention(LayerNorm(x)), then x + MLP(LayerNorm(x)). With a KV cache, x is the new tokens
    only. Not `whole` (and no cache): q, k and v only (`base.layer_plan`)."""
    p = f"h.{layer}."
    eps = config.get("layer_norm_epsilon", 1e-5)
    run = rows_runner(len(x))
    h = layer_norm(x, w[f"{p}ln_1.weight"], w[f"{p}ln_1.bias"], eps, run)
    q, k, v = (split_heads(part, s.heads) for part in np.split(conv1d(h, w, f"{p}attn.c_attn", run), 3, axis=-1))
    if not whole and cache is None:
        return LayerTrace(layer, s, q, k, v, None, None)
    head_output, k, v, start = attend(q, k, v, s, layer, cache, run)
    x = x + conv1d(merge_heads(head_output), w, f"{p}attn.c_proj", run)
    h = layer_norm(x, w[f"{p}ln_2.weight"], w[f"{p}ln_2.bias"], eps, run)
    activation = ACTIVATIONS[config.get("activation_function", "gelu_new")]
    x = x + conv1d(activation(conv1d(h, w, f"{p}mlp.c_fc", run)), w, f"{p}mlp.c_proj", run)
    return LayerTrace(layer, s, q, k, v, head_output, x, start=start)


def forward(w: Weights, s: ModelSpec, config: dict, input_ids: np.ndarray, cache=None, through=None) -> Iterator[LayerTrace]:
    """One `LayerTrace` per layer (up to `through`: see `base.layer_plan`). With a KV cache
    (`models.cache.KVCache`), `input_ids` are the tokens after the cached ones, at positions
    cache.length onwards."""
    start = 0 if cache is None else cache.length
    x = w.rows("wte.weight", input_ids) + w.rows("wpe.weight", np.arange(start, start + len(input_ids)))
    for layer, whole in layer_plan(s.layers, through):
        trace = block(x, w, layer, s, config, cache, whole)
        x = trace.hidden
        yield trace


def final_norm(w: Weights, config: dict, hidden: np.ndarray) -> np.ndarray:
    return layer_norm(hidden, w["ln_f.weight"], w["ln_f.bias"], config.get("layer_norm_epsilon", 1e-5))


def logits(w: Weights, config: dict, hidden: np.ndarray) -> np.ndarray:
    """Next-token logits (seq, vocab): ln_f, then the LM head, which GPT-2 ties to wte."""
    return lm_logits(w, config, final_norm(w, config, hidden), "wte.weight", tied_by_default=True)


def output_projection(w: Weights, layer: int) -> np.ndarray:
    """W_O of the layer in x·W layout, (heads·head_dim, hidden): Conv1D already stores it so."""
    return w[f"h.{layer}.attn.c_proj.weight"]

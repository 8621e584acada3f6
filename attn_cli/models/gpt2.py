"""GPT-2 (`model_type: gpt2`): pre-LayerNorm causal decoder with learned positions.

Its linear layers are `Conv1D`: weights stored (in, out), so y = x·W + b with no transpose,
and q, k, v come from one fused `c_attn` projection. The MLP uses the tanh GELU ("gelu_new").
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..errors import ModelError
from ..maths.ops import gelu, gelu_tanh, layer_norm, linear, merge_heads, split_heads
from . import base
from .architecture import Architecture
from .base import LayerTrace, Weights, attend, kept, run_layers
from .hyper import MAX_POSITIONS, ConfigValues, Hyper, head_dim
from .runtime import rows_runner

ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu"}
FUNCTIONS = {"gelu_tanh": gelu_tanh, "gelu": gelu}


def parse(config: dict) -> Hyper:
    c = ConfigValues(config)
    activation = c.choice("activation_function", tuple(ACTIVATIONS), "gelu_new", "GPT-2 activation_function")
    if c.boolean("scale_attn_by_inverse_layer_idx", False) or not c.boolean("scale_attn_weights", True):
        raise ModelError("GPT-2 attention scaling other than 1/√d_k is not supported", "use a standard GPT-2 config")
    hidden, heads = c.integer("n_embd"), c.integer("n_head")
    return Hyper(
        model_type="gpt2",
        layers=c.integer("n_layer"),
        heads=heads,
        kv_heads=heads,
        head_dim=head_dim(c, hidden, heads, key=None),
        hidden=hidden,
        max_positions=c.integer("n_positions", high=MAX_POSITIONS),
        causal=True,
        eps=c.number("layer_norm_epsilon", 1e-5),
        activation=ACTIVATIONS[activation],
        lm_head="wte.weight" if c.boolean("tie_word_embeddings", True) else "lm_head.weight",
    )


def conv1d(x: np.ndarray, w: Weights, name: str, run=None) -> np.ndarray:
    """GPT-2's Conv1D: x·W + b with W stored (in, out): `linear` of Wᵀ (a view, no copy)."""
    return linear(x, w[f"{name}.weight"].T, w[f"{name}.bias"], run)


def block(x: np.ndarray, w: Weights, layer: int, s: Hyper, cache=None, whole: bool = True, iv=None) -> LayerTrace:
    """x + attention(LayerNorm(x)), then x + MLP(LayerNorm(x)). With a KV cache, x is the new tokens
    only. Not `whole` (and no cache): q, k and v only (`base.layer_plan`)."""
    p = f"h.{layer}."
    run = rows_runner(len(x))
    h = layer_norm(x, w[f"{p}ln_1.weight"], w[f"{p}ln_1.bias"], s.eps, run)
    q, k, v = (split_heads(part, s.heads) for part in np.split(conv1d(h, w, f"{p}attn.c_attn", run), 3, axis=-1))
    if not whole and cache is None:
        return LayerTrace(layer, s, q, k, v, None, None)
    head_output, k, v, start = attend(q, k, v, s, layer, cache, iv, run)
    x = x + conv1d(merge_heads(head_output), w, f"{p}attn.c_proj", run)
    h = layer_norm(x, w[f"{p}ln_2.weight"], w[f"{p}ln_2.bias"], s.eps, run)
    fed = conv1d(FUNCTIONS[s.activation](conv1d(h, w, f"{p}mlp.c_fc", run)), w, f"{p}mlp.c_proj", run)
    return LayerTrace(layer, s, q, k, v, head_output, x + fed, start=start, interventions=iv, ffn=kept(iv, "ffn", fed))


def forward(w: Weights, s: Hyper, input_ids: np.ndarray, cache=None, through=None, interventions=None) -> Iterator[LayerTrace]:
    """One `LayerTrace` per layer (up to `through`: see `base.layer_plan`). With a KV cache
    (`models.cache.KVCache`), `input_ids` are the tokens after the cached ones, at positions
    cache.length onwards."""
    start = 0 if cache is None else cache.length
    x = w.rows("wte.weight", input_ids) + w.rows("wpe.weight", np.arange(start, start + len(input_ids)))
    return run_layers(x, s.layers, through, lambda x, layer, whole: block(x, w, layer, s, cache, whole, interventions), interventions)


def final_norm(w: Weights, s: Hyper, hidden: np.ndarray) -> np.ndarray:
    return layer_norm(hidden, w["ln_f.weight"], w["ln_f.bias"], s.eps)


def logits(w: Weights, s: Hyper, hidden: np.ndarray, head: np.ndarray | None = None) -> np.ndarray:
    """Next-token logits (seq, vocab): ln_f, then the LM head, which GPT-2 ties to wte."""
    return base.logits(final_norm(w, s, hidden), base.lm_head(w, s) if head is None else head, s)


def output_projection(w: Weights, layer: int) -> np.ndarray:
    """W_O of the layer in x·W layout, (heads·head_dim, hidden): Conv1D already stores it so."""
    return w[f"h.{layer}.attn.c_proj.weight"]


ARCHITECTURE = Architecture("gpt2", parse, forward, final_norm, output_projection, ("transformer.",), logits=logits)

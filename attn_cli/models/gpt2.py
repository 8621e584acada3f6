"""GPT-2 (`model_type: gpt2`): pre-LayerNorm causal decoder with learned positions.

Its linear layers are `Conv1D`: weights stored (in, out), so y = x·W + b with no transpose,
and q, k, v come from one fused `c_attn` projection. The MLP uses the tanh GELU ("gelu_new").
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..errors import ModelError
from ..maths.gelu import gelu
from ..maths.ops import gelu_tanh, layer_norm, linear, merge_heads, split_heads
from . import base
from .architecture import Architecture
from .base import LayerTrace, Weights, attend, kept, run_layers
from .hyper import MAX_POSITIONS, ConfigValues, Hyper, head_dim
from .runtime import row_local, rows_runner

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


def block(x: np.ndarray, w: Weights, layer: int, s: Hyper, cache=None, whole: bool = True, iv=None) -> LayerTrace:
    """x + attention(LayerNorm(x)), then x + MLP(LayerNorm(x)). With a KV cache, x is the new tokens
    only. Not `whole` (and no cache): q, k and v only (`base.layer_plan`). The steps before and
    after attention are row-local: one split of the rows between threads each (`runtime.row_local`).
    Its linear layers are Conv1D, W stored (in, out): `linear` of Wᵀ (a view, no copy)."""
    p = f"h.{layer}."
    run = rows_runner(len(x)) if iv is None else None  # an intervened pass runs on one thread: its captures are whole arrays
    (ln1, ln1_b), (ln2, ln2_b) = ((w[f"{p}{n}.weight"], w[f"{p}{n}.bias"]) for n in ("ln_1", "ln_2"))
    (qkv, qkv_b), (out, out_b), (fc, fc_b), (proj, proj_b) = (
        (w[f"{p}{n}.weight"].T, w[f"{p}{n}.bias"]) for n in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
    )
    activation = FUNCTIONS[s.activation]

    def project(x: np.ndarray) -> np.ndarray:
        """LayerNorm, then the fused q, k, v projection: (rows, hidden) -> (rows, 3·hidden)."""
        return linear(layer_norm(x, ln1, ln1_b, s.eps), qkv, qkv_b)

    fused = row_local(run, project, 3 * s.hidden, x)
    q, k, v = (split_heads(part, s.heads) for part in np.split(fused, 3, axis=-1))
    if not whole and cache is None:
        return LayerTrace(layer, s, q, k, v, None, None)
    head_output, k, v, start = attend(q, k, v, s, layer, cache, iv, run)
    ffn = []

    def tail(merged: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Output projection, residual; LayerNorm, MLP, residual: (rows, hidden) ×2 -> (rows, hidden)."""
        x = x + linear(merged, out, out_b)
        fed = linear(activation(linear(layer_norm(x, ln2, ln2_b, s.eps), fc, fc_b)), proj, proj_b)
        ffn.append(kept(iv, "ffn", fed))
        return x + fed

    x = row_local(run, tail, s.hidden, merge_heads(head_output), x)
    return LayerTrace(layer, s, q, k, v, head_output, x, start=start, interventions=iv, ffn=ffn[0])


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

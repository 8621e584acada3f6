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

from ..maths.gelu import gelu
from ..maths.ops import gelu_tanh, layer_norm, linear, rope_angles
from . import base, llama
from .architecture import Architecture, GGUFLayout
from .base import LayerTrace, Weights, fused_rope_parts, kept, rotary_layer, run_layers
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


def block(x, w: Weights, layer: int, s: Hyper, cos, sin, cache=None, whole: bool = True, iv=None) -> LayerTrace:
    """One layer. Parallel: x + attention(LN₁(x)) + MLP(LN₂(x)); sequential: y = x +
    attention(LN₁(x)), then y + MLP(LN₂(y)). With a KV cache, x is the new tokens only. Not
    `whole` (and no cache): q, k and v only (`base.layer_plan`). The steps before and after
    attention are row-local: one split of the rows each (`runtime.row_local`)."""
    p = f"layers.{layer}."
    run = rows_runner(len(x)) if iv is None else None  # an intervened pass runs on one thread: its captures are whole arrays

    def weights(name: str):  # (weight, bias or None: attention_bias false has none)
        return w[f"{p}{name}.weight"], w[f"{p}{name}.bias"] if f"{p}{name}.bias" in w else None

    ln1, ln2 = weights("input_layernorm"), weights("post_attention_layernorm")
    qkv, dense, up, down = (weights(n) for n in ("attention.query_key_value", "attention.dense", "mlp.dense_h_to_4h", "mlp.dense_4h_to_h"))

    def project(x, cos, sin):
        """LN₁, the fused projection laid out head by head as [q|k|v], RoPE: (rows, hidden) ->
        q, k, v, q and k after RoPE, each (rows, heads·head_dim)."""
        return fused_rope_parts(linear(layer_norm(x, *ln1, s.eps), *qkv), s, cos, sin, per_head=True)

    def tail(merged: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Output projection, LN₂, MLP and the residual sums: (rows, heads·d), (rows, hidden) -> (rows, hidden), the kept MLP output."""
        attended = linear(merged, *dense)
        # transformers' sums, in its order: (mlp + attention) + x, or (attention + x), then mlp + that
        mlp_input = x if s.parallel_residual else attended + x
        inner = linear(layer_norm(mlp_input, *ln2, s.eps), *up)
        fed = linear(gelu(inner, beside_threads=run is not None) if s.activation == "gelu" else gelu_tanh(inner), *down)
        return ((fed + attended) + x if s.parallel_residual else fed + mlp_input), kept(iv, "ffn", fed)

    return rotary_layer(x, s, layer, cos, sin, project, tail, run, cache, whole, iv)


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


# llama.cpp's tensor names -> this family's. `{n}` is the layer.
GGUF_TENSORS = {
    "token_embd.weight": "embed_in.weight",
    "output_norm.weight": "final_layer_norm.weight",
    "output_norm.bias": "final_layer_norm.bias",
    "output.weight": "embed_out.weight",
    **{f"blk.{{n}}.{g}.{kind}": f"layers.{{n}}.{t}.{kind}" for g, t in (
        ("attn_norm", "input_layernorm"), ("attn_qkv", "attention.query_key_value"), ("attn_output", "attention.dense"),
        ("ffn_norm", "post_attention_layernorm"), ("ffn_up", "mlp.dense_h_to_4h"), ("ffn_down", "mlp.dense_4h_to_h"),
    ) for kind in ("weight", "bias")},
}


def from_gguf(name: str, w: np.ndarray, config: dict) -> np.ndarray:
    """A tensor as transformers has it: llama.cpp's converter reorders the fused projection's
    rows from head by head ([q|k|v] per head) to q | k | v, so they are put back per head."""
    if name.endswith(("query_key_value.weight", "query_key_value.bias")):
        heads = config["num_attention_heads"]
        w = w.reshape(3, heads, w.shape[0] // 3 // heads, *w.shape[1:]).swapaxes(0, 1).reshape(w.shape)
    return w


def gguf_config(metadata: dict, get, config: dict) -> dict:
    """GPT-NeoX's settings from a GGUF file's metadata. llama.cpp writes the rotated dimensions
    per head (rope.dimension_count; the head is hidden/heads), the LayerNorm eps, whether the
    residual is parallel, and no RoPE base (10000, Pythia's) or activation (GELU, Pythia's)."""
    dim = config["hidden_size"] // config["num_attention_heads"]
    rope = llama.gguf_rope(get) | {"partial_rotary_factor": int(get("rope.dimension_count", dim)) / dim}
    return {
        "hidden_act": "gelu",
        "head_dim": dim,
        "rope_parameters": rope,
        "layer_norm_eps": float(np.float32(get("attention.layer_norm_epsilon"))),
        "use_parallel_residual": bool(get("use_parallel_residual", True)),
    }


GGUF = GGUFLayout({"gptneox": "gpt_neox"}, GGUF_TENSORS, from_gguf, gguf_config)
ARCHITECTURE = Architecture("gpt_neox", parse, forward, final_norm, output_projection, ("gpt_neox.",), logits=logits, gguf=GGUF)

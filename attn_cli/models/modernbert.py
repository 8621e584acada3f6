"""ModernBERT (`model_type: modernbert`): Answer.AI and LightOn's encoder, e.g. ModernBERT-base.

A pre-LayerNorm encoder (layer 0 reads the normed embeddings without a norm of its own; a final
norm after the last layer); LayerNorms, projections and the MLP without biases by default
(`norm_bias`, `attention_bias`, `mlp_bias`: read when the checkpoint has them); q, k and v from
one fused `Wqkv` (q|k|v along its outputs); RoPE, with its own θ per layer kind; layers
alternating between global attention (every `global_attn_every_n_layers`-th, from layer 0) and
a two-sided sliding window: a token sees the keys at most local_attention/2 positions away on
either side (attn's window local_attention/2 + 1: |i - j| < window); a GeGLU feed-forward, `Wi`
fused (input|gate), the exact GELU on the input half. Weight names follow transformers'
`ModernBertModel` (`model.` in ModernBertForMaskedLM checkpoints).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..errors import ModelError
from ..maths.gelu import gelu
from ..maths.ops import layer_norm, linear, rope_angles
from . import llama
from .architecture import Architecture
from .base import LayerTrace, Weights, encoder_passes, fused_rope_parts, kept, rotary_layer, run_layers
from .hyper import MAX_POSITIONS, ConfigValues, Hyper, head_dim
from .runtime import rows_runner

SLIDING, GLOBAL = "sliding_attention", "full_attention"
DEFAULT_THETA = {GLOBAL: 160_000.0, SLIDING: 10_000.0}  # ModernBertConfig's
THETA_KEY = {GLOBAL: "global_rope_theta", SLIDING: "local_rope_theta"}  # transformers 4's config.json


def layer_types(c: ConfigValues, layers: int) -> list[str]:
    """`sliding_attention` or `full_attention` for each layer: transformers 5's layer_types, or
    every `global_attn_every_n_layers`-th global from layer 0 (4's config.json, the Hub's)."""
    kinds = c.config.get("layer_types")
    if not kinds:
        every = c.integer("global_attn_every_n_layers", 3)
        kinds = [SLIDING if i % every else GLOBAL for i in range(layers)]
    if not isinstance(kinds, list) or len(kinds) != layers or set(kinds) - {SLIDING, GLOBAL}:
        raise ModelError(
            f"config.json: layer_types does not give sliding_attention or full_attention for each of the {layers} layers", "re-download config.json"
        )
    return kinds


def rope_parameters(c: ConfigValues, kind: str) -> dict:
    """RoPE settings of one layer kind: transformers 5's `rope_parameters[kind]`, or 4's
    global_rope_theta / local_rope_theta."""
    params = c.mapping("rope_parameters").get(kind)
    params = dict(params) if isinstance(params, dict) else {"rope_type": "default"}
    params.setdefault("rope_theta", c.number(THETA_KEY[kind], DEFAULT_THETA[kind]))
    return {"rope_parameters": params}


def parse(config: dict) -> Hyper:
    c = ConfigValues(config)
    c.choice("hidden_activation", ("gelu",), "gelu", "ModernBERT hidden_activation")
    hidden, heads, layers = c.integer("hidden_size"), c.integer("num_attention_heads"), c.integer("num_hidden_layers")
    dim = head_dim(c, hidden, heads, key=None)
    kinds = layer_types(c, layers)
    window = c.integer("local_attention", 128, low=2, high=MAX_POSITIONS) // 2 + 1  # |i - j| <= local_attention // 2
    inv_freq = {kind: llama.rope_frequencies(rope_parameters(c, kind), dim) for kind in set(kinds)}
    return Hyper(
        model_type="modernbert",
        layers=layers,
        heads=heads,
        kv_heads=heads,
        head_dim=dim,
        hidden=hidden,
        max_positions=c.integer("max_position_embeddings", 8192, high=MAX_POSITIONS),
        causal=False,
        eps=c.number("norm_eps", 1e-5),
        windows=tuple(window if kind == SLIDING else None for kind in kinds),
        inv_freq=tuple(inv_freq[kind] for kind in kinds),
    )


def norm(w: Weights, name: str, x: np.ndarray, eps: float) -> np.ndarray:
    """LayerNorm `name`, with its bias where the checkpoint has one (norm_bias; none by default:
    a zero bias, which adds nothing)."""
    weight = w[f"{name}.weight"]
    bias = w[f"{name}.bias"] if f"{name}.bias" in w else np.zeros_like(weight)
    return layer_norm(x, weight, bias, eps)


def block(x, w: Weights, layer: int, s: Hyper, cos, sin, segments=None, whole: bool = True, iv=None) -> LayerTrace:
    """One layer: x + attention(norm(x)) (layer 0: no norm), then x + GeGLU(norm(x)). Not
    `whole`: q, k and v only (`base.layer_plan`). The steps before and after attention are
    row-local: one split of the rows each (`runtime.row_local`)."""
    p = f"layers.{layer}."
    run = rows_runner(len(x)) if iv is None else None  # an intervened pass runs on one thread: its captures are whole arrays

    def weights(name: str):  # (weight, bias or None: attention_bias and mlp_bias false have none)
        return w[f"{p}{name}.weight"], w[f"{p}{name}.bias"] if f"{p}{name}.bias" in w else None

    qkv, wo, wi, down = (weights(n) for n in ("attn.Wqkv", "attn.Wo", "mlp.Wi", "mlp.Wo"))
    first = f"{p}attn_norm.weight" not in w  # layer 0's attn_norm is the identity

    def project(x, cos, sin):
        """attn_norm, the fused projection [q|k|v], RoPE: (rows, hidden) -> q, k, v, q and k
        after RoPE, each (rows, heads·head_dim)."""
        h = x if first else norm(w, f"{p}attn_norm", x, s.eps)
        return fused_rope_parts(linear(h, *qkv), s, cos, sin)

    def tail(merged: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Wo, residual; mlp_norm, GeGLU, residual: (rows, heads·d), (rows, hidden) -> (rows, hidden), the kept GeGLU output."""
        x = x + linear(merged, *wo)
        inner, gate = np.split(linear(norm(w, f"{p}mlp_norm", x, s.eps), *wi), 2, axis=-1)
        fed = linear(gelu(np.ascontiguousarray(inner), beside_threads=run is not None) * gate, *down)
        return x + fed, kept(iv, "ffn", fed)

    return rotary_layer(x, s, layer, cos, sin, project, tail, run, whole=whole, iv=iv, segments=segments)


def encoder(w: Weights, s: Hyper, input_ids: np.ndarray, positions: np.ndarray, segments=None, through=None, iv=None) -> Iterator[LayerTrace]:
    """The normed embeddings, then the layers, each kind with its RoPE frequencies; positions
    (seq,) from 0 in each text."""
    angles = {}
    for f in s.inv_freq:  # the layers of a kind share one array
        if id(f) not in angles:
            cos, sin = rope_angles(f, int(positions.max()) + 1)
            angles[id(f)] = (cos[positions], sin[positions])
    x = norm(w, "embeddings.norm", w.rows("embeddings.tok_embeddings.weight", input_ids), s.eps)
    step = lambda x, layer, whole: block(x, w, layer, s, *angles[id(s.inv_freq[layer])], segments, whole, iv)  # noqa: E731
    return run_layers(x, s.layers, through, step, iv)


forward, forward_packed = encoder_passes(encoder)


def final_norm(w: Weights, s: Hyper, hidden: np.ndarray) -> np.ndarray:
    """The last hidden state as transformers reports it: final_norm of the last layer's output."""
    return norm(w, "final_norm", hidden, s.eps)


def output_projection(w: Weights, layer: int) -> np.ndarray:
    """W_O of the layer in x·W layout, (heads·head_dim, hidden)."""
    return w[f"layers.{layer}.attn.Wo.weight"].T


ARCHITECTURE = Architecture("modernbert", parse, forward, final_norm, output_projection, ("model.",), forward_packed=forward_packed)

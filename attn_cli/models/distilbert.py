"""DistilBERT (`model_type: distilbert`): BERT's post-LayerNorm encoder with its own weight
names, no token-type embeddings, and its own config keys (dim, n_heads, n_layers, hidden_dim)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..maths.ops import gelu, layer_norm, linear, merge_heads, split_heads
from .base import MAX_POSITIONS, ConfigValues, LayerTrace, ModelSpec, Weights, head_dim, layer_plan, segments_of, self_attention, split_trace
from .runtime import row_local, rows_runner

WEIGHT_PREFIXES = ("distilbert.",)
EPS = 1e-12  # DistilBERT's LayerNorms use a fixed eps, not a config value


def spec(config: dict) -> ModelSpec:
    c = ConfigValues(config)
    c.choice("activation", ("gelu",), "gelu", "DistilBERT activation")
    hidden, heads = c.integer("dim"), c.integer("n_heads")
    return ModelSpec(
        model_type="distilbert",
        layers=c.integer("n_layers"),
        heads=heads,
        kv_heads=heads,
        head_dim=head_dim(c, hidden, heads, key=None),
        hidden=hidden,
        max_positions=c.integer("max_position_embeddings", high=MAX_POSITIONS),
        causal=False,
    )


def block(x: np.ndarray, w: Weights, layer: int, s: ModelSpec, segments=None, whole: bool = True) -> LayerTrace:
    p = f"transformer.layer.{layer}."
    run = rows_runner(len(x))

    def lin(name: str, h: np.ndarray, threads=run) -> np.ndarray:
        return linear(h, w[f"{p}{name}.weight"], w[f"{p}{name}.bias"], threads)

    q, k, v = (split_heads(lin(f"attention.{n}_lin", x), s.heads) for n in ("q", "k", "v"))
    if not whole:  # q, k and v only: see `base.layer_plan`
        return LayerTrace(layer, s, q, k, v, None, None)
    head_output = self_attention(q, k, v, s, run=run, segments=segments)

    def tail(merged: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Output projection, residual, LayerNorm; feed-forward, residual, LayerNorm: row by row."""
        x = layer_norm(lin("attention.out_lin", merged, None) + x, w[f"{p}sa_layer_norm.weight"], w[f"{p}sa_layer_norm.bias"], EPS)
        out = lin("ffn.lin2", gelu(lin("ffn.lin1", x, None), beside_threads=run is not None), None)
        return layer_norm(out + x, w[f"{p}output_layer_norm.weight"], w[f"{p}output_layer_norm.bias"], EPS)

    return LayerTrace(layer, s, q, k, v, head_output, row_local(run, tail, s.hidden, merge_heads(head_output), x))


def forward(w: Weights, s: ModelSpec, config: dict, input_ids: np.ndarray, positions=None, segments=None, through=None) -> Iterator[LayerTrace]:
    positions = np.arange(len(input_ids)) if positions is None else positions
    x = w.rows("embeddings.word_embeddings.weight", input_ids) + w.rows("embeddings.position_embeddings.weight", positions)
    x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], EPS)
    for layer, whole in layer_plan(s.layers, through):
        trace = block(x, w, layer, s, segments, whole)
        x = trace.hidden
        yield trace


def forward_packed(w: Weights, s: ModelSpec, config: dict, texts: list[np.ndarray]) -> Iterator[list[LayerTrace]]:
    """Several texts at once, one trace per text per layer: see `bert.forward_packed`."""
    segments = segments_of(texts)
    positions = np.concatenate([np.arange(len(t)) for t in texts])
    for trace in forward(w, s, config, np.concatenate(texts), positions, segments):
        yield split_trace(trace, segments)


def final_norm(w: Weights, config: dict, hidden: np.ndarray) -> np.ndarray:
    return hidden


def output_projection(w: Weights, layer: int) -> np.ndarray:
    """W_O of the layer in x·W layout, (heads·head_dim, hidden)."""
    return w[f"transformer.layer.{layer}.attention.out_lin.weight"].T

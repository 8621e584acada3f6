"""DistilBERT (`model_type: distilbert`): BERT's post-LayerNorm encoder with its own weight
names, no token-type embeddings, and its own config keys (dim, n_heads, n_layers, hidden_dim)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..maths.gelu import gelu
from ..maths.ops import layer_norm, linear, merge_heads, split_heads
from .architecture import Architecture
from .base import LayerTrace, Weights, attend, kept, run_layers, segments_of, split_trace
from .hyper import MAX_POSITIONS, ConfigValues, Hyper, head_dim
from .runtime import row_local, rows_runner

EPS = 1e-12  # DistilBERT's LayerNorms use a fixed eps, not a config value


def parse(config: dict) -> Hyper:
    c = ConfigValues(config)
    c.choice("activation", ("gelu",), "gelu", "DistilBERT activation")
    hidden, heads = c.integer("dim"), c.integer("n_heads")
    return Hyper(
        model_type="distilbert",
        layers=c.integer("n_layers"),
        heads=heads,
        kv_heads=heads,
        head_dim=head_dim(c, hidden, heads, key=None),
        hidden=hidden,
        max_positions=c.integer("max_position_embeddings", high=MAX_POSITIONS),
        causal=False,
        eps=EPS,
    )


def block(x: np.ndarray, w: Weights, layer: int, s: Hyper, segments=None, whole: bool = True, iv=None) -> LayerTrace:
    p = f"transformer.layer.{layer}."
    run = rows_runner(len(x)) if iv is None else None  # an intervened pass runs on one thread: its captures are whole arrays
    wq, wk, wv, wo, lin1, lin2, ln1, ln2 = (
        (w[f"{p}{n}.weight"], w[f"{p}{n}.bias"])
        for n in ("attention.q_lin", "attention.k_lin", "attention.v_lin", "attention.out_lin", "ffn.lin1", "ffn.lin2", "sa_layer_norm", "output_layer_norm")
    )

    def project(x: np.ndarray):
        """q, k, v: (rows, hidden) -> three (rows, hidden)."""
        return linear(x, *wq), linear(x, *wk), linear(x, *wv)

    q, k, v = (split_heads(a, s.heads) for a in row_local(run, project, (s.hidden,) * 3, x))
    if not whole:  # q, k and v only: see `base.layer_plan`
        return LayerTrace(layer, s, q, k, v, None, None)
    head_output, k, v, _ = attend(q, k, v, s, layer, interventions=iv, run=run, segments=segments)
    ffn = []

    def tail(merged: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Output projection, residual, LayerNorm; feed-forward, residual, LayerNorm: row by row."""
        x = layer_norm(linear(merged, *wo) + x, *ln1, s.eps)
        out = linear(gelu(linear(x, *lin1), beside_threads=run is not None), *lin2)
        ffn.append(kept(iv, "ffn", out))
        return layer_norm(out + x, *ln2, s.eps)

    hidden = row_local(run, tail, s.hidden, merge_heads(head_output), x)
    return LayerTrace(layer, s, q, k, v, head_output, hidden, interventions=iv, ffn=ffn[0])


def encoder(w: Weights, s: Hyper, input_ids: np.ndarray, positions: np.ndarray, segments=None, through=None, iv=None) -> Iterator[LayerTrace]:
    x = w.rows("embeddings.word_embeddings.weight", input_ids) + w.rows("embeddings.position_embeddings.weight", positions)
    x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], s.eps)
    return run_layers(x, s.layers, through, lambda x, layer, whole: block(x, w, layer, s, segments, whole, iv), iv)


def forward(w: Weights, s: Hyper, input_ids: np.ndarray, cache=None, through=None, interventions=None) -> Iterator[LayerTrace]:
    return encoder(w, s, input_ids, np.arange(len(input_ids)), through=through, iv=interventions)


def forward_packed(w: Weights, s: Hyper, texts: list[np.ndarray]) -> Iterator[list[LayerTrace]]:
    """Several texts at once, one trace per text per layer: see `bert.forward_packed`."""
    segments = segments_of(texts)
    positions = np.concatenate([np.arange(len(t)) for t in texts])
    for trace in encoder(w, s, np.concatenate(texts), positions, segments):
        yield split_trace(trace, segments)


def final_norm(w: Weights, s: Hyper, hidden: np.ndarray) -> np.ndarray:
    return hidden


def output_projection(w: Weights, layer: int) -> np.ndarray:
    """W_O of the layer in x·W layout, (heads·head_dim, hidden)."""
    return w[f"transformer.layer.{layer}.attention.out_lin.weight"].T


ARCHITECTURE = Architecture("distilbert", parse, forward, final_norm, output_projection, ("distilbert.",), forward_packed=forward_packed)

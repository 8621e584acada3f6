"""DistilBERT (`model_type: distilbert`): BERT's post-LayerNorm encoder with its own weight
names, no token-type embeddings, and its own config keys (dim, n_heads, n_layers, hidden_dim)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..maths.ops import layer_norm
from . import bert
from .architecture import Architecture
from .base import LayerTrace, Weights, attend, encoder_passes, run_layers
from .hyper import MAX_POSITIONS, ConfigValues, Hyper, head_dim
from .runtime import rows_runner

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
    names = ("attention.q_lin", "attention.k_lin", "attention.v_lin", "attention.out_lin", "ffn.lin1", "ffn.lin2", "sa_layer_norm", "output_layer_norm")
    weights = [(w[f"{p}{n}.weight"], w[f"{p}{n}.bias"]) for n in names]
    attention = lambda q, k, v: attend(q, k, v, s, layer, interventions=iv, run=run, segments=segments)[:3]  # noqa: E731
    return bert.post_ln_layer(x, s, layer, weights, run, whole, iv, attention)


def encoder(w: Weights, s: Hyper, input_ids: np.ndarray, positions: np.ndarray, segments=None, through=None, iv=None) -> Iterator[LayerTrace]:
    x = w.rows("embeddings.word_embeddings.weight", input_ids) + w.rows("embeddings.position_embeddings.weight", positions)
    x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], s.eps)
    return run_layers(x, s.layers, through, lambda x, layer, whole: block(x, w, layer, s, segments, whole, iv), iv)


forward, forward_packed = encoder_passes(encoder)


def final_norm(w: Weights, s: Hyper, hidden: np.ndarray) -> np.ndarray:
    return hidden


def output_projection(w: Weights, layer: int) -> np.ndarray:
    """W_O of the layer in x·W layout, (heads·head_dim, hidden)."""
    return w[f"transformer.layer.{layer}.attention.out_lin.weight"].T


ARCHITECTURE = Architecture("distilbert", parse, forward, final_norm, output_projection, ("distilbert.",), forward_packed=forward_packed)

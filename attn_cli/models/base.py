"""What every architecture provides: its shape (`ModelSpec`) and, per layer, a `LayerTrace`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ModelSpec:
    """The shape of a model, read from its config.json."""

    model_type: str
    layers: int
    heads: int
    head_dim: int
    hidden: int
    max_positions: int
    causal: bool


@dataclass(frozen=True)
class LayerTrace:
    """Everything one layer's self-attention computed, for every head and every token.

    q, k, v: (heads, seq, head_dim), the projections split into heads.
    scores: (heads, seq, seq), Q·Kᵀ. scaled_scores: (heads, seq, seq), Q·Kᵀ/√d_k.
    weights: (heads, seq, seq), the softmax of the scaled scores; row i is query token i.
    head_output: (heads, seq, head_dim), weights·V, before the output projection.
    hidden: (seq, hidden), the layer's output (the next layer's input).
    mask: None, or bool (seq, seq), True where query i may see key j (decoders).
    """

    layer: int
    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    scores: np.ndarray
    scaled_scores: np.ndarray
    weights: np.ndarray
    head_output: np.ndarray
    hidden: np.ndarray
    mask: np.ndarray | None = None

"""What every architecture provides: its shape (`ModelSpec`) and, per layer, a `LayerTrace`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..maths.ops import attention_output, attention_rows, causal_visibility


class Weights(Protocol):
    """A model's tensors by architecture name (no checkpoint prefix), as float32 arrays.

    The forward pass reads weights only through this; `loading` provides it for each file format.
    """

    def __contains__(self, name: str) -> bool: ...

    def __getitem__(self, name: str) -> np.ndarray: ...

    def rows(self, name: str, indices: np.ndarray) -> np.ndarray:
        """`weights[name][indices]`, reading only those rows: (len(indices), ...)."""
        ...

    def release(self) -> None:
        """Let go of what was read so far (called between layers)."""
        ...


@dataclass(frozen=True)
class ModelSpec:
    """The shape of a model, read from its config.json."""

    model_type: str
    layers: int
    heads: int
    kv_heads: int  # < heads under grouped-query attention: query head h reads kv head h // (heads // kv_heads)
    head_dim: int
    hidden: int
    max_positions: int
    causal: bool
    sliding_window: int | None = None  # keys further back than this are masked (Mistral)
    rotary: bool = False  # q and k are rotated (RoPE) before Q·Kᵀ

    @property
    def scale(self) -> float:
        return float(self.head_dim) ** -0.5


@dataclass(frozen=True)
class LayerTrace:
    """What one layer's self-attention computed, for every head and every token.

    q: (heads, seq, head_dim) and k, v: (kv_heads, seq, head_dim), as they enter Q·Kᵀ
    (after RoPE for rotary models, whose pre-rotation q and k are `q_pre_rope`, `k_pre_rope`).
    head_output: (heads, seq, head_dim), weights·V before the output projection.
    hidden: (seq, hidden), the layer's output (the next layer's input).
    Scores and weights are not stored: `rows()` computes the rows asked for, so that a long
    text never holds a seq×seq map per layer.
    """

    layer: int
    spec: ModelSpec
    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    head_output: np.ndarray
    hidden: np.ndarray
    q_pre_rope: np.ndarray | None = None
    k_pre_rope: np.ndarray | None = None

    def kv_head(self, head: int) -> int:
        return head // (self.spec.heads // self.spec.kv_heads)

    def visible(self, rows) -> np.ndarray | None:
        """bool (rows, seq), True where the query rows may look; None for encoders (all)."""
        if not self.spec.causal:
            return None
        return causal_visibility(rows, self.q.shape[1], self.spec.sliding_window)

    def rows(self, rows=slice(None)):
        """(scores, scaled_scores, weights) of query `rows` (a slice or index list), each
        (heads, rows, seq). Masked entries of the scores are as computed; their weights are 0."""
        k = _per_query_head(self.k, self.spec)
        return attention_rows(self.q[:, rows], k, self.spec.scale, self.visible(rows))


def _per_query_head(x: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """(kv_heads, seq, d) -> (heads, seq, d): each kv head serves heads // kv_heads query heads."""
    group = spec.heads // spec.kv_heads
    return x if group == 1 else np.repeat(x, group, axis=0)


def self_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """The head outputs weights·V for every token: q (heads, seq, d), k and v (kv_heads, seq, d)
    -> (heads, seq, d), in blocks of rows (see `ops.attention_output`)."""
    seq = q.shape[1]
    visible = (lambda rows: causal_visibility(rows, seq, spec.sliding_window)) if spec.causal else None
    return attention_output(q, _per_query_head(k, spec), _per_query_head(v, spec), spec.scale, visible)

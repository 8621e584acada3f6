"""The KV cache: the keys and values of past positions, so that each new token runs alone.

A decoder's position i attends to keys and values of positions ≤ i, and those never change once
computed (they depend only on earlier tokens). Keeping them per layer (after RoPE, per kv head,
exactly as they enter Q·Kᵀ) lets a step compute q, k, v for the new token only and attend over
the cache. An architecture joins by calling `attend` (models/base.py) in its block and starting
its positions at `cache.length`; per-layer sliding windows (Gemma 3) need nothing more, since
the mask, not the cache, drops the keys outside a window.
"""

from __future__ import annotations

import numpy as np

from .hyper import Hyper


class KVCache:
    """Keys and values of up to `capacity` positions for every layer, preallocated:
    k, v: (layers, kv_heads, capacity, head_dim) float32. `lengths[layer]` positions of each
    layer are filled; a forward pass over n new tokens appends n to every layer."""

    def __init__(self, spec: Hyper, capacity: int) -> None:
        shape = (spec.layers, spec.kv_heads, capacity, spec.head_dim)
        self.k = np.zeros(shape, dtype=np.float32)
        self.v = np.zeros(shape, dtype=np.float32)
        self.lengths = [0] * spec.layers

    @property
    def capacity(self) -> int:
        return self.k.shape[2]

    @property
    def length(self) -> int:
        """Positions stored in every layer: the position of the next token."""
        return min(self.lengths)

    @property
    def nbytes(self) -> int:
        """What the cache holds: layers × kv_heads × capacity × head_dim × 2 floats."""
        return self.k.nbytes + self.v.nbytes

    def append(self, layer: int, k: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Store the new positions' k, v (kv_heads, n, head_dim) of `layer`; return all of
        the layer's keys and values so far, (kv_heads, length + n, head_dim) each (views)."""
        start, n = self.lengths[layer], k.shape[1]
        end = start + n
        if end > self.capacity:
            raise ValueError(f"KV cache holds {self.capacity} positions; {end} asked")
        self.k[layer, :, start:end] = k
        self.v[layer, :, start:end] = v
        self.lengths[layer] = end
        return self.k[layer, :, :end], self.v[layer, :, :end]


def cache_bytes(spec: Hyper, positions: int) -> int:
    """Bytes of a float32 KV cache of `positions` positions (layers × kv_heads × positions × head_dim × 2 × 4)."""
    return spec.layers * spec.kv_heads * positions * spec.head_dim * 2 * 4

"""The KV cache: the keys and values of past positions, so that each new token runs alone.

A decoder's position i attends to keys and values of positions ≤ i, and those never change once
computed (they depend only on earlier tokens). Keeping them per layer (after RoPE, per kv head,
exactly as they enter Q·Kᵀ) lets a step compute q, k, v for the new token only and attend over
the cache. An architecture joins by calling `attend` (models/base.py) in its block and starting
its positions at `cache.length`; a sliding layer keeps only the keys its window still reaches (`KVCache`), and the trace and
the mask place them by `LayerTrace.key_start`.
"""

from __future__ import annotations

import numpy as np

from .hyper import Hyper


class KVCache:
    """Keys and values of up to `capacity` positions, preallocated per layer: k[layer], v[layer]
    (kv_heads, kept, head_dim) float32. A global layer keeps every position (kept = capacity);
    a sliding layer of window w needs only the last w - 1 positions for the next query (plus
    the new ones), so it keeps a shifting buffer of kept = w - 1 + `step` positions (`step`:
    the most new tokens a forward pass appends after the first; a longer pass, the prompt, is
    attended over a copy). `lengths[layer]` positions of each layer have been appended;
    `key_starts[layer]` is the position of the layer's first kept key."""

    def __init__(self, spec: Hyper, capacity: int, step: int = 1) -> None:
        self.spec, self.step = spec, step
        kept = [layer_positions(spec.window(layer), capacity, step) for layer in range(spec.layers)]
        self.k = [np.zeros((spec.kv_heads, n, spec.head_dim), dtype=np.float32) for n in kept]
        self.v = [np.zeros((spec.kv_heads, n, spec.head_dim), dtype=np.float32) for n in kept]
        self._capacity = capacity
        self.lengths = [0] * spec.layers
        self.key_starts = [0] * spec.layers

    @property
    def capacity(self) -> int:
        """Positions the cache can be given in all (a sliding layer keeps fewer)."""
        return self._capacity

    @property
    def length(self) -> int:
        """Positions stored in every layer: the position of the next token."""
        return min(self.lengths)

    @property
    def nbytes(self) -> int:
        """What the cache holds: Σ over layers of kv_heads × kept × head_dim × 2 floats."""
        return sum(a.nbytes for a in self.k) + sum(a.nbytes for a in self.v)

    def append(self, layer: int, k: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Store the new positions' k, v (kv_heads, n, head_dim) of `layer`; return the keys
        and values the new queries attend over, (kv_heads, keys, head_dim) each: every position
        so far for a global layer, for a sliding one at least the window's (the first of them at
        position `key_starts[layer]` after the call, so keys = length + n - key_start). A global
        layer's are views of the cache (written once, never moved); a sliding layer's, copies."""
        length, n = self.lengths[layer], k.shape[1]
        end = length + n
        if end > self.capacity:
            raise ValueError(f"KV cache holds {self.capacity} positions; {end} asked")
        bk, bv = self.k[layer], self.v[layer]
        size, filled = bk.shape[1], length - self.key_starts[layer]
        self.lengths[layer] = end
        window = self.spec.window(layer)
        if filled + n > size and window is not None:  # drop the keys no query will see again
            keep = min(filled, window - 1)
            if keep + n > size:  # more new tokens than the buffer has room for: attend over a copy
                keys = np.concatenate([bk[:, filled - keep : filled], k], axis=1)
                values = np.concatenate([bv[:, filled - keep : filled], v], axis=1)
                bk[:, : window - 1] = keys[:, keys.shape[1] - (window - 1) :]
                bv[:, : window - 1] = values[:, keys.shape[1] - (window - 1) :]
                self.key_starts[layer] = end - (window - 1)
                return keys, values
            bk[:, :keep] = bk[:, filled - keep : filled].copy()
            bv[:, :keep] = bv[:, filled - keep : filled].copy()
            self.key_starts[layer] = length - keep
            filled = keep
        bk[:, filled : filled + n] = k
        bv[:, filled : filled + n] = v
        if window is not None:  # a copy: the buffer shifts under a view, and a trace keeps what it attended over
            return bk[:, : filled + n].copy(), bv[:, : filled + n].copy()
        return bk[:, : filled + n], bv[:, : filled + n]


def layer_positions(window: int | None, capacity: int, step: int = 1) -> int:
    """Positions a layer keeps in a cache of `capacity`: all of them, or a sliding layer's
    window - 1 (what the next query still sees behind it) + `step` (the new tokens)."""
    return capacity if window is None else min(capacity, window - 1 + step)


def cache_bytes(spec: Hyper, positions: int, step: int = 1) -> int:
    """Bytes of a float32 KV cache of `positions` positions: Σ over layers of kv_heads × kept
    positions (`layer_positions`) × head_dim × 2 × 4."""
    kept = sum(layer_positions(spec.window(layer), positions, step) for layer in range(spec.layers))
    return kept * spec.kv_heads * spec.head_dim * 2 * 4

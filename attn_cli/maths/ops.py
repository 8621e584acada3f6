"""The math of a transformer layer, as small pure functions over NumPy arrays.

Nothing here knows about files, tokenizers or terminals. Shapes in docstrings use
`seq` (tokens), `hidden` (model width), `heads` and `head_dim`.
"""

from __future__ import annotations

import numpy as np


def gelu_tanh(x: np.ndarray) -> np.ndarray:
    """GPT-2's "gelu_new": x/2·(1 + tanh(√(2/π)·(x + 0.044715·x³))). Any shape."""
    return (0.5 * x * (1.0 + np.tanh(np.float32(np.sqrt(2.0 / np.pi)) * (x + np.float32(0.044715) * x**3)))).astype(np.float32)


def silu(x: np.ndarray) -> np.ndarray:
    """x·σ(x), the gate of SwiGLU. Any shape."""
    with np.errstate(over="ignore"):  # exp(-x) overflows to inf for x ≪ 0, and x/inf = -0: fine
        e = np.negative(x, dtype=np.float32)
        np.exp(e, out=e)
        e += np.float32(1.0)
        return np.divide(x, e, out=e)


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    """RMSNorm over the last axis, weight·x/√(mean(x²) + eps): (..., d) -> (..., d)."""
    return weight * (x / np.sqrt(np.square(x).mean(axis=-1, keepdims=True) + np.float32(eps)))


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    """LayerNorm over the last axis: (..., hidden) -> (..., hidden)."""
    centred = x - x.mean(axis=-1, keepdims=True)
    variance = np.square(centred).mean(axis=-1, keepdims=True)
    if centred.dtype != np.result_type(centred, weight, bias):
        return centred / np.sqrt(variance + np.float32(eps)) * weight + bias
    centred /= np.sqrt(variance + np.float32(eps))  # the same operations, in place
    centred *= weight
    centred += bias
    return centred


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """x @ Wᵀ + b with W stored as (out, in), the PyTorch layout: (seq, in) -> (seq, out).

    OpenBLAS is slow on a few rows: from 2 to FEW_ROWS rows, (W @ xᵀ)ᵀ computes the same
    numbers (the same dot products, summed in the same order) in about 2/3 of the time.
    """
    rows = x.shape[0]
    if 2 <= rows < FEW_ROWS and x.ndim == 2:
        y = np.ascontiguousarray((weight @ x.T).T)
        if bias is not None:
            y += bias
        return y
    y = x @ weight.T
    if bias is not None:
        y += bias
    return y


FEW_ROWS = 128


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax. Rows that are entirely -inf give all zeros, not NaN."""
    peak = np.max(x, axis=axis, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0.0)
    with np.errstate(over="ignore"):  # (-3e38) - 3e38 is -inf in float32, and exp(-inf) = 0: fine
        e = np.exp(x - peak)
    total = np.sum(e, axis=axis, keepdims=True)
    return e / np.where(total > 0, total, 1.0)


def rope_angles(inv_freq: np.ndarray, seq: int, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of the rotary angles position·inv_freq for positions start … start+seq-1,
    (seq, 2·len(inv_freq)), each frequency twice (the two halves of a head are rotated together).
    The angles are float32 products, as PyTorch computes them, so long positions round the same
    way; their cos and sin are rounded correctly from float64 (PyTorch's, from MKL, are within
    one ulp of those). A KV cache step asks for its new positions alone (start = cache length)."""
    angles = np.arange(start, start + seq, dtype=np.float32)[:, None] * inv_freq.astype(np.float32)[None, :]
    angles = np.concatenate([angles, angles], axis=-1).astype(np.float64)
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


def apply_rope(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """Rotate pairs (x_i, x_{i+r/2}) by the position's angles (Hugging Face's `rotate_half`
    layout): x·cos + rotate_half(x)·sin, rotate_half(x) = [-x₂, x₁]. x: (seq, heads, d); cos,
    sin: (seq, r), r <= d the rotary width. With r < d (partial rotary: GPT-NeoX's rotary_pct,
    Phi's partial_rotary_factor) only each head's first r dimensions rotate, the other d - r
    pass through unchanged, as transformers' `apply_rotary_pos_emb` concatenates them.
    Computed as x·cos, then ∓ the other half's products, in place: the same roundings as the
    formula (-a·b = -(a·b) exactly), without its copies."""
    rotary = cos.shape[-1]
    half = rotary // 2
    c, s = cos[:, None], sin[:, None]
    xr = x[..., :rotary]
    out = np.empty(x.shape, dtype=np.float32)
    o = out[..., :rotary]
    np.multiply(xr, c, out=o)
    o[..., :half] -= xr[..., half:] * s[..., :half]
    o[..., half:] += xr[..., :half] * s[..., half:]
    if rotary < x.shape[-1]:
        out[..., rotary:] = x[..., rotary:]
    return out


def split_heads(x: np.ndarray, heads: int) -> np.ndarray:
    """(seq, heads·head_dim) -> (heads, seq, head_dim)."""
    seq, width = x.shape
    return x.reshape(seq, heads, width // heads).transpose(1, 0, 2)


def merge_heads(x: np.ndarray) -> np.ndarray:
    """(heads, seq, head_dim) -> (seq, heads·head_dim)."""
    heads, seq, head_dim = x.shape
    return x.transpose(1, 0, 2).reshape(seq, heads * head_dim)


def attention_rows(q: np.ndarray, k: np.ndarray, scale: float, visible: np.ndarray | None = None, bias: np.ndarray | None = None, softcap: float | None = None):
    """Scores of some query rows against every key, step by step, as the textbook tells it.

    q: (heads, rows, head_dim); k: (heads, seq, head_dim); visible: None, or bool (rows, seq)
    or (heads, rows, seq), True where a query may look at a key (decoders mask the future).
    Returns scores = Q·Kᵀ, scaled_scores = Q·Kᵀ·scale and weights = softmax over the visible
    keys, each (heads, rows, seq). Masked entries of the scores stay as computed; their weights
    are 0. With a `bias` (heads, rows, seq) (relative positions) or a `softcap` (Gemma 2:
    cap·tanh(s/cap)), the softmax reads the scaled scores after them (`adjusted_scores`).
    """
    scores = q @ k.transpose(0, 2, 1)
    scaled_scores = scores * np.float32(scale)
    logits = adjusted_scores(scaled_scores, bias, softcap)
    logits = logits if visible is None else np.where(visible, logits, -np.inf)
    return scores, scaled_scores, softmax(logits, axis=-1).astype(np.float32)


def adjusted_scores(scaled: np.ndarray, bias: np.ndarray | None = None, softcap: float | None = None) -> np.ndarray:
    """The scores the softmax reads, from the scaled scores: + an additive bias (relative
    position buckets: T5, MPNet), then a soft-cap cap·tanh(s/cap) (Gemma 2). (heads, rows, seq)."""
    if bias is None and not softcap:
        return scaled
    out = scaled if bias is None else scaled + bias
    if softcap:
        out = np.tanh(out / np.float32(softcap)) * np.float32(softcap)
    return out.astype(np.float32)


def causal_visibility(rows: slice | np.ndarray, seq: int, window: int | None = None, start: int = 0) -> np.ndarray:
    """bool (rows, seq): query i sees key j when j <= i (and, with a sliding window w, i - j < w).
    Query row r is position start + r: with a KV cache the queries are the last seq - start
    positions, the keys all seq of them."""
    i = np.arange(start, seq)[rows][:, None]
    j = np.arange(seq)[None, :]
    visible = j <= i
    return visible if window is None else visible & (i - j < window)


def two_sided_visibility(rows: slice | np.ndarray, seq: int, window: int) -> np.ndarray:
    """bool (rows, seq): an encoder's sliding window (ModernBERT's local layers), query i sees
    key j when |i - j| < window, on either side."""
    i = np.arange(seq)[rows][:, None]
    j = np.arange(seq)[None, :]
    return np.abs(i - j) < window

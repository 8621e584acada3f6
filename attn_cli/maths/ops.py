"""The math of a transformer layer, as small pure functions over NumPy arrays.

Nothing here knows about files, tokenizers or terminals. Shapes in docstrings use
`seq` (tokens), `hidden` (model width), `heads` and `head_dim`.
"""

from __future__ import annotations

import numpy as np

# Coefficients of the Chebyshev-fitted erfc of Press et al., "Numerical Recipes" (2nd ed., §6.2),
# whose *relative* error is below 1.2e-7 for every x >= 0: about one float32 ulp, the same as
# the float32 erf that PyTorch uses. NumPy has no erf, and SciPy would double our import time.
_ERFC_COEFFS = (
    -1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806,
    0.27886807, -1.13520398, 1.48851587, -0.82215223, 0.17087277,
)


def erfc(x: np.ndarray) -> np.ndarray:
    """Complementary error function 1 - erf(x), elementwise, in float64, with ~1e-7 *relative*
    accuracy everywhere (so tiny tails such as erfc(5) ≈ 1.5e-12 stay accurate)."""
    x = np.asarray(x, dtype=np.float64)
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = np.full_like(t, _ERFC_COEFFS[-1])
    for c in reversed(_ERFC_COEFFS[:-1]):  # Horner, in place: no new array per step
        poly *= t
        poly += c
    z *= z
    poly -= z
    np.exp(poly, out=poly)
    poly *= t  # erfc(|x|)
    np.subtract(2.0, poly, out=poly, where=x < 0)  # erfc(-z) = 2 - erfc(z)
    return poly


def erf(x: np.ndarray) -> np.ndarray:
    """Error function, elementwise, in float64."""
    return 1.0 - erfc(x)


def gelu(x: np.ndarray, run=None, beside_threads: bool = False) -> np.ndarray:
    """Exact GELU, x·Φ(x) (not the tanh approximation), float32 in and out. Any shape.

    Written as relu(x) − |x|/2·erfc(|x|/√2), so that negative inputs keep their relative
    accuracy (1 + erf would cancel). The erfc of `erfc`, with the work split by what needs
    float64: t and the exponent −x²/2 + P(t) in float64 (x² is exact there, and the exponent's
    absolute error is the result's relative error), the degree-9 polynomial P in float32 but
    for its last step, whose rounding nothing would damp. Within 2.2e-7 of the exact value,
    relatively, for every input (float64 throughout: 1.6e-7); 5x faster than float64
    throughout. Computed in blocks that stay in the CPU's cache, through scratch arrays reused
    from block to block: this runs over every feed-forward activation of every layer. `run`
    (see `linear`) splits the rows (the first axis) between threads; `beside_threads`: this call
    is itself one thread's share of a split (larger blocks, see _GELU_BLOCK_THREADED).
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty(x.shape, dtype=np.float32)
    block = _GELU_BLOCK_THREADED if run is not None or beside_threads else _GELU_BLOCK
    if run is None or x.ndim == 0:
        _gelu_flat(x.reshape(-1), out.reshape(-1), block)
    else:
        run(lambda start, stop: _gelu_flat(x[start:stop].reshape(-1), out[start:stop].reshape(-1), block), x.shape[0])
    return out


def _gelu_flat(x: np.ndarray, out: np.ndarray, block: int) -> None:
    """GELU of x (n,) into out (n,), `block` elements at a time."""
    n = max(1, min(block, x.size))
    scratch32 = np.empty((2, n), np.float32)
    scratch64 = np.empty((4, n), np.float64)
    with np.errstate(under="ignore", over="ignore", invalid="ignore"):  # far tails: 0 (inf or NaN in: NaN out)
        for start in range(0, x.size, n):
            block = x[start : start + n]
            m = len(block)
            _gelu_block(block, out[start : start + m], scratch32[:, :m], scratch64[:, :m])


_GELU_BLOCK = 32768  # elements: the block's scratch (1.2 MB) stays in a core's L2 cache
# Beside another thread, twice that: each of the block's ~35 NumPy calls hands the GIL over
# twice, and at 32,768 elements the handovers ate a third of two threads' gain (measured: 1.46x
# the speed of one thread, against 1.8x at 65,536; 16,384 gave none).
_GELU_BLOCK_THREADED = 65536
_ERFC_COEFFS32 = tuple(np.float32(c) for c in _ERFC_COEFFS)
_SQRT_HALF = float(np.sqrt(0.5))


def _gelu_block(x: np.ndarray, out: np.ndarray, scratch32: np.ndarray, scratch64: np.ndarray) -> None:
    """GELU of one block x (n,) into out (n,); scratch32 (2, n) float32, scratch64 (4, n) float64."""
    t, p = scratch32
    half_a, t64, e64, s64 = scratch64
    np.abs(x, out=p)
    np.multiply(p, 0.5, out=half_a)  # |x|/2, exact
    np.multiply(half_a, _SQRT_HALF, out=t64)  # z/2, z = |x|/√2
    t64 += 1.0
    np.divide(1.0, t64, out=t64)  # t = 1/(1 + z/2)
    np.copyto(t, t64, casting="same_kind")
    np.multiply(t, _ERFC_COEFFS32[9], out=p)  # Horner in float32, in place, down to the t¹ coefficient
    p += _ERFC_COEFFS32[8]
    for c in _ERFC_COEFFS32[7:0:-1]:
        p *= t
        p += c
    np.copyto(e64, p)
    e64 *= t64
    e64 += _ERFC_COEFFS[0]  # P(t)
    np.abs(x, out=p)
    np.copyto(s64, p)
    s64 *= half_a  # x²/2, exact
    e64 -= s64
    np.exp(e64, out=e64)
    e64 *= t64  # erfc(|x|/√2)
    e64 *= half_a
    np.copyto(p, e64, casting="same_kind")  # |x|/2·erfc(|x|/√2)
    np.maximum(x, np.float32(0.0), out=out)
    out -= p


def gelu_tanh(x: np.ndarray) -> np.ndarray:
    """GPT-2's "gelu_new": x/2·(1 + tanh(√(2/π)·(x + 0.044715·x³))). Any shape."""
    return (0.5 * x * (1.0 + np.tanh(np.float32(np.sqrt(2.0 / np.pi)) * (x + np.float32(0.044715) * x**3)))).astype(np.float32)


def silu(x: np.ndarray, run=None) -> np.ndarray:
    """x·σ(x), the gate of SwiGLU. Any shape. `run` (see `linear`) splits the rows between threads."""
    if run is not None:
        out = np.empty(x.shape, dtype=np.float32)
        run(lambda start, stop: out.__setitem__(slice(start, stop), silu(x[start:stop])), x.shape[0])
        return out
    with np.errstate(over="ignore"):  # exp(-x) overflows to inf for x ≪ 0, and x/inf = -0: fine
        e = np.negative(x, dtype=np.float32)
        np.exp(e, out=e)
        e += np.float32(1.0)
        return np.divide(x, e, out=e)


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float, run=None) -> np.ndarray:
    """RMSNorm over the last axis, weight·x/√(mean(x²) + eps): (..., d) -> (..., d). `run`: see `silu`."""
    if run is not None and x.ndim == 2:
        out = np.empty(x.shape, dtype=np.result_type(x, weight))
        run(lambda start, stop: out.__setitem__(slice(start, stop), rms_norm(x[start:stop], weight, eps)), x.shape[0])
        return out
    return weight * (x / np.sqrt(np.square(x).mean(axis=-1, keepdims=True) + np.float32(eps)))


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float, run=None) -> np.ndarray:
    """LayerNorm over the last axis: (..., hidden) -> (..., hidden). `run` (see `linear`)
    splits the rows (the first axis) between threads, each row computed whole."""
    if run is not None:
        out = np.empty(np.broadcast_shapes(x.shape, weight.shape), dtype=np.result_type(x, weight, bias))

        def part(start: int, stop: int) -> None:
            out[start:stop] = layer_norm(x[start:stop], weight, bias, eps)

        run(part, x.shape[0])
        return out
    centred = x - x.mean(axis=-1, keepdims=True)
    variance = np.square(centred).mean(axis=-1, keepdims=True)
    if centred.dtype != np.result_type(centred, weight, bias):
        return centred / np.sqrt(variance + np.float32(eps)) * weight + bias
    centred /= np.sqrt(variance + np.float32(eps))  # the same operations, in place
    centred *= weight
    centred += bias
    return centred


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, run=None) -> np.ndarray:
    """x @ Wᵀ + b with W stored as (out, in), the PyTorch layout: (seq, in) -> (seq, out).

    OpenBLAS is slow on a few rows: from 2 to FEW_ROWS rows, (W @ xᵀ)ᵀ computes the same
    numbers (the same dot products, summed in the same order) in about 2/3 of the time. `run`
    (see `models.runtime.rows_runner`), if given, splits the work between threads: the rows, or
    when there are fewer rows than outputs, the outputs (each thread's BLAS call packs all of
    the operand it shares, so the smaller one is shared: x·Wᵀ of 512 rows by 1,536 outputs took
    0.9x the time). Each number is the same dot product either way, so nothing changes.
    """
    rows = x.shape[0]
    if run is not None:
        y = np.empty((rows, weight.shape[0]), dtype=np.result_type(x, weight))
        if rows < weight.shape[0] and x.ndim == 2:  # fewer rows than outputs: split the outputs

            def columns(start: int, stop: int) -> None:
                np.matmul(x, weight[start:stop].T, out=y[:, start:stop])
                if bias is not None:
                    y[:, start:stop] += bias[start:stop]

            run(columns, weight.shape[0])
            return y

        def part(start: int, stop: int) -> None:
            np.matmul(x[start:stop], weight.T, out=y[start:stop])
            if bias is not None:
                y[start:stop] += bias

        run(part, rows)
        return y
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


def apply_rope(x: np.ndarray, cos: np.ndarray, sin: np.ndarray, run=None) -> np.ndarray:
    """Rotate pairs (x_i, x_{i+r/2}) by the position's angles (Hugging Face's `rotate_half`
    layout): x·cos + rotate_half(x)·sin, rotate_half(x) = [-x₂, x₁]. x: (heads, seq, d); cos,
    sin: (seq, r), r <= d the rotary width. With r < d (partial rotary: GPT-NeoX's rotary_pct,
    Phi's partial_rotary_factor) only each head's first r dimensions rotate, the other d - r
    pass through unchanged, as transformers' `apply_rotary_pos_emb` concatenates them.
    Computed as x·cos, then ∓ the other half's products, in place: the same roundings as the
    formula (-a·b = -(a·b) exactly), without its copies. `run` (see `linear`) splits the
    positions between threads."""
    rotary = cos.shape[-1]
    half = rotary // 2
    out = np.empty(x.shape, dtype=np.float32)

    def part(start: int, stop: int) -> None:
        xs, c, s, o = x[:, start:stop, :rotary], cos[start:stop], sin[start:stop], out[:, start:stop, :rotary]
        np.multiply(xs, c, out=o)
        o[..., :half] -= xs[..., half:] * s[..., :half]
        o[..., half:] += xs[..., :half] * s[..., half:]
        if rotary < x.shape[-1]:
            out[:, start:stop, rotary:] = x[:, start:stop, rotary:]

    if run is None:
        part(0, x.shape[1])
    else:
        run(part, x.shape[1])
    return out


def split_heads(x: np.ndarray, heads: int) -> np.ndarray:
    """(seq, heads·head_dim) -> (heads, seq, head_dim)."""
    seq, width = x.shape
    return x.reshape(seq, heads, width // heads).transpose(1, 0, 2)


def merge_heads(x: np.ndarray) -> np.ndarray:
    """(heads, seq, head_dim) -> (seq, heads·head_dim)."""
    heads, seq, head_dim = x.shape
    return x.transpose(1, 0, 2).reshape(seq, heads * head_dim)


def attention_rows(q: np.ndarray, k: np.ndarray, scale: float, visible: np.ndarray | None = None):
    """Scores of some query rows against every key, step by step, as the textbook tells it.

    q: (heads, rows, head_dim); k: (heads, seq, head_dim); visible: None, or bool (rows, seq),
    True where a query may look at a key (decoders mask the future). Returns
    scores = Q·Kᵀ, scaled_scores = Q·Kᵀ·scale and weights = softmax over the visible keys,
    each (heads, rows, seq). Masked entries of the scores stay as computed; their weights are 0.
    """
    scores = q @ k.transpose(0, 2, 1)
    scaled_scores = scores * np.float32(scale)
    logits = scaled_scores if visible is None else np.where(visible, scaled_scores, -np.inf)
    return scores, scaled_scores, softmax(logits, axis=-1).astype(np.float32)


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, visible: np.ndarray | None = None):
    """Scaled dot-product attention with scale 1/√d_k: softmax(Q·Kᵀ/√d_k)·V.

    q, k, v: (heads, seq, head_dim). Returns scores, scaled_scores, weights (heads, seq, seq)
    and output (heads, seq, head_dim).
    """
    scores, scaled_scores, weights = attention_rows(q, k, 1.0 / np.sqrt(q.shape[-1]), visible)
    return scores, scaled_scores, weights, weights @ v


def causal_visibility(rows: slice | np.ndarray, seq: int, window: int | None = None, start: int = 0) -> np.ndarray:
    """bool (rows, seq): query i sees key j when j <= i (and, with a sliding window w, i - j < w).
    Query row r is position start + r: with a KV cache the queries are the last seq - start
    positions, the keys all seq of them."""
    i = np.arange(start, seq)[rows][:, None]
    j = np.arange(seq)[None, :]
    visible = j <= i
    return visible if window is None else visible & (i - j < window)

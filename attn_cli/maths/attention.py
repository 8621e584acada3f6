"""softmax(Q·Kᵀ·scale)·V for every query of a layer: the attention that runs for every token.

`ops.attention_rows` tells the textbook story for the rows a user looks at; this computes the
same numbers for all rows, fast: a block of scores at a time, small enough to stay in the CPU's
cache, in one reused buffer (no fresh memory, hence no page faults, per block), in place; and,
under a causal mask, only the keys a block of queries can see (the future, and what a sliding
window left behind, are never multiplied). Nothing here knows about models or files.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

# Scores per block: 2^18 float32 = 1 MiB, which stays in a core's L2 cache through the
# block's passes (exp; with the shift, max and subtract before it).
BLOCK_ELEMENTS = 1 << 18
PRODUCT_ROWS = 192  # fewer rows per product leave BLAS idle on long decoder keys (docs/benchmarks.md)
# softmax(s) = exp(s - c) / Σ exp(s - c) for any shift c; the usual c = the row's max costs two
# passes over the scores (max, subtract) and guards only against overflow and underflow. attn
# skips it when neither can happen: no score is beyond ±max‖q‖·max‖k‖ (Cauchy-Schwarz), so when
# that bound plus log(keys·(1 + max|v|)) stays under SAFE_EXPONENT, every exp(s) is a normal
# float32 (e^±64, where float32 spans e^±87) and so are Σ exp(s) and e·V. Without the shift,
# exp reads the scores as BLAS computed them: one rounding fewer.
SAFE_EXPONENT = 64.0


def key_range(first: int, last: int, keys: int, causal: bool, window: int | None) -> tuple[int, int]:
    """[lo, hi): the keys that queries at positions first … last may see, of `keys` in all.
    Causal: key j is seen by position p when j ≤ p (and p - j < window). Not causal: every key,
    or with a window (an encoder's two-sided one, ModernBERT's local layers) those with |p - j| < window."""
    if window is None:
        return (0, min(keys, last + 1)) if causal else (0, keys)
    lo = max(0, first - window + 1)
    return lo, min(keys, last + 1 if causal else last + window)


def mask_bias(first: int, rows: int, lo: int, hi: int, window: int | None, causal: bool = True) -> list[tuple[int, np.ndarray]]:
    """Where a causal mask, or an encoder's two-sided window, hides keys lo … hi-1 from query
    positions first … first+rows-1: [(column offset from lo, bias (rows, width) float32,
    read-only)], the bias 0 where a query sees the key and -inf where it does not; empty when
    the block hides nothing. Only the block's edges can hide anything (the future, or beyond the
    first query's window, at its right; beyond the last query's window at its left), so only
    they get a bias. Adding it to the scores is one plain pass (0 + s = s exactly,
    -inf + s = -inf), where a masked copy is ten times slower."""
    last = first + rows - 1
    edges = []
    if causal or window is not None:  # keys after the first query (causal) or beyond its window
        edges.append((max(lo, first + 1 if causal else first + window), hi))
    if window is not None:
        edges.append((lo, min(hi, last - window + 1)))  # keys beyond the last query's window
    edges = [(a, b) for a, b in edges if a < b]
    if len(edges) == 2 and edges[1][1] >= edges[0][0]:  # they meet: one range
        edges = [(lo, hi)]
    biases = ((a - lo, _edge_bias(rows, a - first, b - first, window, causal)) for a, b in edges)
    return [(offset, bias) for offset, bias in biases if bias is not None]


@lru_cache(maxsize=32)
def _edge_bias(rows: int, a: int, b: int, window: int | None, causal: bool = True) -> np.ndarray | None:
    """The bias of keys first+a … first+b-1 for queries first … first+rows-1, None if it hides
    nothing. It depends on positions only through these offsets, so every block of a causal
    (or windowed) pass shares it: made once, not once per block."""
    i = np.arange(rows)[:, None]
    j = np.arange(a, b)[None, :]
    hidden = j > i if causal else np.zeros((rows, b - a), dtype=bool)
    if window is not None:
        hidden |= np.abs(i - j) >= window if not causal else i - j >= window
    if not hidden.any():
        return None
    bias = np.where(hidden, np.float32(-np.inf), np.float32(0.0))
    bias.flags.writeable = False
    return bias


def attention_output(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    scale: float,
    causal: bool = False,
    window: int | None = None,
    start: int = 0,
    block_elements: int = BLOCK_ELEMENTS,
    run=None,
) -> np.ndarray:
    """softmax(Q·Kᵀ·scale)·V with keys hidden by the mask weighted 0.

    q: (heads, rows, head_dim), query row r being position start + r (start > 0 with a KV
    cache); k, v: (kv_heads, keys, head_dim), kv head h serving query heads h·g … h·g + g - 1,
    g = heads / kv_heads (grouped-query attention, without repeating k and v). causal: query
    position p sees keys j ≤ p, and with a `window`, p - j < window; not causal, with a
    `window` (an encoder's two-sided sliding window): keys with |p - j| < window. Returns (heads, rows,
    head_dim) float32. Every query sees at least itself, so no row is all masked. `run(fn, n,
    min_chunk)` (see `models.runtime.rows_runner`), if given, shares the blocks between
    threads; a block is computed whole either way, so the numbers do not change.
    """
    heads, rows, dim = q.shape
    kv_heads, keys, _ = k.shape
    group = heads // kv_heads
    out = np.empty((heads, rows, v.shape[-1]), dtype=np.float32)
    # The scale on q, not on the scores: rows·d products, not rows·keys. And V with a column of
    # ones: e·[V | 1] gives the weighted sum and the softmax's denominator Σe in one product,
    # so the scores are read once (exp), or three times with the shift (max, subtract, exp), not six.
    q4 = (q * np.float32(scale)).reshape(kv_heads, group, rows, dim)
    kt = np.ascontiguousarray(k.transpose(0, 2, 1))  # (kv_heads, head_dim, keys): BLAS multiplies by a contiguous array faster than by a transposed view
    v1 = np.concatenate([v, np.ones((kv_heads, keys, 1), dtype=v.dtype)], axis=-1)  # (kv_heads, keys, head_dim + 1)
    out4 = out.reshape(kv_heads, group, rows, v.shape[-1])
    largest = _norm_max(q4) * _norm_max(k) + math.log(max(1, keys) * (1.0 + float(np.abs(v).max(initial=0.0))))
    shift = not largest < SAFE_EXPONENT  # NaN or inf in q, k or v: shifted, as ever
    # As many kv heads and query rows per block as fit in block_elements (at least one of each),
    # yet at least PRODUCT_ROWS rows of q per product when keys are many: BLAS is slow on few.
    per_row = group * keys
    block_rows = max(1, min(rows, max(block_elements // per_row, -(-PRODUCT_ROWS // group))))
    block_heads = max(1, min(kv_heads, block_elements // (per_row * block_rows)))
    blocks = [
        (r0, min(rows, r0 + block_rows), h0, min(kv_heads, h0 + block_heads))
        for r0 in range(0, rows, block_rows)
        for h0 in range(0, kv_heads, block_heads)
    ]
    if causal:  # later rows see more keys: first and last blocks alternate, so that any run of blocks costs alike
        blocks = [blocks[i // 2] if i % 2 == 0 else blocks[-1 - i // 2] for i in range(len(blocks))]
    size = block_heads * group * block_rows * keys

    def compute(first: int, stop: int) -> None:
        buffer = np.empty(size, dtype=np.float32)  # one per thread, reused block after block
        for r0, r1, h0, h1 in blocks[first:stop]:
            heads_, rows_ = h1 - h0, r1 - r0
            lo, hi = key_range(start + r0, start + r1 - 1, keys, causal, window)
            # The query heads of a kv head are one product: (group·rows, d)·(d, keys), whose
            # many rows BLAS runs far faster than `group` products of a few rows each.
            s = buffer[: heads_ * group * rows_ * (hi - lo)].reshape(heads_, group * rows_, hi - lo)
            np.matmul(q4[h0:h1, :, r0:r1].reshape(heads_, group * rows_, dim), kt[h0:h1, :, lo:hi], out=s)
            by_row = s.reshape(heads_, group, rows_, hi - lo)
            for offset, bias in mask_bias(start + r0, rows_, lo, hi, window, causal) if causal or window is not None else ():
                by_row[..., offset : offset + bias.shape[1]] += bias
            if shift:  # see SAFE_EXPONENT
                s -= s.max(axis=-1, keepdims=True)
            np.exp(s, out=s)
            summed = (s @ v1[h0:h1, lo:hi]).reshape(heads_, group, rows_, -1)  # (.., head_dim + 1)
            np.divide(summed[..., :-1], summed[..., -1:], out=out4[h0:h1, :, r0:r1])

    if run is None:
        compute(0, len(blocks))
    else:
        run(compute, len(blocks), 1)
    return out


def _norm_max(x: np.ndarray) -> float:
    """The largest Euclidean norm of x's vectors (its last axis); 0 if it has none. In float32:
    a bound needs no more (SAFE_EXPONENT leaves a margin of e^24), and overflow gives inf."""
    return float(np.sqrt(np.einsum("...i,...i->...", x, x).max(initial=0.0)))

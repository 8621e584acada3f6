"""RoPE's frequencies, bit for bit as transformers computes them in float32 with PyTorch.

inv_freq = 1 / θ^(2i/d). `theta ** (arange(0, d, 2) / d)` in PyTorch runs SLEEF's vectorised
1-ulp pow (`Sleef_powf16_u10` under AVX-512, `Sleef_powf8_u10` under AVX2, both with fused
multiply-adds) over whole blocks of two vectors (32 or 16 floats), and the C library's powf
(correctly rounded in practice) over the rest. SLEEF's pow is not correctly rounded: some
frequencies differ by one ulp from NumPy's, and an ulp of frequency is position·ulp of angle,
1e-4 in cos/sin by position 4,000. So attn evaluates the same algorithm (SLEEF 3.x's
double-float logkf/expkf) in NumPy, operation by operation, and gets the same bits. The angles
position·inv_freq are one float32 product, so equal frequencies give equal angles.

A float32 fused multiply-add is emulated in float64 (the product of two float32 is exact there)
with the one case float64 cannot round correctly, a sum that lands exactly halfway between two
float32, settled by the sum's exact error.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np

F32 = np.float32


F64 = np.float64


def fma(a, b, c) -> np.ndarray:
    """a·b + c rounded once to float32. a, b, c: float32 arrays (broadcast)."""
    product = np.asarray(a, F64) * np.asarray(b, F64)  # exact: 24 + 24 bits < 53
    c64 = np.asarray(c, F64)
    total = product + c64
    back = total - product
    error = (product - (total - back)) + (c64 - back)  # total + error = a·b + c exactly (TwoSum)
    rounded = total.astype(F32)
    bits = total.view(np.uint64) & np.uint64(0x1FFFFFFF)
    halfway = (bits == np.uint64(0x10000000)) & (error != 0)
    if np.any(halfway):  # a tie for float64 is no tie for the exact value: round towards it
        up = np.where(rounded.astype(F64) > total, rounded, np.nextafter(rounded, F32(np.inf)))
        down = np.where(rounded.astype(F64) < total, rounded, np.nextafter(rounded, F32(-np.inf)))
        rounded = np.where(halfway, np.where(error > 0, up, down), rounded)
    return rounded.astype(F32)


# Double-float ("df") arithmetic: a value is a pair (hi, lo) of float32 with hi + lo exact-ish.


def _add2_ff(x, y):
    s = x + y
    v = s - x
    return s, (x - (s - v)) + (y - v)


def _add2_df_f(x, y):
    s = x[0] + y
    v = s - x[0]
    return s, ((x[0] - (s - v)) + (y - v)) + x[1]


def _add_f_df(x, y):
    s = x + y[0]
    return s, ((x - s) + y[0]) + y[1]


def _add_df_df(x, y):
    s = x[0] + y[0]
    return s, (((x[0] - s) + y[0]) + x[1]) + y[1]


def _add2_df_df(x, y):
    s = x[0] + y[0]
    v = s - x[0]
    return s, ((x[0] - (s - v)) + (y[0] - v)) + (x[1] + y[1])


def _normalize(x):
    s = x[0] + x[1]
    return s, (x[0] - s) + x[1]


def _mul_df_f(x, y):
    s = x[0] * y
    return s, fma(x[1], y, fma(x[0], y, -s))


def _mul_df_df(x, y):
    s = x[0] * y[0]
    return s, fma(x[0], y[1], fma(x[1], y[0], fma(x[0], y[0], -s)))


def _square(x):
    s = x[0] * x[0]
    return s, fma(x[0] + x[0], x[1], fma(x[0], x[0], -s))


def _div(n, d):
    t = F32(1) / d[0]
    s = n[0] * t
    u = fma(t, n[0], -s)
    v = fma(-d[1], t, fma(-d[0], t, F32(1)))
    return s, fma(s, v, fma(n[1], t, u))


def _log(d):
    """log(d) as a double-float, for positive normal float32 d (SLEEF's logkf, AVX-512 form)."""
    e = (np.frexp(d * F32(1.0 / 0.75))[1] - 1).astype(F32)  # getexp: floor(log2(d/0.75))
    mantissa, _ = np.frexp(d)  # d = mantissa·2^k, mantissa in [0.5, 1)
    m = np.where(mantissa * 2 >= 1.5, mantissa, mantissa * 2).astype(F32)  # getmant into [0.75, 1.5)
    x = _div(_add2_ff(F32(-1), m), _add2_ff(F32(1), m))
    x2 = _square(x)
    t = fma(fma(F32(0.240320354700088500976562), x2[0], F32(0.285112679004669189453125)), x2[0], F32(0.400007992982864379882812))
    c = (F32(0.66666662693023681640625), F32(3.69183861259614332084311e-09))
    s = _mul_df_f((F32(0.69314718246459960938), F32(-1.904654323148236017e-09)), e)
    s = _add_df_df(s, (x[0] * F32(2), x[1] * F32(2)))
    return _add_df_df(s, _mul_df_df(_mul_df_df(x2, x), _add2_df_df(_mul_df_f(x2, t), c)))


def _exp(d):
    """exp of a double-float (SLEEF's expkf)."""
    q = np.rint((d[0] + d[1]) * F32(1.442695040888963407359924681001892137426645954152985934135449406931)).astype(np.int32)
    qf = q.astype(F32)
    s = _add2_df_f(d, qf * F32(-0.693145751953125))
    s = _normalize(_add2_df_f(s, qf * F32(-1.428606765330187045e-06)))
    u = F32(0.00136324646882712841033936)
    for coefficient in (0.00836596917361021041870117, 0.0416710823774337768554688, 0.166665524244308471679688, 0.499999850988388061523438):
        u = fma(u, s[0], F32(coefficient))
    t = _add_f_df(F32(1), _add_df_df(s, _mul_df_f(_square(s), u)))
    result = np.ldexp(t[0] + t[1], q).astype(F32)
    return np.where(d[0] < F32(-104), F32(0), result).astype(F32)


def sleef_powf(base: float, exponent: np.ndarray) -> np.ndarray:
    """base ** exponent in float32 as `torch.pow` computes it (base > 0; exponent float32)."""
    x = np.full(np.shape(exponent), F32(base), dtype=F32)
    y = np.asarray(exponent, F32)
    result = _exp(_mul_df_f(_log(x), y))
    return np.where((y == 0) | (x == 1), F32(1), result).astype(F32)


@functools.cache
def simd_block() -> int:
    """Floats per vectorised block of PyTorch's CPU loops on this machine: 32 with AVX-512
    (PyTorch's default where the CPU has it), else 16 (AVX2)."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return 16
    return 32 if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= set(flags) else 16


def torch_powf(base: float, exponent: np.ndarray) -> np.ndarray:
    """`base ** exponent` for a float32 vector, rounded as PyTorch's CPU kernel rounds it."""
    exponent = np.asarray(exponent, F32)
    head = len(exponent) // simd_block() * simd_block()
    tail = np.power(np.float64(F32(base)), exponent[head:].astype(np.float64)).astype(F32)
    return np.concatenate([sleef_powf(base, exponent[:head]), tail]).astype(F32)


def inv_freq(theta: float, head_dim: int) -> np.ndarray:
    """(head_dim/2,) float32: 1 / θ^(2i/head_dim), as transformers' default RoPE computes it."""
    exponents = np.arange(0, head_dim, 2, dtype=np.int64).astype(F32) / F32(head_dim)
    return (F32(1.0) / torch_powf(theta, exponents)).astype(F32)


def llama3_scaling(freqs: np.ndarray, factor: float, low: float, high: float, old_context: int) -> np.ndarray:
    """Llama 3.1's NTK-by-parts, in transformers' float32 operation order: slow long
    wavelengths down by `factor`, keep short ones, blend in between. (PyTorch computes
    `scalar / tensor` as `reciprocal(tensor) * scalar`, which rounds differently from a division.)"""
    wavelength = (F32(1.0) / freqs) * F32(2 * math.pi)
    scaled = np.where(wavelength > F32(old_context / low), freqs / F32(factor), freqs).astype(F32)
    smooth = ((F32(1.0) / wavelength) * F32(old_context) - F32(low)) / F32(high - low)
    blended = (F32(1.0) - smooth) * scaled / F32(factor) + smooth * scaled
    medium = ~(wavelength < F32(old_context / high)) & ~(wavelength > F32(old_context / low))
    return np.where(medium, blended, scaled).astype(F32)

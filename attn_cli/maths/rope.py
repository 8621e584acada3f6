"""RoPE's frequencies, bit for bit as transformers computes them in float32 with PyTorch.

inv_freq = 1 / θ^(2i/d). PyTorch evaluates the power with SLEEF's vectorised pow over whole
blocks of two SIMD vectors (32 floats under AVX-512, 16 under AVX2) and with the C library's
powf (correctly rounded in practice) over the rest; see `sleef.py`. The angles position·inv_freq
are one float32 product, so equal frequencies give equal angles.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np

from .sleef import powf as sleef_powf

F32 = np.float32


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

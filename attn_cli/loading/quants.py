"""De-quantizing the common GGUF types (Q8_0, Q4_0, Q5_0, Q4_K, Q5_K, Q6_K) faster than gguf-py,
to the same bits.

gguf-py's `gguf.quants.dequantize` works on groups of 16 rows and makes a float32 temporary at
each step (shift, mask, cast, scale, offset): on a 1.5B model's tied embeddings (151,936 × 1,536
as Q4_K) it took 40 s where the LM head's matrix product takes under 1 s, so a step of `attn
generate` that must de-quantize its weights again spent its time here
(benchmarks/bench_dequantize.py). Here the integer codes are assembled in uint8 (a quarter of
float32's bytes), turned into float32 in one pass, and scaled in place: the same float32
operations on the same values in the same order as gguf-py (a product of two float32 is the same
whichever comes first), hence the same bits (tests/test_quants.py). Other types go to gguf-py.
"""

from __future__ import annotations

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf.constants import GGML_QUANT_SIZES, QK_K
from gguf.quants import Q4_K as _Q4K
from gguf.quants import dequantize as gguf_dequantize


def _half(blocks: np.ndarray, at: int) -> np.ndarray:
    """The float16 stored at byte `at` of each block, as float32: (n, 1)."""
    return np.ascontiguousarray(blocks[:, at : at + 2]).view(np.float16).astype(np.float32)


def _nibbles(packed: np.ndarray, codes: np.ndarray) -> None:
    """Bytes (..., k) -> their low 4-bit codes into codes[..., 0, :], their high ones into codes[..., 1, :]."""
    np.bitwise_and(packed, 15, out=codes[..., 0, :])
    np.right_shift(packed, 4, out=codes[..., 1, :])


def _as_float(codes: np.ndarray, out: np.ndarray, centre: int = 0) -> None:
    """Integer codes (uint8) minus `centre`, as float32: exact, as gguf-py's int8 subtraction then cast."""
    np.subtract(codes, np.float32(centre), out=out)


def _q8_0(blocks: np.ndarray, out: np.ndarray) -> None:
    np.multiply(blocks[:, 2:].view(np.int8), _half(blocks, 0), out=out)


def _q4_0(blocks: np.ndarray, out: np.ndarray) -> None:
    codes = np.empty((len(blocks), 2, 16), dtype=np.uint8)  # the low codes of the 16 bytes, then the high ones
    _nibbles(blocks[:, 2:], codes)
    _as_float(codes.reshape(-1, 32), out, 8)
    out *= _half(blocks, 0)


def _q5_0(blocks: np.ndarray, out: np.ndarray) -> None:
    codes = np.empty((len(blocks), 2, 16), dtype=np.uint8)
    _nibbles(blocks[:, 6:], codes)
    codes = codes.reshape(-1, 32)
    codes |= np.unpackbits(blocks[:, 2:6], axis=1, bitorder="little") << 4  # bit e of the little-endian uint32: the fifth bit of code e
    _as_float(codes, out, 16)
    out *= _half(blocks, 0)


def _k_scales(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q4_K's and Q5_K's eight sub-block scales and offsets, (n, 8, 1) each, as gguf-py computes them."""
    sc, m = _Q4K.get_scale_min(np.ascontiguousarray(blocks[:, 4:16]))
    n = len(blocks)
    return (_half(blocks, 0) * sc.astype(np.float32)).reshape(n, 8, 1), (_half(blocks, 2) * m.astype(np.float32)).reshape(n, 8, 1)


def _q4_k(blocks: np.ndarray, out: np.ndarray) -> None:
    scale, offset = _k_scales(blocks)
    codes = np.empty((len(blocks), 4, 2, 32), dtype=np.uint8)  # sub-blocks 2i and 2i + 1: the low and high codes of bytes 32i …
    _nibbles(blocks[:, 16:].reshape(-1, 4, 32), codes)
    subs = out.reshape(-1, 8, 32)
    _as_float(codes.reshape(-1, 8, 32), subs)
    subs *= scale
    subs -= offset


def _q5_k(blocks: np.ndarray, out: np.ndarray) -> None:
    scale, offset = _k_scales(blocks)
    n = len(blocks)
    low = blocks[:, 16 + QK_K // 8 :].reshape(n, 4, 32)
    codes = np.empty((n, 4, 2, 32), dtype=np.uint8)
    _nibbles(low, codes)
    high = np.unpackbits(blocks[:, 16 : 16 + QK_K // 8, None], axis=2, bitorder="little")  # (n, 32, 8): bit j of byte e is sub-block j's
    codes = codes.reshape(n, 8, 32)
    codes |= high.transpose(0, 2, 1) << 4
    subs = out.reshape(n, 8, 32)
    _as_float(codes, subs)
    subs *= scale
    subs -= offset


def _q6_k(blocks: np.ndarray, out: np.ndarray) -> None:
    n = len(blocks)
    low = blocks[:, : QK_K // 2].reshape(n, 2, 64)
    high = blocks[:, QK_K // 2 : QK_K // 2 + QK_K // 4].reshape(n, 2, 32)
    codes = np.empty((n, 2, 2, 64), dtype=np.uint8)
    _nibbles(low, codes)
    tops = np.empty((n, 2, 4, 32), dtype=np.uint8)
    for shift in range(4):
        np.right_shift(high, 2 * shift, out=tops[:, :, shift])
    tops &= 3
    tops <<= 4
    codes = codes.reshape(n, QK_K)
    codes |= tops.reshape(n, QK_K)
    _as_float(codes, out, 32)
    scales = blocks[:, 3 * QK_K // 4 : 3 * QK_K // 4 + QK_K // 16].view(np.int8).astype(np.float32)
    out.reshape(n, QK_K // 16, 16)[...] *= (_half(blocks, 3 * QK_K // 4 + QK_K // 16) * scales)[:, :, None]


CHUNK_ELEMENTS = 1 << 15  # per pass: its float32 (128 KiB) and codes stay in the CPU's cache between the steps

_OURS = {Q.Q8_0: _q8_0, Q.Q4_0: _q4_0, Q.Q5_0: _q5_0, Q.Q4_K: _q4_k, Q.Q5_K: _q5_k, Q.Q6_K: _q6_k}


def dequantize(raw: np.ndarray, kind: Q) -> np.ndarray:
    """Bytes (..., row bytes) of ggml type `kind` -> float32 (..., row elements), bit for bit
    gguf-py's `gguf.quants.dequantize`."""
    fill = _OURS.get(kind)
    if fill is None:
        return gguf_dequantize(raw, kind)
    block, size = GGML_QUANT_SIZES[kind]
    if raw.shape[-1] % size:
        raise ValueError(f"{raw.shape[-1]} bytes per row are not whole {kind.name} blocks of {size}")
    out = np.empty((*raw.shape[:-1], raw.shape[-1] // size * block), dtype=np.float32)
    blocks, flat = np.ascontiguousarray(raw).reshape(-1, size), out.reshape(-1, block)
    step = max(1, CHUNK_ELEMENTS // block)
    with np.errstate(all="ignore"):  # any bytes are a block: NaN scales give NaN weights, refused by the layer checks
        for start in range(0, len(blocks), step):
            fill(blocks[start : start + step], flat[start : start + step])
    return out

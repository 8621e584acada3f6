"""attn's de-quantizers (`loading/quants.py`) give gguf-py's `gguf.quants.dequantize` bit for bit:
on weights quantized by gguf-py, on any bytes (NaN and infinite scales included), on rows that
end mid-chunk, and on the real Q4_K_M file's Q4_K and Q6_K tensors."""

from __future__ import annotations

import numpy as np
import pytest
from gguf import GGMLQuantizationType as Q
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize as gguf_dequantize
from gguf.quants import quantize
from gguf_helpers import packaged_gguf

from attn_cli.loading import quants
from attn_cli.loading.gguf import GGUFFile

OURS = [Q.Q8_0, Q.Q4_0, Q.Q5_0, Q.Q4_K, Q.Q5_K, Q.Q6_K]


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype == np.float32 and a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


@pytest.mark.parametrize("qtype", OURS, ids=lambda q: q.name)
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # gguf-py's own arithmetic on NaN scales
def test_any_bytes_give_gguf_py_bits(qtype):
    block, size = GGML_QUANT_SIZES[qtype]
    raw = np.random.default_rng(int(qtype)).integers(0, 256, (37, 3 * size * (256 // block)), dtype=np.uint8)
    expected = gguf_dequantize(raw, qtype)
    assert np.isnan(expected).any() or qtype == Q.Q4_K  # random scales: NaN and infinities are in the test
    assert same_bits(quants.dequantize(raw, qtype), expected)
    assert same_bits(quants.dequantize(raw[5], qtype), expected[5])  # one row


@pytest.mark.parametrize("qtype", [Q.Q8_0, Q.Q4_0, Q.Q5_0], ids=lambda q: q.name)
def test_quantized_weights_give_gguf_py_bits(qtype, monkeypatch):
    w = (np.random.default_rng(1).standard_normal((300, 512)) * 0.05).astype(np.float32)
    raw = quantize(w, qtype)
    monkeypatch.setattr(quants, "CHUNK_ELEMENTS", 32 * 7)  # chunks that end mid-row
    assert same_bits(quants.dequantize(raw, qtype), gguf_dequantize(raw, qtype))


def test_other_types_are_gguf_py_s():
    raw = np.random.default_rng(2).integers(0, 256, (4, 2 * GGML_QUANT_SIZES[Q.Q3_K][1]), dtype=np.uint8)
    with np.errstate(all="ignore"):
        assert same_bits(quants.dequantize(raw, Q.Q3_K), gguf_dequantize(raw, Q.Q3_K))


def test_the_real_k_quants_give_gguf_py_bits():
    """Gemma 3 270M's Q4_K_M file: its Q4_K and Q6_K tensors (the embeddings among them)."""
    file = GGUFFile(packaged_gguf("gemma3"))
    seen = set()
    for info in file.tensors.values():
        if info.type_name in ("Q4_K", "Q6_K", "Q8_0", "Q5_0") and info.type_name not in seen:
            seen.add(info.type_name)
            raw = np.array(file._bytes[info.offset : info.offset + info.nbytes]).reshape(info.shape[0], -1)[:2048]
            assert same_bits(quants.dequantize(raw, Q[info.type_name]), gguf_dequantize(raw, Q[info.type_name]))
    assert {"Q4_K", "Q6_K"} <= seen

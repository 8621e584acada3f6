"""RoPE as transformers computes it: inv_freq and angles bit for bit, cos/sin within one ulp.

The reference (tests/fixtures/rope.npz, made by scripts/make_rope_fixture.py) is torch's float32
`LlamaRotaryEmbedding` for 8,192 positions, θ = 1e4, 1e5, 1e6, several head sizes (one whose
frequencies are not a whole number of SIMD blocks) and Llama 3.1/3.2 scaling.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from attn_cli.maths import rope
from attn_cli.maths.ops import rope_angles
from attn_cli.models import llama

REF = np.load(Path(__file__).parent / "fixtures" / "rope.npz")
CASES = sorted(int(k.split("_")[-1]) for k in REF.files if k.startswith("theta_"))


def ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance in float32 units in the last place (same-sign values)."""
    return np.abs(a.view(np.int32).astype(np.int64) - b.view(np.int32).astype(np.int64))


@pytest.fixture(autouse=True)
def same_simd_as_the_reference(monkeypatch):
    """The fixture machine's vector width decides which frequencies SLEEF computed."""
    monkeypatch.setattr(rope, "simd_block", lambda: 32 if str(REF["cpu"]) == "AVX512" else 16)


@pytest.mark.parametrize("case", CASES)
def test_inv_freq_is_bit_exact(case):
    params = json.loads(str(REF[f"rope_{case}"]))
    ours = llama.rope_frequencies({"rope_parameters": params}, int(REF[f"head_dim_{case}"]))
    np.testing.assert_array_equal(ours.view(np.uint32), REF[f"inv_freq_{case}"].view(np.uint32))


@pytest.mark.parametrize("case", CASES)
def test_cos_sin_up_to_8192_positions(case):
    positions = REF["positions"]
    cos, sin = rope_angles(REF[f"inv_freq_{case}"], int(positions.max()) + 1)
    for ours, theirs in ((cos[positions], REF[f"cos_{case}"]), (sin[positions], REF[f"sin_{case}"])):
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=2.4e-7)  # one ulp of 1 is 1.2e-7
        same_sign = np.sign(ours) == np.sign(theirs)
        assert ulps(ours[same_sign], theirs[same_sign]).max() <= 1
        assert (ours == theirs).mean() > 0.9


def test_numpy_pow_alone_is_not_enough():
    """Why the SLEEF emulation exists: NumPy's float32 pow misses some of torch's frequencies."""
    exponents = np.arange(0, 64, 2).astype(np.float32) / np.float32(64)
    naive = np.float32(1) / np.power(np.float32(1e5), exponents)
    assert (naive != REF["inv_freq_1"]).any()
    assert not (np.float32(1) / rope.sleef_powf(1e5, exponents) != REF["inv_freq_1"]).any()


def test_fma_rounds_once():
    """(1 + 2^-12)² = 1 + 2^-11 + 2^-24 is halfway between two float32; a tiny c decides the
    direction. float64 loses c, and its tie would round to even (down) either way."""
    a = np.float32(1 + 2**-12)
    assert rope.fma(a, a, np.float32(2**-80)) == np.float32(1 + 2**-11 + 2**-23)
    assert rope.fma(a, a, np.float32(-(2**-80))) == np.float32(1 + 2**-11)
    assert rope.fma(np.float32(3), np.float32(5), np.float32(-15)) == 0

"""Precision promises of maths/ops.py that value tests on short texts cannot see (found by
mutation testing, docs/testing.md): float32 in, float32 out; RoPE angles rounded in float32
like PyTorch's, which matters only at long positions; SwiGLU's gate silent on overflow."""

from __future__ import annotations

import warnings

import numpy as np

from attn_cli.maths import ops
from attn_cli.maths.gelu import gelu

X = np.linspace(-12, 12, 97, dtype=np.float32)


def test_activations_keep_float32():
    for f in (gelu, ops.gelu_tanh, ops.silu):
        assert f(X).dtype == np.float32, f.__name__


def test_silu_of_very_negative_inputs_is_minus_zero_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = ops.silu(np.array([-1e4, -100.0], dtype=np.float32))
    assert np.all(y == 0) and y.dtype == np.float32


def test_rope_angles_are_float32_products_at_long_positions():
    """cos/sin of float32(position)·float32(inv_freq), written out here; at position ~4,000
    a float64 product rounds differently, so this pins the float32 one. (The cos and sin of
    those float32 angles are rounded correctly, from float64: see tests/test_rope.py.)"""
    inv_freq = (1.0 / 10000.0 ** (np.arange(0, 64, 2, dtype=np.float32) / np.float32(64))).astype(np.float32)
    cos, sin = ops.rope_angles(inv_freq, 4096)
    angles32 = np.arange(4096, dtype=np.float32)[:, None] * inv_freq[None, :]
    assert cos.dtype == sin.dtype == np.float32 and cos.shape == (4096, 64)
    exact = angles32.astype(np.float64)
    assert np.array_equal(cos[:, :32], np.cos(exact).astype(np.float32)) and np.array_equal(sin[:, 32:], np.sin(exact).astype(np.float32))
    angles64 = np.arange(4096, dtype=np.float64)[:, None] * inv_freq.astype(np.float64)[None, :]
    assert not np.array_equal(np.cos(angles64).astype(np.float32), np.cos(angles32))  # the test can tell them apart


# --- maths/analysis.py ---

from attn_cli.maths import analysis  # noqa: E402


def test_rollout_steps_are_float64_with_rows_summing_to_one():
    a = np.full((3, 3), 1 / 3, dtype=np.float32)
    assert analysis.add_residual(a).dtype == np.float64
    assert np.allclose(analysis.add_residual(a).sum(axis=-1), 1.0, atol=1e-15)


def test_entropy_of_a_one_hot_row_is_plus_zero():
    from attn_cli.maths.headsums import row_entropy

    h = row_entropy(np.array([[1.0, 0.0, 0.0]], dtype=np.float32))
    assert h[0] == 0 and not np.signbit(h[0])


def test_aligned_weights_keep_their_dtype():
    a, b, diff = analysis.compare_rows(np.ones((2, 2), np.float32), np.ones((2, 3), np.float32), [(0, 0), (1, 1), (None, 2)])
    assert a.dtype == b.dtype == diff.dtype == np.float32
    assert diff.tolist() == [[0, 0, 1], [0, 0, 1]]


def test_most_changed_heads_keep_head_order_on_ties():
    diff = np.array([[0.1, -0.1]] * 40 + [[0.5, 0.0]], dtype=np.float32)
    assert analysis.most_changed_heads(diff)[:3] == [40, 0, 1]
    assert analysis.most_changed_heads(diff)[1:] == list(range(40))

"""The pure math: hand-worked values, and properties that must hold for any input."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from attn_cli.maths.gelu import erf, erfc, gelu
from attn_cli.maths.ops import attention_rows, layer_norm, linear, merge_heads, softmax, split_heads

finite = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False, width=32)
rows = arrays(np.float32, st.tuples(st.integers(1, 5), st.integers(1, 40)), elements=finite)


def attention(q, k, v, visible=None):
    """Every row of the textbook steps at scale 1/√d_k, and their output: scores, scaled
    scores, weights (heads, seq, seq), output (heads, seq, d)."""
    scores, scaled, weights = attention_rows(q, k, 1.0 / np.sqrt(q.shape[-1]), visible)
    return scores, scaled, weights, weights @ v


def test_softmax_hand_worked():
    np.testing.assert_allclose(softmax(np.array([0.0, math.log(3.0)])), [0.25, 0.75], rtol=1e-12)


@given(rows)
def test_softmax_rows_are_distributions(x):
    w = softmax(x)
    assert np.all(w >= 0)
    np.testing.assert_allclose(w.sum(axis=-1), 1.0, rtol=1e-5)


@given(
    arrays(np.float64, st.tuples(st.integers(1, 5), st.integers(1, 40)), elements=st.floats(-1e4, 1e4)),
    st.floats(min_value=-1e3, max_value=1e3),
)
def test_softmax_ignores_a_constant_added_to_a_row(x, c):
    # In float64, so that x + c itself is (almost) exact: float32 would round 1e-5 + 256 to 256.
    np.testing.assert_allclose(softmax(x + c), softmax(x), atol=1e-9)


@given(arrays(np.float32, (3, 7), elements=st.sampled_from([3e38, -3e38, 1e30, -1e30, 0.0, 88.0, -104.0])))
def test_softmax_of_extreme_scores_is_finite(x):
    w = softmax(x)
    assert np.all(np.isfinite(w))
    np.testing.assert_allclose(w.sum(axis=-1), 1.0, rtol=1e-6)


def test_softmax_of_a_fully_masked_row_is_zero_not_nan():
    w = softmax(np.array([[-np.inf, -np.inf], [0.0, -np.inf]]))
    np.testing.assert_array_equal(w, [[0.0, 0.0], [1.0, 0.0]])


def test_erf_matches_math_erf():
    x = np.linspace(-7, 7, 20001)
    got = erf(x)
    want = np.array([math.erf(v) for v in x])
    np.testing.assert_allclose(got, want, atol=2e-7)
    # erfc keeps relative accuracy in the tail, where GELU of negative inputs lives.
    tail = x[x > 1]
    np.testing.assert_allclose(erfc(tail), [math.erfc(v) for v in tail], rtol=2e-7)


def test_gelu_is_exact_not_tanh():
    x = np.array([-9.0, -3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0], dtype=np.float32)
    exact = [v * 0.5 * (1 + math.erf(v / math.sqrt(2))) for v in x.astype(float)]
    np.testing.assert_allclose(gelu(x), exact, rtol=3e-7, atol=1e-12)
    assert gelu(x).dtype == np.float32
    # The tanh approximation differs by ~1e-4 at x = -3: we must not be it.
    tanh = 0.5 * -3 * (1 + math.tanh(math.sqrt(2 / math.pi) * (-3 + 0.044715 * -27)))
    assert abs(float(gelu(np.float32([-3.0]))[0]) - tanh) > 1e-4


def test_gelu_keeps_its_relative_accuracy_everywhere():
    # Every float32 step of 6e-5 from -12 to 12 (the negative tail down to 1e-32), against
    # x·erfc(-x/√2)/2 from the C library in float64: within 2.2e-7 relatively (float64
    # throughout gives 1.6e-7); in blocks, so block edges are crossed too.
    x = np.linspace(-12, 12, 400_001).astype(np.float32)
    exact = np.array([v * 0.5 * math.erfc(-v / math.sqrt(2)) for v in x.astype(float)])
    got = gelu(x).astype(float)
    assert got.dtype == np.float64 and gelu(x).dtype == np.float32
    np.testing.assert_allclose(got, exact, rtol=2.2e-7, atol=0)
    np.testing.assert_array_equal(gelu(x.reshape(-1, 1))[:, 0], gelu(x))  # shape does not matter


def test_gelu_of_extreme_inputs():
    y = gelu(np.array([1e30, -1e30, 40.0, -40.0, 0.0], dtype=np.float32))
    np.testing.assert_array_equal(y, np.array([1e30, 0.0, 40.0, 0.0, 0.0], dtype=np.float32))


def test_layer_norm_hand_worked():
    x = np.array([[1.0, 2.0, 3.0, 6.0]], dtype=np.float32)  # mean 3, variance 3.5
    out = layer_norm(x, np.array([1, 1, 2, 1], np.float32), np.array([0, 0, 0, 1], np.float32), eps=0.0)
    s = math.sqrt(3.5)
    np.testing.assert_allclose(out, [[-2 / s, -1 / s, 0.0, 3 / s + 1]], rtol=1e-6)


def test_linear_uses_pytorch_weight_layout():
    x = np.array([[1.0, 2.0]], np.float32)
    w = np.array([[1.0, 0.0], [0.0, 10.0], [1.0, 1.0]], np.float32)  # (out=3, in=2)
    np.testing.assert_array_equal(linear(x, w, np.array([0, 0, 0.5], np.float32)), [[1.0, 20.0, 3.5]])


def test_split_and_merge_heads_round_trip():
    x = np.arange(3 * 8, dtype=np.float32).reshape(3, 8)
    h = split_heads(x, 2)
    assert h.shape == (2, 3, 4)
    np.testing.assert_array_equal(h[1, 2], x[2, 4:])
    np.testing.assert_array_equal(merge_heads(h), x)


def test_attention_hand_worked():
    # One head, d_k = 4 (√d_k = 2). Query 0 matches key 1 with Q·K = 4 -> scaled 2.
    q = np.array([[[2.0, 0, 0, 0], [0, 0, 0, 0]]], np.float32)
    k = np.array([[[0.0, 0, 0, 0], [2.0, 0, 0, 0]]], np.float32)
    v = np.array([[[1.0, 0, 0, 0], [0.0, 1, 0, 0]]], np.float32)
    scores, scaled, weights, out = attention(q, k, v)
    np.testing.assert_array_equal(scores[0], [[0, 4], [0, 0]])
    np.testing.assert_array_equal(scaled[0], [[0, 2], [0, 0]])
    e2 = math.exp(2)
    np.testing.assert_allclose(weights[0], [[1 / (1 + e2), e2 / (1 + e2)], [0.5, 0.5]], rtol=1e-6)
    np.testing.assert_allclose(out[0, 0], [1 / (1 + e2), e2 / (1 + e2), 0, 0], rtol=1e-6)


def test_attention_mask_zeroes_weights_but_keeps_scores():
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((2, 3, 4)).astype(np.float32) for _ in range(3))
    causal = np.tril(np.ones((3, 3), bool))
    scores, _, weights, _ = attention(q, k, v, causal)
    assert np.all(weights[:, ~causal] == 0)
    assert np.all(scores[:, ~causal] != 0)
    np.testing.assert_allclose(weights.sum(-1), 1, rtol=1e-6)


@settings(max_examples=50)
@given(arrays(np.float32, (2, 5, 8), elements=st.floats(-50, 50, width=32)))
def test_attention_weights_are_distributions_and_output_is_their_average(x):
    scores, scaled, weights, out = attention(x, x, x)
    assert np.all(weights >= 0) and np.all(np.isfinite(weights))
    np.testing.assert_allclose(weights.sum(-1), 1, rtol=1e-5)
    np.testing.assert_allclose(scaled, scores / np.sqrt(8), rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(out, weights @ x, rtol=1e-5, atol=1e-4)


def test_blocked_attention_output_equals_the_one_shot_product(monkeypatch):
    """Long texts are computed a block of query rows at a time, and a causal block multiplies
    only the keys it can see; neither may change a number."""
    from attn_cli.maths import attention as blocked
    from attn_cli.maths.attention import attention_output
    from attn_cli.maths.ops import causal_visibility

    monkeypatch.setattr(blocked, "PRODUCT_ROWS", 1)  # else a block has at least that many rows: one block here

    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal((3, 37, 8)).astype(np.float32) for _ in range(3))
    _, _, _, whole = attention(q, k, v)
    blocked = attention_output(q, k, v, 1 / np.sqrt(8), block_elements=37 * 5)  # 5 rows per block
    np.testing.assert_allclose(blocked, whole, rtol=1e-6, atol=1e-6)
    window = causal_visibility(slice(None), 37, window=4)
    _, _, weights, whole = attention(q, k, v, window)
    for block in (37 * 7, 37 * 3 * 40, 1):  # 7 rows, every row and head at once, one row of one head
        blocked = attention_output(q, k, v, 1 / np.sqrt(8), causal=True, window=4, block_elements=block)
        np.testing.assert_allclose(blocked, whole, rtol=1e-6, atol=1e-6)
    assert np.count_nonzero(weights[0, 20]) == 4  # a row sees itself and the three before


def test_attention_output_of_grouped_heads_and_cached_positions(monkeypatch):
    """kv head h serves query heads h·g … h·g+g-1 without being repeated; with a KV cache the
    queries are the last positions (start > 0) and see every earlier key."""
    from attn_cli.maths import attention as blocked
    from attn_cli.maths.attention import attention_output
    from attn_cli.maths.ops import causal_visibility

    monkeypatch.setattr(blocked, "PRODUCT_ROWS", 1)  # let block_elements set the blocks

    rng = np.random.default_rng(2)
    q = rng.standard_normal((6, 30, 4)).astype(np.float32)
    k, v = (rng.standard_normal((2, 30, 4)).astype(np.float32) for _ in range(2))
    k6, v6 = np.repeat(k, 3, axis=0), np.repeat(v, 3, axis=0)
    _, _, _, whole = attention(q, k6, v6, causal_visibility(slice(None), 30))
    for block in (30 * 3 * 4, 1 << 18):
        np.testing.assert_allclose(attention_output(q, k, v, 0.5, causal=True, block_elements=block), whole, rtol=1e-6, atol=1e-6)
    last = attention_output(q[:, 25:], k, v, 0.5, causal=True, start=25, block_elements=30 * 3 * 2)
    np.testing.assert_allclose(last, whole[:, 25:], rtol=1e-6, atol=1e-6)


def _attention_float64(q, k, v, scale, causal):
    s = (q.astype(np.float64) * scale) @ k.astype(np.float64).transpose(0, 2, 1)
    if causal:
        s = np.where(np.tri(s.shape[-1], dtype=bool), s, -np.inf)
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)) @ v.astype(np.float64)


@pytest.mark.parametrize("causal", [False, True])
def test_attention_output_skips_the_softmax_shift_only_where_exp_cannot_overflow_or_underflow(causal, monkeypatch):
    """Moderate scores: exp(s) without the max subtracted, as exact as with it. Scores of ±200
    (beyond float32's exp, e^±88): the shift, or exp would give inf or 0 and the rows NaN."""
    from attn_cli.maths import attention as blocked

    rng = np.random.default_rng(4)
    q, k, v = (rng.standard_normal((2, 40, 16)).astype(np.float32) for _ in range(3))
    want = _attention_float64(q, k, v, 0.25, causal)
    unshifted = blocked.attention_output(q, k, v, 0.25, causal)
    np.testing.assert_allclose(unshifted, want, rtol=0, atol=2e-6)
    monkeypatch.setattr(blocked, "SAFE_EXPONENT", -np.inf)  # always shift
    shifted = blocked.attention_output(q, k, v, 0.25, causal)
    np.testing.assert_allclose(shifted, want, rtol=0, atol=2e-6)
    assert not np.array_equal(unshifted, shifted)  # the two paths did run
    monkeypatch.undo()
    big_q = np.zeros_like(q)
    big_q[..., 0] = 40.0
    for sign in (1, -1):  # every score +200 (exp overflows) or -200 (exp underflows to 0)
        big_k = np.zeros_like(k)
        big_k[..., 0] = sign * 20.0
        out = blocked.attention_output(big_q, big_k, v, 0.25, causal)
        np.testing.assert_allclose(out, _attention_float64(big_q, big_k, v, 0.25, causal), rtol=0, atol=1e-6)


def test_causal_visibility():
    from attn_cli.maths.ops import causal_visibility

    assert causal_visibility(slice(None), 3).tolist() == [[True, False, False], [True, True, False], [True, True, True]]
    assert causal_visibility(np.array([4]), 6, window=2).tolist() == [[False, False, False, True, True, False]]


@given(st.integers(0, 60), st.integers(1, 20), st.one_of(st.none(), st.integers(1, 30)))
def test_mask_bias_hides_exactly_what_causal_visibility_hides(first, rows, window):
    from attn_cli.maths.attention import key_range, mask_bias
    from attn_cli.maths.ops import causal_visibility

    keys = first + rows
    lo, hi = key_range(first, first + rows - 1, keys, True, window)
    scores = np.zeros((rows, hi - lo), np.float32)
    for offset, bias in mask_bias(first, rows, lo, hi, window):
        scores[:, offset : offset + bias.shape[1]] += bias
    visible = causal_visibility(slice(first, first + rows), keys, window)  # rows of positions first …
    assert not visible[:, :lo].any() and not visible[:, hi:].any()  # the keys skipped are all hidden
    np.testing.assert_array_equal(np.isfinite(scores), visible[:, lo:hi])


@given(st.integers(0, 60), st.integers(1, 20), st.integers(0, 60), st.one_of(st.none(), st.integers(1, 30)))
def test_an_encoders_two_sided_window_hides_exactly_the_keys_window_or_more_away(first, rows, after, window):
    """ModernBERT's local layers: query p sees key j when |p - j| < window, on either side;
    the blocked path skips or masks exactly the others, and with no window hides nothing."""
    from attn_cli.maths.attention import key_range, mask_bias
    from attn_cli.maths.ops import two_sided_visibility

    keys = first + rows + after
    lo, hi = key_range(first, first + rows - 1, keys, False, window)
    scores = np.zeros((rows, hi - lo), np.float32)
    for offset, bias in mask_bias(first, rows, lo, hi, window, causal=False):
        scores[:, offset : offset + bias.shape[1]] += bias
    visible = np.ones((rows, keys), bool) if window is None else two_sided_visibility(slice(first, first + rows), keys, window)
    assert not visible[:, :lo].any() and not visible[:, hi:].any()
    np.testing.assert_array_equal(np.isfinite(scores), visible[:, lo:hi])


def test_two_sided_visibility():
    from attn_cli.maths.ops import two_sided_visibility

    assert two_sided_visibility(np.array([2]), 6, window=2).tolist() == [[False, True, True, True, False, False]]


def test_gelu_beside_other_threads_takes_larger_blocks_and_gives_the_same_numbers(monkeypatch):
    from attn_cli.maths import gelu as module

    x = np.linspace(-12, 12, 200_001).astype(np.float32)
    blocks = []
    real = module._gelu_flat
    monkeypatch.setattr(module, "_gelu_flat", lambda a, out, block: blocks.append(block) or real(a, out, block))
    alone, beside = module.gelu(x), module.gelu(x, beside_threads=True)
    assert blocks == [module._GELU_BLOCK, module._GELU_BLOCK_THREADED] and module._GELU_BLOCK_THREADED > module._GELU_BLOCK
    np.testing.assert_array_equal(alone, beside)


def test_a_score_bias_then_a_soft_cap_reach_the_softmax_in_that_order():
    from attn_cli.maths.ops import adjusted_scores, attention_rows

    rng = np.random.default_rng(3)
    q, k = rng.normal(size=(2, 3, 4)).astype(np.float32), rng.normal(size=(2, 5, 4)).astype(np.float32)
    bias = rng.normal(size=(2, 3, 5)).astype(np.float32) * 4
    scores, scaled, weights = attention_rows(q, k, 0.5, bias=bias, softcap=2.0)
    capped = 2.0 * np.tanh((scores.astype(np.float64) * 0.5 + bias) / 2.0)
    want = np.exp(capped) / np.exp(capped).sum(-1, keepdims=True)
    np.testing.assert_allclose(weights, want, atol=1e-6)
    np.testing.assert_allclose(scaled, scores * np.float32(0.5))
    assert np.abs(adjusted_scores(scaled, bias, 2.0)).max() < 2.0  # the cap bounds what the softmax reads
    assert adjusted_scores(scaled) is scaled  # nothing to adjust: the scaled scores themselves


def test_attend_with_a_score_bias_equals_the_textbook_rows():
    from dataclasses import replace

    from attn_cli.loading.model import load_model
    from attn_cli.models.base import LayerTrace, attend

    model = load_model(Path(__file__).parent / "fixtures" / "tiny" / "llama")
    s = replace(model.spec, attn_softcap=3.0)
    rng = np.random.default_rng(4)
    q = rng.normal(size=(4, 6, 16)).astype(np.float32)
    k, v = rng.normal(size=(2, 6, 16)).astype(np.float32), rng.normal(size=(2, 6, 16)).astype(np.float32)
    bias = rng.normal(size=(4, 6, 6)).astype(np.float32)
    out, *_ = attend(q, k, v, s, 0, bias=bias)
    trace = LayerTrace(0, s, q, k, v, out, None, score_bias=bias)
    weights = trace.rows()[2]
    np.testing.assert_allclose(out, weights @ np.repeat(v, 2, axis=0), atol=1e-6)
    assert trace.adjusts == "bias+cap" and np.triu(weights[0], 1).max() == 0  # causal still
    plain, *_ = attend(q, k, v, model.spec, 0)
    assert np.abs(plain - out).max() > 1e-3  # the bias and cap changed the output

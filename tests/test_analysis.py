"""The analyses: hand-worked values (arithmetic in the comments), and properties for any input."""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from attn_cli.maths.analysis import (
    add_residual,
    align_words,
    classify_heads,
    compare_rows,
    from_words,
    most_changed_heads,
    output_slices,
    rollout,
    rollout_row,
    to_words,
    value_norms,
    weight_on,
    word_matrix,
)

F32 = np.float32


@st.composite
def stochastic(draw, causal: bool = False, lead: tuple[int, ...] | None = None, seq: int | None = None):
    """Row-stochastic float32 maps (*lead, seq, seq); with causal=True, zero above the diagonal."""
    seq = seq or draw(st.integers(1, 8))
    lead = lead if lead is not None else (draw(st.integers(1, 3)),)
    x = draw(arrays(np.float64, (*lead, seq, seq), elements=st.floats(0.01, 1.0)))
    if causal:
        x = np.tril(x)
    return (x / x.sum(axis=-1, keepdims=True)).astype(F32)


@st.composite
def maps_and_groups(draw):
    """Full maps and a partition of their tokens into words (contiguous runs, like word pieces)."""
    weights = draw(stochastic())
    seq = weights.shape[-1]
    cuts = sorted(draw(st.sets(st.integers(1, seq - 1), max_size=seq - 1))) if seq > 1 else []
    bounds = [0, *cuts, seq]
    return weights, [tuple(range(a, b)) for a, b in pairwise(bounds)]


# --- Word level ---------------------------------------------------------------------------------

# Tokens: [CLS] play ##ing [SEP] -> words: [CLS], "playing", [SEP].
GROUPS = [(0,), (1, 2), (3,)]
W4 = np.array(
    [
        [0.1, 0.2, 0.3, 0.4],
        [0.5, 0.1, 0.1, 0.3],
        [0.3, 0.3, 0.2, 0.2],
        [0.0, 0.0, 0.0, 1.0],
    ],
    dtype=F32,
)


def test_to_words_sums_a_split_words_columns():
    # Row 0: [0.1, 0.2 + 0.3, 0.4] = [0.1, 0.5, 0.4].
    np.testing.assert_allclose(to_words(W4[0], GROUPS), [0.1, 0.5, 0.4], atol=1e-7)
    assert to_words(W4, GROUPS).dtype == F32


def test_from_words_averages_a_split_words_rows():
    # "playing" = mean of rows 1 and 2: [(0.5+0.3)/2, (0.1+0.3)/2, (0.1+0.2)/2, (0.3+0.2)/2].
    got = from_words(W4, GROUPS)
    np.testing.assert_allclose(got[1], [0.4, 0.2, 0.15, 0.25], atol=1e-7)
    np.testing.assert_allclose(got[[0, 2]], W4[[0, 3]], atol=0)
    assert got.dtype == F32


def test_word_matrix_hand_worked():
    # Row "playing" = [0.4, 0.2 + 0.15, 0.25]; [CLS] row = [0.1, 0.2 + 0.3, 0.4]; [SEP] = [0, 0, 1].
    want = [[0.1, 0.5, 0.4], [0.4, 0.35, 0.25], [0.0, 0.0, 1.0]]
    np.testing.assert_allclose(word_matrix(W4, GROUPS), want, atol=1e-7)


def test_word_groups_need_not_be_contiguous_and_must_not_be_empty():
    # Word 0 = tokens 0 and 3: column sum 0.1 + 0.4 = 0.5.
    np.testing.assert_allclose(to_words(W4[0], [(0, 3), (1,), (2,)]), [0.5, 0.2, 0.3], atol=1e-7)
    with pytest.raises(ValueError):
        to_words(W4, [(0,), (), (1, 2, 3)])


@given(maps_and_groups())
def test_word_rows_still_sum_to_one(case):
    weights, groups = case
    for got in (to_words(weights, groups), from_words(weights, groups), word_matrix(weights, groups)):
        np.testing.assert_allclose(got.sum(axis=-1), 1.0, atol=1e-5)
    assert word_matrix(weights, groups).shape == (weights.shape[0], len(groups), len(groups))


@given(stochastic())
def test_single_token_words_change_nothing(weights):
    groups = [(t,) for t in range(weights.shape[-1])]
    np.testing.assert_array_equal(word_matrix(weights, groups), weights)


# --- Rollout ------------------------------------------------------------------------------------

# Layer 1: both tokens look at token 1; layer 2: both look at token 0.
#   Â_1 = ½·[[0, 1], [0, 1]] + ½·I = [[0.5, 0.5], [0, 1]]
#   Â_2 = ½·[[1, 0], [1, 0]] + ½·I = [[1, 0], [0.5, 0.5]]
#   R = Â_2·Â_1: row 0 = 1·[0.5, 0.5] + 0·[0, 1] = [0.5, 0.5]
#                row 1 = 0.5·[0.5, 0.5] + 0.5·[0, 1] = [0.25, 0.75]
# (The wrong order Â_1·Â_2 would give [[0.75, 0.25], [0.5, 0.5]].)
A1 = np.array([[0.0, 1.0], [0.0, 1.0]], dtype=F32)
A2 = np.array([[1.0, 0.0], [1.0, 0.0]], dtype=F32)
R = [[0.5, 0.5], [0.25, 0.75]]


def test_rollout_hand_worked_two_layers():
    got = rollout([A1, A2])
    np.testing.assert_allclose(got, R, atol=1e-7)
    assert got.dtype == F32
    np.testing.assert_allclose(rollout_row([A1, A2], 1), R[1], atol=1e-7)
    np.testing.assert_allclose(rollout_row([A1, A2], 0), R[0], atol=1e-7)


def test_add_residual_renormalises_rows():
    # ½·[[0.5, 0], [0.25, 0.25]] + ½·I = [[0.75, 0], [0.125, 0.625]]; row 1 / 0.75 = [1/6, 5/6].
    a = np.array([[0.5, 0.0], [0.25, 0.25]])
    np.testing.assert_allclose(add_residual(a), [[1.0, 0.0], [1 / 6, 5 / 6]], rtol=1e-12)
    np.testing.assert_allclose(rollout_row([a], 1), [1 / 6, 5 / 6], rtol=1e-12)


def test_rollout_needs_a_layer():
    with pytest.raises(ValueError):
        rollout([])
    with pytest.raises(ValueError):
        rollout_row([], 0)


@given(st.integers(1, 4).flatmap(lambda layers: stochastic(lead=(layers,))), st.data())
def test_rollout_row_is_the_full_rollouts_row_and_sums_to_one(maps, data):
    full = rollout(list(maps))
    np.testing.assert_allclose(full.sum(axis=-1), 1.0, atol=1e-5)
    query = data.draw(st.integers(0, maps.shape[-1] - 1))
    row = rollout_row(list(maps), query)
    np.testing.assert_allclose(row, full[query], atol=1e-6)
    assert np.all(row >= 0)


@given(st.integers(1, 4).flatmap(lambda layers: stochastic(causal=True, lead=(layers,))))
def test_causal_rollout_stays_lower_triangular(maps):
    full = rollout(list(maps))
    np.testing.assert_array_equal(np.triu(full, 1), 0.0)
    np.testing.assert_allclose(full.sum(axis=-1), 1.0, atol=1e-5)


# --- Value norms --------------------------------------------------------------------------------

# Two heads, d = 2, two tokens, hidden = 4.
ALPHA = np.array([[0.75, 0.25], [0.5, 0.5]], dtype=F32)
VALUES = np.array([[[3, 4], [1, 0]], [[0, 2], [6, 8]]], dtype=F32)
# Head 0's slice doubles v into hidden dims 0–1; head 1's keeps only v's first coordinate, in dim 2.
W_O = np.array([[2, 0, 0, 0], [0, 2, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]], dtype=F32)


def test_output_slices_give_each_head_its_rows():
    w = np.arange(24, dtype=F32).reshape(4, 6)
    slices = output_slices(w, 2)
    assert slices.shape == (2, 2, 6)
    np.testing.assert_array_equal(slices[0], w[0:2])
    np.testing.assert_array_equal(slices[1], w[2:4])
    with pytest.raises(ValueError):
        output_slices(w, 3)


def test_value_norms_hand_worked():
    # Head 0: α = (0.75, 0.25), v = (3, 4), (1, 0); W_O^0 doubles v into hidden dims 0–1.
    # Per token: 0.75·‖(3, 4)‖ = 0.75·5 = 3.75, 0.25·‖(1, 0)‖ = 0.25; through W_O: 0.75·‖(6, 8)‖ = 7.5, 0.25·2 = 0.5.
    # Both tokens as one word: ‖0.75·(3, 4) + 0.25·(1, 0)‖ = ‖(2.5, 3)‖ = √15.25, doubled √61.
    slices = output_slices(W_O, 2)
    value, output = value_norms(ALPHA[0], VALUES[0], slices[0], [(0,), (1,)])
    np.testing.assert_allclose(value, [3.75, 0.25], rtol=1e-6)
    np.testing.assert_allclose(output, [7.5, 0.5], rtol=1e-6)
    assert value.dtype == output.dtype == F32
    np.testing.assert_allclose(value_norms(ALPHA[0], VALUES[0], slices[0], [(0, 1)]), [[math.sqrt(15.25)], [math.sqrt(61)]], rtol=1e-6)
    # Head 1: 0.5·‖(0, 2)‖ = 1.0, 0.5·‖(6, 8)‖ = 5.0; W_O^1 keeps only v's first coordinate, in dim 2:
    # (0, 2) -> 0, (6, 8) -> 0.5·6 = 3.0. Token 0 has weight 0.5 yet adds nothing to the output.
    value, output = value_norms(ALPHA[1], VALUES[1], slices[1], [(0,), (1,)])
    np.testing.assert_allclose(value, [1.0, 5.0], rtol=1e-6)
    np.testing.assert_allclose(output, [0.0, 3.0], rtol=1e-6)


@given(
    arrays(np.float32, 5, elements=st.floats(0, 1, width=32)),
    arrays(np.float32, (5, 2), elements=st.floats(-100, 100, width=32)),
)
def test_identity_output_projection_keeps_the_norms(weights, values):
    # W_O = I: a head's slice copies v into its own block of hidden dims, so ‖α·v·W_O^h‖ = ‖α·v‖.
    slices = output_slices(np.eye(4, dtype=F32), 2)
    value, output = value_norms(weights, values, slices[1], [(j,) for j in range(5)])
    np.testing.assert_allclose(output, value, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(value, np.abs(weights) * np.linalg.norm(values, axis=-1), rtol=1e-5, atol=1e-5)


def test_many_groups_read_the_output_norm_from_the_gram_matrix():
    # More groups (40) than head dims (4): ‖x·W_O‖ is read from x·(W_O·W_Oᵀ)·xᵀ, which must equal
    # the norm of the direct product (a random projection: a fixture, not a model).
    rng = np.random.default_rng(0)
    slices = output_slices(rng.standard_normal((8, 6)).astype(F32), 2)
    weights, values = rng.random(40).astype(F32), rng.standard_normal((40, 4)).astype(F32)
    value, output = value_norms(weights, values, slices[0], [(j,) for j in range(40)])
    direct = (weights[:, None].astype(np.float64) * values) @ slices[0].astype(np.float64)
    np.testing.assert_allclose(output, np.linalg.norm(direct, axis=-1), rtol=1e-6)
    np.testing.assert_allclose(value, weights * np.linalg.norm(values, axis=-1), rtol=1e-6)


# --- Naming heads ---------------------------------------------------------------------------------

# A 3-token decoder, "the cat ."; head 0 looks at the previous token, head 1 mostly at itself:
# rows [1, 0, 0], [1, 0, 0], [0, 1, 0] and [1, 0, 0], [.5, .5, 0], [0, .25, .75]. Its means, by hand
# (their sums are worked in tests/test_headsums.py): previous token over rows 1–2, (1 + 1)/2 and
# (.5 + .25)/2; self over rows 0–2, 1/3 and (1 + .5 + .75)/3; first token (1 + 1 + 0)/3, (1 + .5)/3.
MEANS = {
    "previous-token": np.array([1.0, 0.375]),
    "self": np.array([1 / 3, 0.75]),
    "next-token": np.array([0.0, 0.0]),
    "special-token": np.array([0.0, 0.0]),
    "first-token": np.array([2 / 3, 0.5]),
    "punctuation": np.array([0.0, 0.25]),
    "entropy": np.array([0.0, 0.4]),
}


def test_classification_hand_worked():
    # Passing 0.5: head 0 previous-token 1.0, head 1 self 0.75, head 0 first-token 2/3, head 1
    # first-token 0.5 (≥ counts). Entropy is not a kind and is ignored.
    got = classify_heads(MEANS, threshold=0.5)
    assert [(h, kind) for h, kind, _ in got] == [(0, "previous-token"), (1, "self"), (0, "first-token"), (1, "first-token")]
    np.testing.assert_allclose([v for *_, v in got], [1.0, 0.75, 2 / 3, 0.5], rtol=1e-6)
    assert classify_heads(MEANS, threshold=0.8) == [(0, "previous-token", 1.0)]


# --- Compare ------------------------------------------------------------------------------------


def test_align_words_the_cat_sat_vs_the_dog_sat():
    # "cat" -> "dog" is a one-word replace: paired by position.
    assert align_words(["The", "cat", "sat"], ["the", "dog", "sat"]) == [(0, 0), (1, 1), (2, 2)]


def test_align_words_with_a_longer_replace_and_an_insert():
    # equal "the"; replace [cat] by [big, dog]: (1, 1), (None, 2); equal "sat"; insert "down".
    got = align_words(["The", "cat", "sat"], ["the", "big", "dog", "SAT", "down"])
    assert got == [(0, 0), (1, 1), (None, 2), (2, 3), (None, 4)]
    assert align_words(["a", "b"], []) == [(0, None), (1, None)]


def test_align_words_matches_common_words_in_long_texts():
    # With difflib's default autojunk, "the" (over 1% of 200+ words) could never be matched.
    words = ["the", "x"] * 150
    assert align_words(words, words) == [(i, i) for i in range(300)]


def test_compare_rows_hand_worked():
    # Head 0: [0.6, 0.1, 0.3] -> [0.5, 0.2, 0.3]: diff = b − a = [−0.1, 0.1, 0], L1 = 0.2.
    # Head 1: [0.2, 0.5, 0.3] -> [0.2, 0.1, 0.7]: diff = [0, −0.4, 0.4], L1 = 0.8: changed most.
    a = np.array([[0.6, 0.1, 0.3], [0.2, 0.5, 0.3]], dtype=F32)
    b = np.array([[0.5, 0.2, 0.3], [0.2, 0.1, 0.7]], dtype=F32)
    a_al, b_al, diff = compare_rows(a, b, align_words(["The", "cat", "sat"], ["The", "dog", "sat"]))
    np.testing.assert_array_equal(a_al, a)
    np.testing.assert_array_equal(b_al, b)
    np.testing.assert_allclose(diff, [[-0.1, 0.1, 0.0], [0.0, -0.4, 0.4]], atol=1e-7)
    assert most_changed_heads(diff) == [1, 0]


def test_compare_rows_puts_zero_where_a_side_has_no_word():
    # Alignment [(0, 0), (None, 1), (1, 2)]: A's columns land at 0 and 2, with 0 between.
    a = np.array([[0.7, 0.3]], dtype=F32)
    b = np.array([[0.5, 0.25, 0.25]], dtype=F32)
    a_al, b_al, diff = compare_rows(a, b, [(0, 0), (None, 1), (1, 2)])
    np.testing.assert_array_equal(a_al, np.array([[0.7, 0.0, 0.3]], dtype=F32))
    np.testing.assert_array_equal(b_al, b)
    # diff = [0.5 − 0.7, 0.25 − 0, 0.25 − 0.3] = [−0.2, 0.25, −0.05].
    np.testing.assert_allclose(diff, [[-0.2, 0.25, -0.05]], atol=1e-7)


word_lists = st.lists(st.sampled_from(["the", "The", "cat", "dog", "sat", "on", "mat", "."]), max_size=12)


@given(word_lists, word_lists)
def test_alignment_uses_every_word_once_in_order(words_a, words_b):
    pairs = align_words(words_a, words_b)
    assert [i for i, _ in pairs if i is not None] == list(range(len(words_a)))
    assert [j for _, j in pairs if j is not None] == list(range(len(words_b)))
    assert all(i is not None or j is not None for i, j in pairs)


@given(word_lists)
def test_a_text_aligns_with_itself_in_any_case(words):
    assert align_words(words, [w.upper() for w in words]) == [(i, i) for i in range(len(words))]


# --- One query's row ----------------------------------------------------------------------------


def test_weight_on_sums_the_tokens_once():
    row = np.array([0.1, 0.2, 0.3, 0.4], dtype=F32)
    # Tokens 1 and 3: 0.2 + 0.4 = 0.6 (a repeated index is not counted twice).
    assert weight_on(row, (1, 3, 3)) == pytest.approx(0.6)
    assert weight_on(row, ()) == 0.0

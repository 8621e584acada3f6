"""The corpus statistics' maths: TransformerLens' detector scores worked by hand on small
matrices, the per-text sums, and that sums merged over any split equal one pass."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attn_cli.maths.headsums import (
    METRICS,
    DetectorOptions,
    HeadSums,
    duplicate_token_pattern,
    induction_pattern,
    layer_sums,
    previous_token_pattern,
    repeated_random_tokens,
    row_entropy,
    score,
    visible_keys,
)

# One causal head over ids [5, 7, 5]: rows sum to 1, nothing above the diagonal.
A = np.array([[[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.2, 0.3, 0.5]]])
IDS = np.array([5, 7, 5])


def test_patterns_are_transformer_lens_definitions():
    assert previous_token_pattern(3).tolist() == [[0, 0, 0], [1, 0, 0], [0, 1, 0]]
    # An earlier copy only (j < i), never the token itself.
    assert duplicate_token_pattern(IDS).tolist() == [[0, 0, 0], [0, 0, 0], [1, 0, 0]]
    # The token after the earlier copy: row 2 (a second 5) looks at position 1 (the 7 after the first 5).
    assert induction_pattern(IDS).tolist() == [[0, 0, 0], [0, 0, 0], [0, 1, 0]]
    ids = np.array([1, 2, 3, 1, 2, 3])
    on = {(int(i), int(j)) for i, j in zip(*np.nonzero(induction_pattern(ids)))}
    assert on == {(3, 1), (4, 2), (5, 3)}
    assert {(int(i), int(j)) for i, j in zip(*np.nonzero(duplicate_token_pattern(ids)))} == {(3, 0), (4, 1), (5, 2)}


@pytest.mark.parametrize(
    ("exclude_bos", "exclude_current", "expected"),
    [
        (False, False, 0.8 / 3),  # (0.5 + 0.3) of the map's 3.0
        (True, False, 0.3 / 1.3),  # column 0 gone: 0.3 of 0 + 0.5 + 0.3 + 0.5
        (False, True, 0.8 / 1.0),  # diagonal gone: 0.8 of 0.5 + 0.2 + 0.3
        (True, True, 0.3 / 0.3),
    ],
)
def test_previous_token_mul_by_hand(exclude_bos, exclude_current, expected):
    got = score(A, previous_token_pattern(3), "mul", exclude_bos, exclude_current)
    assert got.shape == (1,) and got[0] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("exclude_bos", "exclude_current", "error"),
    [
        (False, False, 1.0 + 1.0 + 1.4),  # |A − D| row by row: [1,0,0], [.5,.5,0], [.2,.7,.5]
        (True, False, 0.0 + 0.5 + 1.2),
        (False, True, 0.0 + 0.5 + 0.9),
        (True, True, 0.0 + 0.0 + 0.7),
    ],
)
def test_previous_token_abs_by_hand(exclude_bos, exclude_current, error):
    got = score(A, previous_token_pattern(3), "abs", exclude_bos, exclude_current)
    assert got[0] == pytest.approx(1 - error / 3, rel=1e-12)


def test_duplicate_and_induction_scores_by_hand():
    assert score(A, duplicate_token_pattern(IDS), "mul")[0] == pytest.approx(0.2 / 3)
    assert score(A, induction_pattern(IDS), "mul")[0] == pytest.approx(0.3 / 3)
    # A perfect induction head on a repeated sequence scores 1 under both measures, once the
    # rows with no earlier copy (the first half) are left out of "mul" by having no pattern.
    ids = np.array([1, 2, 3, 1, 2, 3])
    perfect = induction_pattern(ids)[None]
    assert score(perfect, induction_pattern(ids), "mul")[0] == 1.0
    assert score(perfect, induction_pattern(ids), "abs")[0] == 1.0
    # Opposite of the pattern everywhere: "abs" reaches its floor, 1 − 2·(rows)/seq.
    assert score(np.eye(3)[None], previous_token_pattern(3), "abs")[0] == pytest.approx(1 - 5 / 3)
    with pytest.raises(ValueError, match="unknown measure"):
        score(A, previous_token_pattern(3), "max")


def test_repeated_random_tokens_are_seeded_and_repeat():
    vocab = np.arange(100, 200)
    a, b = repeated_random_tokens(vocab, 7, 3, seed=4), repeated_random_tokens(vocab, 7, 3, seed=4)
    assert a.shape == (3, 14) and (a == b).all() and (a[:, :7] == a[:, 7:]).all()
    assert np.isin(a, vocab).all() and not (repeated_random_tokens(vocab, 7, 3, seed=5) == a).all()


def test_layer_sums_of_one_text_by_hand():
    special = np.array([True, False, False])
    punct = np.array([False, True, False])
    parts, histogram = layer_sums(A, IDS, special, punct, visible_keys(3, causal=True))
    assert parts["first_token"] == (pytest.approx([1.7]), 3)
    assert parts["special"][0][0] == pytest.approx(1.7) and parts["punctuation"][0][0] == pytest.approx(0.8)
    assert parts["previous_token"] == (pytest.approx([0.8]), 2) and parts["next_token"] == (pytest.approx([0.0]), 2)
    assert parts["self"] == (pytest.approx([2.0]), 3)
    # Row 0 sees one key: no normalised entropy. Row 1: ln 2 / ln 2 = 1. Row 2: H / ln 3.
    h2 = -(0.2 * np.log(0.2) + 0.3 * np.log(0.3) + 0.5 * np.log(0.5))
    assert parts["entropy"][0][0] == pytest.approx(np.log(2) + h2)
    assert parts["entropy_normalised"] == (pytest.approx([1.0 + h2 / np.log(3)]), 2)
    assert histogram.tolist() == [[0] * 9 + [2]]  # 1.0 and 0.937 both in the last bin
    assert parts["sink_rate"] == (pytest.approx([1.0]), 1)  # mean first-token weight 0.57 > 0.3
    assert parts["previous_token_mul"][0][0] == pytest.approx(0.8 / 3)
    one = layer_sums(np.ones((1, 1, 1)), np.array([3]), special[:1], punct[:1], visible_keys(1, causal=False))[0]
    assert "previous_token_mul" not in one  # a one-token text gets no detector score (TransformerLens asserts 1 < seq)


def test_row_entropy_by_hand():
    # One-hot -> 0 (+0, not −0); (½, ½) -> ln 2; (¼, ¾) -> −(¼·ln ¼ + ¾·ln ¾) ≈ 0.5623. float32 stays float32.
    got = row_entropy(np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.0, 0.25, 0.75]], np.float32))
    np.testing.assert_allclose(got, [0.0, math.log(2), -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))], rtol=1e-6)
    assert got.dtype == np.float32 and not np.signbit(got[0])
    assert float(row_entropy(np.full(4, 0.25, np.float32))) == pytest.approx(math.log(4))


# A 3-token decoder, "the cat ." (tests/test_analysis.py names its heads from these means):
# head 0 looks at the previous token, head 1 mostly at itself.
MAPS = np.array([[[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], [[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.0, 0.25, 0.75]]], np.float32)


def test_masses_and_offsets_by_hand():
    parts = layer_sums(MAPS, np.array([1, 2, 3]), np.zeros(3, bool), np.array([False, False, True]), visible_keys(3, causal=True))[0]
    # Previous token, rows 1–2: head 0 1 + 1; head 1 0.5 + 0.25. Self, rows 0–2: 1 + 0 + 0; 1 + 0.5 + 0.75.
    assert parts["previous_token"] == (pytest.approx([2.0, 0.75]), 2)
    assert parts["self"] == (pytest.approx([1.0, 2.25]), 3)
    assert parts["next_token"] == (pytest.approx([0.0, 0.0]), 2)  # masked in a decoder
    # On "." (column 2): 0; 0.75. On the first token (column 0): 1 + 1 + 0; 1 + 0.5 + 0.
    assert parts["punctuation"] == (pytest.approx([0.0, 0.75]), 3)
    assert parts["first_token"] == (pytest.approx([2.0, 1.5]), 3)
    assert parts["special"] == (pytest.approx([0.0, 0.0]), 3)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), seq=st.integers(1, 8), causal=st.booleans())
def test_entropy_is_between_zero_and_log_of_visible_keys_and_masses_add_up(seed, seq, causal):
    weights, ids, special, _ = _text(np.random.default_rng(seed), seq, causal)
    visible = visible_keys(seq, causal)
    h = row_entropy(weights)  # (layers, heads, seq)
    assert np.all(h >= 0) and np.all(h <= np.log(visible) + 1e-5)
    # A mask and its complement hold every row's whole weight: seq rows of 1 between them.
    parts = layer_sums(weights[0], ids, special, ~special, visible)[0]
    np.testing.assert_allclose(parts["special"][0] + parts["punctuation"][0], seq, rtol=1e-5)


def test_merged_means_weigh_each_text_by_its_rows():
    # Previous token: MAPS has 2 rows (head 1: 0.75 in all); a two-token text [[1, 0], [1, 0]] has
    # 1 row at 1.0. Pooled head 1: (0.75 + 1.0)/3 = 1.75/3; head 0: (2 + 1)/3 = 1.
    one, two = HeadSums(1, 2), HeadSums(1, 2)
    for sums, maps in ((one, MAPS), (two, np.array([[[1.0, 0.0], [1.0, 0.0]]] * 2, np.float32))):
        seq = maps.shape[-1]
        sums.add_layer(0, *layer_sums(maps, np.arange(seq), np.zeros(seq, bool), np.zeros(seq, bool), visible_keys(seq, causal=True)))
    merged = one.merge(two)
    np.testing.assert_allclose(merged.means()["previous_token"][0], [1.0, 1.75 / 3], rtol=1e-6)
    assert merged.counts["previous_token"] == 3 and merged.counts["self"] == 5


def test_visible_keys():
    assert visible_keys(4, causal=False).tolist() == [4, 4, 4, 4]
    assert visible_keys(4, causal=True).tolist() == [1, 2, 3, 4]
    assert visible_keys(4, causal=True, window=2).tolist() == [1, 2, 2, 2]


# --- Any split merges to one pass ------------------------------------------------------------

LAYERS, HEADS = 2, 3


def _text(rng: np.random.Generator, seq: int, causal: bool):
    logits = rng.normal(size=(LAYERS, HEADS, seq, seq)) * 3
    if causal:
        logits = np.where(np.tril(np.ones((seq, seq), bool)), logits, -np.inf)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights = (weights / weights.sum(-1, keepdims=True)).astype(np.float32)
    ids = rng.integers(0, 4, size=seq)  # a small vocabulary, so duplicates happen
    return weights, ids, rng.random(seq) < 0.3, rng.random(seq) < 0.2


def _sums(texts, causal: bool, options: DetectorOptions) -> HeadSums:
    sums = HeadSums(LAYERS, HEADS)
    for weights, ids, special, punct in texts:
        for layer in range(LAYERS):
            parts, histogram = layer_sums(weights[layer], ids, special, punct, visible_keys(len(ids), causal), options)
            sums.add_layer(layer, parts, histogram)
        sums.texts += 1
        sums.tokens += len(ids)
    return sums


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    lengths=st.lists(st.integers(1, 7), min_size=1, max_size=9),
    cuts=st.lists(st.integers(0, 9), max_size=5),
    causal=st.booleans(),
    exclude=st.tuples(st.booleans(), st.booleans()),
    reverse=st.booleans(),
)
def test_any_split_merges_to_one_pass(seed, lengths, cuts, causal, exclude, reverse):
    rng = np.random.default_rng(seed)
    options = DetectorOptions(*exclude)
    texts = [_text(rng, n, causal) for n in lengths]
    whole = _sums(texts, causal, options)
    bounds = sorted({0, len(texts), *(c for c in cuts if c <= len(texts))})
    shards = [_sums(texts[a:b], causal, options) for a, b in zip(bounds, bounds[1:])]
    merged = HeadSums(LAYERS, HEADS)
    for part in reversed(shards) if reverse else shards:  # merging is order-free too
        merged.merge(part)
    assert (merged.texts, merged.tokens) == (whole.texts, whole.tokens) == (len(texts), sum(lengths))
    assert merged.counts == whole.counts and (merged.histogram == whole.histogram).all()
    got, want = merged.means(), whole.means()
    for metric in METRICS:
        np.testing.assert_allclose(got[metric], want[metric], rtol=1e-9, atol=1e-12, equal_nan=True, err_msg=metric)


def test_merge_refuses_other_shapes():
    with pytest.raises(ValueError, match="cannot merge"):
        HeadSums(2, 3).merge(HeadSums(2, 4))
    assert np.isnan(HeadSums(1, 1).means()["induction_mul"]).all()  # no data is NaN, not 0


@pytest.mark.parametrize("options", [DetectorOptions(), DetectorOptions(True, False), DetectorOptions(False, True), DetectorOptions(True, True)])
def test_detector_scores_equal_score_under_both_measures(options):
    from attn_cli.maths.headsums import detector_scores, patterns, score

    rng = np.random.default_rng(3)
    ids = rng.integers(0, 4, 12)  # duplicates
    logits = rng.normal(size=(5, 12, 12)) * 3
    weights = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    for kind, pattern in patterns(ids).items():
        mul, abs_ = detector_scores(weights, pattern, options)
        np.testing.assert_allclose(mul, score(weights, pattern, "mul", *options), rtol=1e-12, atol=1e-15, err_msg=kind)
        np.testing.assert_allclose(abs_, score(weights, pattern, "abs", *options), rtol=1e-12, atol=1e-14, err_msg=kind)

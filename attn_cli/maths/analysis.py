"""Analyses over attention maps, as small pure functions over NumPy arrays.

Word-level maps (Clark et al. 2019, "What Does BERT Look At?"), attention rollout (Abnar &
Zuidema 2020), value-weighted norms (Kobayashi et al. 2020, "Attention is Not Only a Weight"),
the naming of heads by what they attend to (the statistics themselves, row entropy among them,
are summed over a corpus in `headsums`), and the comparison of two texts word by word.

Nothing here knows about models, files or terminals: callers pass the weights a `LayerTrace`
computed. Shapes in docstrings use `heads`, `seq` (tokens), `words`, `d` (head_dim) and
`hidden`. Results keep the input's float type (float32 in, float32 out); where a long sum or
product would lose digits in float32, the work is done in float64 and cast back.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from itertools import zip_longest

import numpy as np

WordGroups = Sequence[Sequence[int]]
"""One tuple of token indices per word, in text order; special tokens are their own groups."""

Alignment = list[tuple[int | None, int | None]]
"""Pairs (word index in text A, word index in text B); None where one side has no word."""

HEAD_KINDS = ("previous-token", "self", "next-token", "special-token", "first-token", "punctuation")
"""The statistics `classify_heads` names heads by: each a mean attention mass in [0, 1]."""

def _float_dtype(x) -> np.dtype:
    """The dtype results come back in: the input's if it is a float type, else float64."""
    dtype = np.asarray(x).dtype
    return dtype if np.issubdtype(dtype, np.floating) else np.dtype(np.float64)


# --- Word level (Clark et al. 2019, §5: "to" a split word sums, "from" it averages) -----------


def _grouped(groups: WordGroups) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The token indices word after word, where each word starts among them, and word sizes."""
    sizes = np.array([len(g) for g in groups], dtype=np.intp)
    if sizes.size == 0 or np.any(sizes == 0):
        # reduceat cannot express an empty group: it would return the next word's first token.
        raise ValueError("need at least one word, and every word needs at least one token")
    order = np.fromiter((t for g in groups for t in g), dtype=np.intp, count=int(sizes.sum()))
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    return order, starts, sizes


def to_words(weights: np.ndarray, groups: WordGroups) -> np.ndarray:
    """Attention *to* each word: the sum of its tokens' columns, (..., seq) -> (..., words).

    to[..., w] = Σ_{t ∈ group w} weights[..., t]. Rows still sum to 1 when the groups cover
    every token once (a token in no group is dropped; one in two groups counts twice).
    """
    order, starts, _ = _grouped(groups)
    # Gather the columns word by word, then sum runs: O(size), where a (seq, words) indicator
    # matmul would be O(seq²·words) on a full map.
    return np.add.reduceat(weights[..., order], starts, axis=-1)


def from_words(weights: np.ndarray, groups: WordGroups) -> np.ndarray:
    """Attention *from* each word: the mean of its tokens' rows, (..., seq, k) -> (..., words, k).

    from[..., w, :] = (1/|group w|)·Σ_{t ∈ group w} weights[..., t, :]. A mean of rows that sum
    to 1 sums to 1.
    """
    order, starts, sizes = _grouped(groups)
    sums = np.add.reduceat(weights[..., order, :], starts, axis=-2)
    return sums / sizes[:, None].astype(_float_dtype(weights))


def word_matrix(weights: np.ndarray, groups: WordGroups) -> np.ndarray:
    """Word-to-word attention, (..., seq, seq) -> (..., words, words): rows averaged over each
    query word's tokens, columns summed over each key word's tokens. Rows still sum to 1."""
    return to_words(from_words(weights, groups), groups)


# --- Rollout (Abnar & Zuidema 2020, §3) -------------------------------------------------------


def add_residual(a: np.ndarray) -> np.ndarray:
    """Â = ½·A + ½·I, rows renormalised to sum to 1: the residual connection carries half of
    each token's own state past the attention. (seq, seq) -> (seq, seq), in float64."""
    a_hat = 0.5 * np.asarray(a, dtype=np.float64) + 0.5 * np.eye(a.shape[-1])
    return a_hat / a_hat.sum(axis=-1, keepdims=True)


def _times_residual(r: np.ndarray, a: np.ndarray) -> np.ndarray:
    """r·Â for a row vector r (seq,) without forming Â: Â = D⁻¹(½A + ½I) with the row sums
    d_i = ½·Σ_j A_ij + ½, so r·Â = ½·(r/d)·A + ½·(r/d). O(seq²) time, no seq×seq float64 temporary
    beyond NumPy's cast of A."""
    s = r / (0.5 * a.sum(axis=-1, dtype=np.float64) + 0.5)
    return 0.5 * (s @ a) + 0.5 * s


def rollout(mean_maps: Sequence[np.ndarray]) -> np.ndarray:
    """Attention rollout R = Â_L·…·Â_1 (the later layer on the left), (seq, seq) per layer ->
    (seq, seq). Row q says how much of each input token reaches token q after layer L.

    mean_maps: one head-mean attention map A_l per layer, first layer first. The product is
    taken in float64: L matrix products in float32 would let the rows drift off 1. O(L·seq³);
    for one query use `rollout_row`.
    """
    maps = list(mean_maps)
    if not maps:
        raise ValueError("rollout needs at least one layer")
    result = add_residual(maps[0])
    for a in maps[1:]:
        result = add_residual(a) @ result  # R_l = Â_l·R_{l-1}
    return result.astype(_float_dtype(maps[0]))


def rollout_row(mean_maps: Sequence[np.ndarray], query: int) -> np.ndarray:
    """Row `query` of the rollout, e_q·Â_L·…·Â_1, as a chain of vector–matrix products from the
    last layer down: (seq, seq) per layer -> (seq,), O(L·seq²), R itself is never formed.
    Equal to rollout(mean_maps)[query]; computed in float64 for the same reason."""
    maps = list(mean_maps)
    if not maps:
        raise ValueError("rollout needs at least one layer")
    r = np.zeros(maps[-1].shape[-1])
    r[query] = 1.0
    for a in reversed(maps):
        r = _times_residual(r, a)
    return r.astype(_float_dtype(maps[0]))


def cross_rollout(self_maps: Sequence[np.ndarray], cross_maps: Sequence[np.ndarray], start: np.ndarray) -> np.ndarray:
    """Rollout through an encoder–decoder's decoder onto the source: for rows `start` (k, m) of
    the decoder's m positions (e_q for one query, I for all), (k, n) over the n source tokens.

    Each decoder layer l, as rollout treats a layer, over the m decoder positions then the n
    source tokens (the encoder's output, which no decoder layer changes):

        L_l = [[½·Â_l, ½·C_l], [0, I_n]]

    Â_l the self-attention with the residual (`add_residual`), C_l the cross-attention (m, n):
    a position keeps half of what its self-attention brought and takes half from the source.
    R = L_D·…·L_1 (the later layer on the left); its source block is what this returns, rows
    renormalised: the block's rows sum to 1 − 2^−D whatever the weights (the ½ split is a
    convention, as in rollout), so only the distribution over the source says anything.
    self_maps, cross_maps: per layer the head-mean (m, m) and (m, n), first layer first; float64.
    """
    if not self_maps or len(self_maps) != len(cross_maps):
        raise ValueError("cross rollout needs one self- and one cross-attention map per decoder layer")
    r = np.asarray(start, dtype=np.float64)
    source = np.zeros((r.shape[0], cross_maps[0].shape[-1]))
    for a, c in zip(reversed(self_maps), reversed(cross_maps), strict=True):
        source += 0.5 * (r @ np.asarray(c, dtype=np.float64))
        r = 0.5 * (r @ add_residual(a))
    return source / source.sum(axis=-1, keepdims=True)


# --- Value norms (Kobayashi et al. 2020, §3) ---------------------------------------------------


def output_slices(w_o: np.ndarray, heads: int) -> np.ndarray:
    """Split the output projection by head: (heads·d, hidden) -> (heads, d, hidden).

    w_o is in x@W layout (a PyTorch Linear stores (hidden, heads·d): pass its transpose). Head h
    owns input rows h·d:(h+1)·d, the ones its output meets once heads are concatenated
    (`ops.merge_heads`), so attention output = Σ_h head_output_h @ slices[h] (+ bias).
    """
    width, hidden = w_o.shape
    if width % heads:
        raise ValueError(f"output projection has {width} input rows, not a multiple of {heads} heads")
    return w_o.reshape(heads, width // heads, hidden)


def value_norms(weights: np.ndarray, values: np.ndarray, w_o: np.ndarray, groups: WordGroups) -> tuple[np.ndarray, np.ndarray]:
    """What each group of tokens adds to one head's output, and through it to the layer's, for
    one query row: ‖Σ_{j ∈ g} α_j·v_j‖ and ‖Σ_{j ∈ g} α_j·v_j·W_O^h‖ for every group g (one
    token, or a word's tokens). A large weight on a tiny value moves the output little.

    weights (seq,), values (seq, d) (under grouped-query attention, those of the kv head the query
    head reads), w_o (d, hidden), the head's slice of the output projection (`output_slices`) ->
    two (groups,) float32 arrays. The output bias is added once per row, not per token, so it
    belongs to no token and is left out.
    """
    weighted = weights[:, None] * values  # (seq, d): what each token adds to the head's output
    grouped = to_words(weighted.T, groups).T  # (groups, d): Σ_{j ∈ g} α_j·v_j (·W_O is linear: sum, then project)
    if len(grouped) > w_o.shape[0]:  # many groups: ‖x·W_O‖² = x·(W_O·W_Oᵀ)·xᵀ, a (d, d) Gram matrix instead of a (groups, hidden) product
        x = grouped.astype(np.float64)
        gram = w_o.astype(np.float64) @ w_o.T.astype(np.float64)
        output = np.sqrt(np.maximum(((x @ gram) * x).sum(axis=-1), 0.0))  # a matmul: einsum's three-operand loop took ~1 ms per head on 500 tokens
    else:
        output = np.linalg.norm(transformed_vectors(grouped, w_o), axis=-1)
    return np.linalg.norm(grouped, axis=-1).astype(np.float32), output.astype(np.float32)


def transformed_vectors(values: np.ndarray, output_slices: np.ndarray) -> np.ndarray:
    """f^h(x_j) = v_j·W_O^h, what token j writes through head h before its weight: values (heads,
    seq, d), output_slices (heads, d, hidden) -> (heads, seq, hidden). Kobayashi et al.'s f(x),
    which `value_norms` weighs and `attn contrib --method norms|alti` sums over heads."""
    return values @ output_slices


# --- Naming heads (Clark et al. 2019, §3–4) -----------------------------------------------------


def classify_heads(stats: Mapping[str, np.ndarray], threshold: float = 0.5) -> list[tuple[int, str, float]]:
    """Name heads by what they attend to: (head, kind, value) for every kind in `HEAD_KINDS`
    and every head whose mean mass is ≥ threshold, heaviest first (ties keep `HEAD_KINDS`
    order, then head order). stats: kind -> (heads,); other keys ("entropy") are ignored.
    A head can get several kinds (BERT's [CLS] is both "special-token" and "first-token")."""
    found = [
        (int(head), kind, float(value))
        for kind in HEAD_KINDS
        if kind in stats
        for head, value in enumerate(np.asarray(stats[kind]))
        if value >= threshold
    ]
    return sorted(found, key=lambda entry: -entry[2])  # stable


# --- Comparing two texts word by word --------------------------------------------------------


def align_words(words_a: Sequence[str], words_b: Sequence[str]) -> Alignment:
    """Pair the words of two texts, case-insensitively, in order, with difflib.SequenceMatcher.

    Equal blocks pair word by word; a replaced block pairs position by position and its extra
    words get None; inserted or deleted words pair with None. Each index of either text
    appears exactly once.
    """
    a = [w.casefold() for w in words_a]
    b = [w.casefold() for w in words_b]
    # autojunk=False: by default, in texts of 200+ words, any word making up over 1% of them
    # ("the") is junk and never matched.
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    pairs: Alignment = []
    for _, i1, i2, j1, j2 in matcher.get_opcodes():
        # One rule serves all four tags: equal blocks have equal lengths, replace pads the
        # shorter side with None, delete and insert have one side empty.
        pairs.extend(zip_longest(range(i1, i2), range(j1, j2)))
    return pairs


def _aligned(weights: np.ndarray, indices: Sequence[int | None]) -> np.ndarray:
    """(..., words) -> (..., n): column k is weights[..., indices[k]], or 0 where it is None."""
    out = np.zeros((*weights.shape[:-1], len(indices)), dtype=weights.dtype)
    present = [k for k, i in enumerate(indices) if i is not None]
    out[..., present] = weights[..., [indices[k] for k in present]]
    return out


def compare_rows(
    weights_a: np.ndarray, weights_b: np.ndarray, alignment: Alignment
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Put two texts' word weights for a query side by side on an alignment of n pairs.

    weights_a (heads, words_a), weights_b (heads, words_b) -> a_aligned, b_aligned and
    diff = b_aligned − a_aligned (B minus A: positive where text B attends more), each
    (heads, n); a side with no word at a pair contributes 0.
    """
    a = _aligned(weights_a, [i for i, _ in alignment])
    b = _aligned(weights_b, [j for _, j in alignment])
    return a, b, b - a


def most_changed_heads(diff: np.ndarray) -> list[int]:
    """Heads ordered by how much their attention moved, most first: the L1 norm Σ_k |diff[h, k]|
    over the aligned words (total weight moved ×2 when both rows sum to 1). (heads, n) ->
    head indices; ties keep head order."""
    moved = np.abs(np.asarray(diff, dtype=np.float64)).sum(axis=-1)
    return [int(h) for h in np.argsort(-moved, kind="stable")]


# --- One query's row, for the model view (a layers × heads grid) ------------------------------


def weight_on(row: np.ndarray, token_indices: Iterable[int]) -> float:
    """Total weight of one attention row (seq,) on some tokens, each counted once."""
    return float(np.asarray(row, dtype=np.float64)[sorted(set(token_indices))].sum())

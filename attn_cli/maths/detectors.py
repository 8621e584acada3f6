"""Head detectors as TransformerLens defines them (`transformer_lens.head_detector`), in NumPy.

A detection pattern D (seq, seq) is the attention map an ideal head of a kind would have, 0/1
and lower-triangular. A head's score compares its map A (seq, seq) with D:

- "mul": Σ A'·D / Σ A', where A' is A with the excluded cells zeroed: the share of the head's
  (remaining) attention that lands where the pattern says. 0 … 1.
- "abs": 1 − Σ |A − D|' / seq, the excluded cells of |A − D| zeroed: 1 minus the mean over
  rows of each row's L1 error. 1 is a perfect match, −1 a perfect mismatch.

exclude_bos zeroes column 0 (attention to BOS / [CLS]); exclude_current_token the diagonal.
TransformerLens scores one prompt at a time and averages the scores over prompts; over a corpus
that mean is a sum of per-text scores and a count of texts, so it merges by addition.

Differences from TransformerLens, on purpose: "abs" is not rounded to 3 decimals; and for a
bidirectional model (BERT) the map is not lower-triangular, which TransformerLens asserts
against: here its upper triangle counts as error under "abs" (the pattern puts 0 there) and
as attention the pattern misses under "mul".
"""

from __future__ import annotations

import numpy as np

DETECTORS = ("previous-token", "duplicate-token", "induction")
MEASURES = ("mul", "abs")


def previous_token_pattern(seq: int) -> np.ndarray:
    """D[i, i−1] = 1 for i ≥ 1: (seq, seq) float64."""
    return np.eye(seq, k=-1)


def duplicate_token_pattern(ids: np.ndarray) -> np.ndarray:
    """D[i, j] = 1 where j < i and token j is the same token as i (an earlier copy): (seq, seq)."""
    ids = np.asarray(ids)
    same = ids[:, None] == ids[None, :]
    return np.tril(same, k=-1).astype(np.float64)


def induction_pattern(ids: np.ndarray) -> np.ndarray:
    """D[i, j+1] = 1 where j < i is an earlier copy of token i, and j + 1 ≤ i: attend to the
    token that followed the earlier copy. The duplicate pattern shifted one column right (the
    first column 0), kept lower-triangular: (seq, seq)."""
    duplicate = duplicate_token_pattern(ids)
    shifted = np.zeros_like(duplicate)
    shifted[:, 1:] = duplicate[:, :-1]
    return np.tril(shifted)


def patterns(ids: np.ndarray) -> dict[str, np.ndarray]:
    """The detection pattern of each kind in DETECTORS for one token sequence (seq,)."""
    seq = len(ids)
    return {"previous-token": previous_token_pattern(seq), "duplicate-token": duplicate_token_pattern(ids), "induction": induction_pattern(ids)}


def _excluded(x: np.ndarray, exclude_bos: bool, exclude_current_token: bool) -> np.ndarray:
    """A copy of x (heads, seq, seq) with column 0 and/or the diagonal set to 0."""
    x = np.array(x, dtype=np.float64)  # a copy: the caller's map stays as it was
    if exclude_bos:
        x[..., :, 0] = 0.0
    if exclude_current_token:
        seq = x.shape[-1]
        x[..., np.arange(seq), np.arange(seq)] = 0.0
    return x


def score(weights: np.ndarray, pattern: np.ndarray, measure: str = "mul", exclude_bos: bool = False, exclude_current_token: bool = False) -> np.ndarray:
    """Each head's detector score for one text: weights (heads, seq, seq), pattern (seq, seq)
    -> (heads,) float64. See the module docstring for "mul" and "abs". Under "mul" a head whose
    remaining attention is all excluded scores 0 (TransformerLens would divide 0 by 0)."""
    if measure == "mul":
        a = _excluded(weights, exclude_bos, exclude_current_token)
        total = a.sum(axis=(-2, -1))
        hits = (a * pattern).sum(axis=(-2, -1))
        return np.divide(hits, total, out=np.zeros_like(total), where=total > 0)
    if measure == "abs":
        error = _excluded(np.abs(np.asarray(weights, dtype=np.float64) - pattern), exclude_bos, exclude_current_token)
        return 1.0 - error.sum(axis=(-2, -1)) / weights.shape[-1]
    raise ValueError(f"unknown measure {measure!r}; expected one of {MEASURES}")


def repeated_random_tokens(vocab: np.ndarray, length: int, sequences: int, seed: int) -> np.ndarray:
    """`sequences` rows of `length` tokens drawn uniformly (seeded) from `vocab` (ids), each row
    then repeated once: (sequences, 2·length). The prompt TransformerLens' demos score induction
    heads on: in the second half, an induction head attends to the token after the earlier copy."""
    rng = np.random.default_rng(seed)
    half = rng.choice(np.asarray(vocab), size=(sequences, length), replace=True)
    return np.concatenate([half, half], axis=1)

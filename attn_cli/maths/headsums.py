"""Per-head statistics over a corpus as sums that merge by addition, and the head detectors.

Every statistic is kept as a float64 sum per (layer, head) and a count, so any split of a
corpus into shards, summed shard by shard and merged in any grouping, gives the same means as
one pass (to float64 rounding). Memory is O(layers · heads · (metrics + bins)), whatever the
corpus size. Two kinds of mean:

- over query rows (every row of every text counts once): the attention masses, entropy;
- over texts (one score per text, as TransformerLens averages over prompts): the detector
  scores and the sink rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

# --- Head detectors (TransformerLens' `head_detector`) ---------------------------------------
# Head detectors as TransformerLens defines them (`transformer_lens.head_detector`), in NumPy.
#
# A detection pattern D (seq, seq) is the attention map an ideal head of a kind would have, 0/1
# and lower-triangular. A head's score compares its map A (seq, seq) with D:
#
# - "mul": Σ A'·D / Σ A', where A' is A with the excluded cells zeroed: the share of the head's
#   (remaining) attention that lands where the pattern says. 0 … 1.
# - "abs": 1 − Σ |A − D|' / seq, the excluded cells of |A − D| zeroed: 1 minus the mean over
#   rows of each row's L1 error. 1 is a perfect match, −1 a perfect mismatch.
#
# exclude_bos zeroes column 0 (attention to BOS / [CLS]); exclude_current_token the diagonal.
# TransformerLens scores one prompt at a time and averages the scores over prompts; over a corpus
# that mean is a sum of per-text scores and a count of texts, so it merges by addition.
#
# Differences from TransformerLens, on purpose: "abs" is not rounded to 3 decimals; and for a
# bidirectional model (BERT) the map is not lower-triangular, which TransformerLens asserts
# against: here its upper triangle counts as error under "abs" (the pattern puts 0 there) and
# as attention the pattern misses under "mul".

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


# --- Mergeable sums ----------------------------------------------------------------------------

# JSON field names, in the order the JSON lists them. Pooled over query rows:
ROW_METRICS = ("entropy", "entropy_normalised", "special", "first_token", "punctuation", "previous_token", "self", "next_token")
# Pooled over texts (the sink rate, and the detectors scored on the corpus's own texts):
TEXT_METRICS = ("sink_rate", "previous_token_mul", "previous_token_abs", "duplicate_token_mul", "duplicate_token_abs")
# Scored on repeated random-token sequences, not on the corpus (see `repeated_random_tokens`):
INDUCTION_METRICS = ("induction_mul", "induction_abs")
# Measured on request only (`stats --ablate`), per text: the change when the head is ablated.
CAUSAL_METRICS = ("ablation",)
# The kinds of key whose mass `mass_sums` measures: of attention weights (ROW_METRICS) and of
# contribution matrices (`stats --contributions`, per layer).
MASS_KINDS = ("self", "first_token", "special", "punctuation", "previous_token", "next_token")
METRICS = ROW_METRICS + TEXT_METRICS + INDUCTION_METRICS + CAUSAL_METRICS

SINK_EPSILON = 0.3  # Gu et al.: a head is a sink on a text when its mean first-token attention exceeds ε
HISTOGRAM_BINS = 10  # of each head's normalised row entropies, on [0, 1]

LayerSums = dict[str, tuple[np.ndarray, int]]  # metric -> ((heads,) float64 sum, count)


class DetectorOptions(NamedTuple):
    """TransformerLens' options of `detect_head`, applied to every detector score. (A NamedTuple:
    the maths imports nothing of attn's, so not `records.frozen`.)"""

    exclude_bos: bool = False
    exclude_current_token: bool = False


NO_EXCLUSIONS = DetectorOptions()


@dataclass
class HeadSums:
    """Sums (layers, heads) float64 and counts per metric, the histogram (layers, heads, bins)
    int64 of normalised row entropy, and how many texts and tokens were added. `a.merge(b)`
    adds b into a; `means()` divides."""

    layers: int
    heads: int
    sums: dict[str, np.ndarray] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    histogram: np.ndarray | None = None
    texts: int = 0
    tokens: int = 0
    # Attention knockout (`stats --knockout`), by source word: distance in words back from the
    # explained word (0: the word itself) -> (layers,) float64 sum of relative changes, and count.
    knockout: dict[int, np.ndarray] = field(default_factory=dict)
    knockout_counts: dict[int, int] = field(default_factory=dict)
    # Contributions (`stats --contributions`): MASS_KINDS kind -> (layers,) float64 sum over the
    # rows of each layer's contribution matrix of the share on that kind, and the rows counted.
    contributions: dict[str, np.ndarray] = field(default_factory=dict)
    contribution_counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for metric in METRICS:
            self.sums.setdefault(metric, np.zeros((self.layers, self.heads), dtype=np.float64))
            self.counts.setdefault(metric, 0)
        if self.histogram is None:
            self.histogram = np.zeros((self.layers, self.heads, HISTOGRAM_BINS), dtype=np.int64)

    def add_layer(self, layer: int, parts: LayerSums, histogram: np.ndarray) -> None:
        """Add one text's sums for one layer (from `layer_sums`). Counts are per metric and the
        same in every layer, so they are taken from layer 0 only."""
        for metric, (total, count) in parts.items():
            self.sums[metric][layer] += total
            if layer == 0:
                self.counts[metric] += int(count)
        self.histogram[layer] += histogram

    def add_layers(self, parts: LayerSums, histogram: np.ndarray) -> None:
        """Add one text's sums for every layer at once: parts' sums (layers, heads), the
        histogram (layers, heads, bins) (from `layer_sums` of the layers' maps stacked)."""
        for metric, (total, count) in parts.items():
            self.sums[metric] += total
            self.counts[metric] += int(count)
        self.histogram += histogram

    def add_text_metric(self, metric: str, values: np.ndarray) -> None:
        """Add one text's value of a per-text metric for every head: values (layers, heads)."""
        self.sums[metric] += values
        self.counts[metric] += 1

    def add_knockout(self, distance: int, changes: np.ndarray) -> None:
        """Add one source word's knockout changes (layers,), `distance` words before the explained one."""
        self.knockout[distance] = self.knockout.get(distance, np.zeros(self.layers, np.float64)) + changes
        self.knockout_counts[distance] = self.knockout_counts.get(distance, 0) + 1

    def add_contributions(self, parts: LayerSums) -> None:
        """Add one text's contribution sums (`mass_sums` of its (layers, seq, seq) matrices)."""
        for kind, (total, count) in parts.items():
            self.contributions[kind] = self.contributions.get(kind, np.zeros(self.layers, np.float64)) + total
            self.contribution_counts[kind] = self.contribution_counts.get(kind, 0) + int(count)

    def merge(self, other: HeadSums) -> HeadSums:
        """Add `other` into this one (in place) and return it."""
        if (other.layers, other.heads) != (self.layers, self.heads):
            raise ValueError(f"cannot merge sums of {other.layers}×{other.heads} heads into {self.layers}×{self.heads}")
        for distance, changes in other.knockout.items():
            self.knockout[distance] = self.knockout.get(distance, np.zeros(self.layers, np.float64)) + changes
            self.knockout_counts[distance] = self.knockout_counts.get(distance, 0) + other.knockout_counts[distance]
        self.add_contributions({kind: (total, other.contribution_counts[kind]) for kind, total in other.contributions.items()})
        for metric in METRICS:
            self.sums[metric] += other.sums[metric]
            self.counts[metric] += other.counts[metric]
        self.histogram += other.histogram
        self.texts += other.texts
        self.tokens += other.tokens
        return self

    def means(self) -> dict[str, np.ndarray]:
        """metric -> (layers, heads) mean; NaN where a metric has no count (no text long
        enough for it, or no induction run)."""
        out = {}
        for metric in METRICS:
            count = self.counts[metric]
            out[metric] = self.sums[metric] / count if count else np.full((self.layers, self.heads), np.nan)
        return out


def row_entropy(weights: np.ndarray) -> np.ndarray:
    """Entropy in nats of each row, H = −Σ_j p_j·ln p_j with 0·ln 0 = 0: (..., seq) -> (...).

    Summed in float64 (a long row is thousands of small terms), returned in the input's float
    type. Between 0 (all weight on one key) and ln(the keys the row sees) (uniform).
    """
    dtype = np.asarray(weights).dtype
    p = np.asarray(weights, dtype=np.float64)
    # ln of the weights, with 0 read as the smallest normal float64: its term p·ln p is then
    # 0·(−708) = 0, so masked (zero) weights add nothing, and every weight of a float32 map is
    # above it (the same terms as a masked `np.log(..., where=p > 0)`, in 2/5 of the time).
    terms = np.maximum(p, np.finfo(np.float64).tiny)
    np.log(terms, out=terms)
    terms *= p
    # Σ_j as a product with a vector of ones (`column_sums` says why). Clip: a weight rounded
    # just above 1 has ln p > 0; + 0.0 turns −0.0 into 0.0.
    entropy = np.clip(-(terms @ np.ones(terms.shape[-1])), 0.0, None) + 0.0
    return entropy.astype(dtype) if np.issubdtype(dtype, np.floating) else entropy


def mass_sums(p: np.ndarray, special: np.ndarray, punctuation: np.ndarray, columns: np.ndarray | None = None) -> LayerSums:
    """Σ over rows of the mass on each kind of key in MASS_KINDS, and how many rows count:
    p (n, seq, seq) row-stochastic (heads' attention maps, or layers' contribution matrices),
    special, punctuation bool (seq,) -> kind -> ((n,), rows). The previous and next token count
    the seq − 1 rows that have one. `columns`: `column_sums(p)`, if already made (the masses on
    special tokens, the first token and punctuation are read from it)."""
    seq = p.shape[-1]
    columns = column_sums(p) if columns is None else columns
    return {
        "special": (columns[:, special].sum(axis=-1), seq),
        "first_token": (columns[:, 0].copy(), seq),
        "punctuation": (columns[:, punctuation].sum(axis=-1), seq),
        "previous_token": (np.diagonal(p, -1, axis1=-2, axis2=-1).sum(axis=-1), max(seq - 1, 0)),
        "self": (np.diagonal(p, 0, axis1=-2, axis2=-1).sum(axis=-1), seq),
        "next_token": (np.diagonal(p, 1, axis1=-2, axis2=-1).sum(axis=-1), max(seq - 1, 0)),
    }


def column_sums(p: np.ndarray) -> np.ndarray:
    """Σ over rows of each key's weight: (n, seq, seq) float64 -> (n, seq). One product with a
    vector of ones (BLAS): NumPy's own sums over short axes (a ~35-token text's rows) take
    several times as long."""
    return np.ones(p.shape[-2], dtype=p.dtype) @ p


def layer_sums(
    weights: np.ndarray,
    ids: np.ndarray,
    special: np.ndarray,
    punctuation: np.ndarray,
    visible: np.ndarray,
    options: DetectorOptions = NO_EXCLUSIONS,
    found: dict[str, np.ndarray] | None = None,
) -> tuple[LayerSums, np.ndarray]:
    """One text's sums for one layer, and its (heads, bins) histogram of normalised entropy.

    weights (heads, seq, seq), the layer's full maps (or several layers' stacked: (layers·heads,
    seq, seq)); ids (seq,) token ids; special, punctuation bool (seq,); visible (seq,) int: how
    many keys row i may attend to (seq for an encoder, i + 1 for a decoder, capped by a sliding
    window); found: `patterns(ids)`, if already made. The whole maps are read six times (to
    float64; the entropy's clamp, ln, terms and row sums; the column sums); everything else
    reads their diagonals, their column sums or the detection patterns' few cells.
    """
    p = np.asarray(weights, dtype=np.float64)
    heads, seq = p.shape[0], p.shape[-1]
    entropy = row_entropy(p)  # (heads, seq), nats
    spread = visible > 1  # a row that sees one key has no choice: no normalised entropy
    normalised = entropy[:, spread] / np.log(visible[spread])  # (heads, rows)
    bins = np.clip((normalised * HISTOGRAM_BINS).astype(np.int64), 0, HISTOGRAM_BINS - 1)
    histogram = np.bincount((np.arange(heads)[:, None] * HISTOGRAM_BINS + bins).ravel(), minlength=heads * HISTOGRAM_BINS).reshape(heads, -1)

    columns = column_sums(p)
    parts: LayerSums = {
        "entropy": (entropy.sum(axis=-1), seq),
        "entropy_normalised": (normalised.sum(axis=-1), int(spread.sum())),
        **mass_sums(p, special, punctuation, columns),
        "sink_rate": ((columns[:, 0] / seq > SINK_EPSILON).astype(np.float64), 1),
    }
    if seq > 1:  # TransformerLens scores prompts of 2 tokens or more
        found = patterns(ids) if found is None else found
        total = _kept_total(p, columns, options)
        for kind in ("previous-token", "duplicate-token"):
            mul, abs_ = detector_scores(p, found[kind], options, total)
            parts[f"{kind.replace('-', '_')}_mul"], parts[f"{kind.replace('-', '_')}_abs"] = (mul, 1), (abs_, 1)
    return parts, histogram


def _kept_total(p: np.ndarray, columns: np.ndarray, options: DetectorOptions) -> np.ndarray:
    """Σ of p (heads, seq, seq) over the cells the options do not exclude, from its column sums: (heads,)."""
    total = columns.sum(axis=-1)
    if options.exclude_bos:
        total -= columns[:, 0]
    if options.exclude_current_token:
        total -= np.diagonal(p, 0, axis1=-2, axis2=-1).sum(axis=-1)
        if options.exclude_bos:
            total += p[:, 0, 0]  # excluded twice above
    return total


def detector_scores(
    p: np.ndarray, pattern: np.ndarray, options: DetectorOptions = NO_EXCLUSIONS, total: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """`score` under "mul" and "abs" at once: p (heads, seq, seq) float64 weights, each in
    [0, 1], pattern (seq, seq) 0/1 -> ((heads,), (heads,)). With D' the pattern less the excluded
    cells and Σ' a sum over the cells not excluded: Σ'A·D = Σ of A over the cells of D' (a
    token's previous one, its earlier copies: a few per row, not the whole map), and for a 0/1 D and A
    in [0, 1] |A − D| is A off the pattern and 1 − A on it, so Σ'|A − D| = Σ'A + Σ'D − 2·Σ'A·D.
    `total`: Σ'A, if already made (it is the same for every pattern)."""
    exclude = options.exclude_bos or options.exclude_current_token
    d = _excluded(pattern[None], *options)[0] if exclude else pattern
    rows, cols = np.nonzero(d)
    hits = p[:, rows, cols].sum(axis=-1)
    total = _kept_total(p, column_sums(p), options) if total is None else total
    mul = np.divide(hits, total, out=np.zeros_like(total), where=total > 0)
    return mul, 1.0 - (total + d.sum() - 2.0 * hits) / p.shape[-1]


def induction_sums(weights: np.ndarray, ids: np.ndarray, options: DetectorOptions = NO_EXCLUSIONS) -> LayerSums:
    """One repeated random-token prompt's induction scores for one layer: (heads, seq, seq),
    ids (seq,) -> metric -> ((heads,), 1)."""
    pattern = induction_pattern(ids)
    return {
        f"induction_{m}": (score(weights, pattern, m, options.exclude_bos, options.exclude_current_token), 1) for m in MEASURES
    }


def visible_keys(seq: int, causal: bool, window: int | None = None) -> np.ndarray:
    """(seq,) int: how many keys each query row sees; an encoder's window is two-sided (keys
    fewer than `window` positions away on either side: ModernBERT's local layers)."""
    if not causal:
        if window is None:
            return np.full(seq, seq, dtype=np.int64)
        i = np.arange(seq, dtype=np.int64)
        return np.minimum(i, window - 1) + np.minimum(seq - 1 - i, window - 1) + 1
    seen = np.arange(1, seq + 1, dtype=np.int64)
    return seen if window is None else np.minimum(seen, window)

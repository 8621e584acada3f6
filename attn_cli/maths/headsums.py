"""Per-head statistics over a corpus as sums that merge by addition.

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

import numpy as np

from . import detectors

# JSON field names, in the order the JSON lists them. Pooled over query rows:
ROW_METRICS = ("entropy", "entropy_normalised", "special", "first_token", "punctuation", "previous_token", "self", "next_token")
# Pooled over texts (the sink rate, and the detectors scored on the corpus's own texts):
TEXT_METRICS = ("sink_rate", "previous_token_mul", "previous_token_abs", "duplicate_token_mul", "duplicate_token_abs")
# Scored on repeated random-token sequences, not on the corpus (see `detectors.repeated_random_tokens`):
INDUCTION_METRICS = ("induction_mul", "induction_abs")
METRICS = ROW_METRICS + TEXT_METRICS + INDUCTION_METRICS

SINK_EPSILON = 0.3  # Gu et al.: a head is a sink on a text when its mean first-token attention exceeds ε
HISTOGRAM_BINS = 10  # of each head's normalised row entropies, on [0, 1]

LayerSums = dict[str, tuple[np.ndarray, int]]  # metric -> ((heads,) float64 sum, count)


@dataclass(frozen=True)
class DetectorOptions:
    """TransformerLens' options of `detect_head`, applied to every detector score."""

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

    def merge(self, other: HeadSums) -> HeadSums:
        """Add `other` into this one (in place) and return it."""
        if (other.layers, other.heads) != (self.layers, self.heads):
            raise ValueError(f"cannot merge sums of {other.layers}×{other.heads} heads into {self.layers}×{self.heads}")
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


def empty_like(sums: HeadSums) -> HeadSums:
    return HeadSums(sums.layers, sums.heads)


def _row_sums(p: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Σ over rows of the weight on the masked keys: (heads, seq, seq) -> (heads,)."""
    return p[..., mask].sum(axis=(-2, -1))


def layer_sums(
    weights: np.ndarray,
    ids: np.ndarray,
    special: np.ndarray,
    punctuation: np.ndarray,
    visible: np.ndarray,
    options: DetectorOptions = NO_EXCLUSIONS,
) -> tuple[LayerSums, np.ndarray]:
    """One text's sums for one layer, and its (heads, bins) histogram of normalised entropy.

    weights (heads, seq, seq), the layer's full maps; ids (seq,) token ids; special, punctuation
    bool (seq,); visible (seq,) int: how many keys row i may attend to (seq for an encoder,
    i + 1 for a decoder, capped by a sliding window).
    """
    p = np.asarray(weights, dtype=np.float64)
    heads, seq = p.shape[0], p.shape[-1]
    log_p = np.log(p, out=np.zeros_like(p), where=p > 0)
    entropy = np.clip(-(p * log_p).sum(axis=-1), 0.0, None)  # (heads, seq), nats
    spread = visible > 1  # a row that sees one key has no choice: no normalised entropy
    normalised = entropy[:, spread] / np.log(visible[spread])  # (heads, rows)
    bins = np.clip((normalised * HISTOGRAM_BINS).astype(np.int64), 0, HISTOGRAM_BINS - 1)
    histogram = np.zeros((heads, HISTOGRAM_BINS), dtype=np.int64)
    np.add.at(histogram, (np.arange(heads)[:, None], bins), 1)

    first = np.arange(seq) == 0
    parts: LayerSums = {
        "entropy": (entropy.sum(axis=-1), seq),
        "entropy_normalised": (normalised.sum(axis=-1), int(spread.sum())),
        "special": (_row_sums(p, special), seq),
        "first_token": (_row_sums(p, first), seq),
        "punctuation": (_row_sums(p, punctuation), seq),
        "previous_token": (np.diagonal(p, -1, axis1=-2, axis2=-1).sum(axis=-1), max(seq - 1, 0)),
        "self": (np.diagonal(p, 0, axis1=-2, axis2=-1).sum(axis=-1), seq),
        "next_token": (np.diagonal(p, 1, axis1=-2, axis2=-1).sum(axis=-1), max(seq - 1, 0)),
        "sink_rate": ((p[..., 0].mean(axis=-1) > SINK_EPSILON).astype(np.float64), 1),
    }
    if seq > 1:  # TransformerLens scores prompts of 2 tokens or more
        found = detectors.patterns(ids)
        for kind in ("previous-token", "duplicate-token"):
            for measure in detectors.MEASURES:
                s = detectors.score(p, found[kind], measure, options.exclude_bos, options.exclude_current_token)
                parts[f"{kind.replace('-', '_')}_{measure}"] = (s, 1)
    return parts, histogram


def induction_sums(weights: np.ndarray, ids: np.ndarray, options: DetectorOptions = NO_EXCLUSIONS) -> LayerSums:
    """One repeated random-token prompt's induction scores for one layer: (heads, seq, seq),
    ids (seq,) -> metric -> ((heads,), 1)."""
    pattern = detectors.induction_pattern(ids)
    return {
        f"induction_{m}": (detectors.score(weights, pattern, m, options.exclude_bos, options.exclude_current_token), 1) for m in detectors.MEASURES
    }


def visible_keys(seq: int, causal: bool, window: int | None = None) -> np.ndarray:
    """(seq,) int: how many keys each query row sees."""
    if not causal:
        return np.full(seq, seq, dtype=np.int64)
    seen = np.arange(1, seq + 1, dtype=np.int64)
    return seen if window is None else np.minimum(seen, window)

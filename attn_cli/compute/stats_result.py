"""The result of `attn stats` ($defs/stats): per-head means over a corpus, built from merged
`HeadSums`, and its JSON and CSV forms. Every view (Rich grid, JSON, CSV, plot) reads it."""

from __future__ import annotations

import csv
import io
from dataclasses import field

import numpy as np

from ..maths import analysis, headsums
from ..records import frozen
from .result import SCHEMA_VERSION, ModelInfo, floats

# JSON field -> the key `analysis.HEAD_KINDS` (and the grid) use, in the order the JSON lists them.
STAT_FIELDS = {
    "entropy": "entropy", "special": "special-token", "first_token": "first-token", "punctuation": "punctuation",
    "previous_token": "previous-token", "self": "self", "next_token": "next-token",
}
# The fields added with corpus statistics, after the ones above, in JSON order.
NEW_FIELDS = tuple(m for m in headsums.METRICS if m not in STAT_FIELDS)


@frozen
class NamedHead:
    """A head that passes the threshold for one kind (`analysis.HEAD_KINDS`)."""

    layer: int
    head: int
    kind: str
    value: float


@frozen
class Induction:
    """How the induction score was measured: `sequences` prompts of `length` seeded random
    tokens, each repeated once."""

    seed: int
    sequences: int
    length: int


@frozen
class Ablation:
    """How `stats --ablate` measured each head's `ablation`: `mode` ("zero" or "mean": the text's
    own mean), `measure` ("logprob": Δ log p of each text's top-1 next token at its last
    position, a decoder's; "cosine_distance": of the last position's final representation, an
    encoder's), averaged over `texts` texts."""

    mode: str
    measure: str
    texts: int


@frozen  # a short repr: arrays as their shapes
class KnockoutProfile:
    """`stats --knockout`: Geva et al.'s attention knockout over a corpus. For each text, each
    word's edges to the last position blocked in windows of `window` layers (as `attn knockout`);
    `changes` (distances, layers): the mean relative change of p(top-1 next token), by the source
    word's distance in words back from the last word (row d: distance d; 0 the last word itself),
    over `words` (distances,) source words; `texts` texts."""

    window: int
    texts: int
    words: np.ndarray
    changes: np.ndarray

    def to_json(self) -> dict:
        return {
            "window": self.window,
            "texts": self.texts,
            "distances": [
                {"distance": d, "words": int(n), "changes": floats(row.astype(np.float32))}
                for d, (n, row) in enumerate(zip(self.words, self.changes, strict=True))
            ],
        }


def knockout_profile(sums: headsums.HeadSums, window: int) -> KnockoutProfile:
    """The means of the knockout sums, every distance from 0 to the longest text's."""
    texts = sums.texts
    top = max(sums.knockout, default=-1) + 1
    words = np.array([sums.knockout_counts.get(d, 0) for d in range(top)], dtype=np.int64)
    if not top:
        return KnockoutProfile(window, texts, words, np.zeros((0, sums.layers)))
    changes = np.stack([sums.knockout.get(d, np.full(sums.layers, np.nan)) for d in range(top)]) / np.maximum(words, 1)[:, None]
    return KnockoutProfile(window, texts, words, changes)


@frozen  # a short repr: arrays as their shapes
class ContributionProfile:
    """`stats --contributions METHOD`: per layer, the mean over the corpus's tokens of the share
    of each token's representation (a row of `attn contrib --method METHOD`'s matrix) that comes
    from each kind of token (`headsums.MASS_KINDS`), `shares` kind -> (layers,); beside it
    `attention` kind -> (layers,), the same kinds' mean attention mass over the layer's heads.
    NaN: no row counted (the previous token of one-token texts)."""

    method: str
    texts: int
    shares: dict[str, np.ndarray]
    attention: dict[str, np.ndarray]

    def to_json(self) -> dict:
        def kinds(values: dict[str, np.ndarray], layer: int) -> dict:
            return {kind: floats(np.float32(values[kind][layer])) for kind in headsums.MASS_KINDS}

        layers = len(self.shares[headsums.MASS_KINDS[0]])
        return {
            "method": self.method,
            "texts": self.texts,
            "layers": [{"layer": n, "contributions": kinds(self.shares, n), "attention": kinds(self.attention, n)} for n in range(layers)],
        }


def contribution_profile(sums: headsums.HeadSums, metrics: dict[str, np.ndarray], method: str) -> ContributionProfile:
    """The means of the contribution sums; attention's per-layer means from the per-head ones
    (every head of a layer counts the same rows, so their mean is the layer's)."""
    nan = np.full(sums.layers, np.nan)
    shares = {
        kind: sums.contributions[kind] / sums.contribution_counts[kind] if sums.contribution_counts.get(kind) else nan
        for kind in headsums.MASS_KINDS
    }
    return ContributionProfile(method, sums.texts, shares, {kind: metrics[kind].mean(axis=1) for kind in headsums.MASS_KINDS})


@frozen  # a short repr: arrays as their shapes
class StatsResult:
    """Per-head statistics over a corpus.

    layers[l]: kind -> (heads,) mean, for `analysis.HEAD_KINDS` and "entropy" (the named-head
    kinds). metrics: every field of `headsums.METRICS` -> (layers, heads) mean (NaN: no data).
    histogram: (layers, heads, bins) counts of normalised row entropy on [0, 1].
    """

    model: ModelInfo
    texts: int
    tokens: int
    threshold: float
    layers: tuple[dict[str, np.ndarray], ...]
    named: tuple[NamedHead, ...]
    metrics: dict[str, np.ndarray] = field(default_factory=dict)
    histogram: np.ndarray | None = None
    options: headsums.DetectorOptions = headsums.NO_EXCLUSIONS
    induction: Induction | None = None
    ablation: Ablation | None = None
    knockout: KnockoutProfile | None = None
    contributions: ContributionProfile | None = None
    # Encoder–decoder models (`stats_seq2seq`): which attention ("encoder", "decoder", "cross"),
    # and the statistics not measured on it (NaN in `metrics`, null in the JSON).
    attention: str | None = None
    omitted: tuple[str, ...] = ()

    def strongest(self, layer: int) -> tuple[list[str], np.ndarray]:
        """Each head's heaviest kind (first in HEAD_KINDS on ties) and its value: ([heads], (heads,)).
        A kind with no mean (NaN: the previous token of one-token texts) is never the heaviest."""
        masses = np.stack([self.layers[layer][k] for k in analysis.HEAD_KINDS])  # (kinds, heads)
        best = np.where(np.isnan(masses), -np.inf, masses).argmax(axis=0)
        return [analysis.HEAD_KINDS[k] for k in best], masses[best, np.arange(masses.shape[1])]

    def metric(self, name: str) -> np.ndarray:
        """(layers, heads) means of one statistic (a JSON field name)."""
        return self.metrics[name]

    def sink(self) -> dict:
        """Attention sinks (Gu et al.): the share of (head, text) pairs whose mean first-token
        attention exceeds ε, overall and per layer; and the share of heads whose corpus mean does."""
        rate = self.metrics["sink_rate"]
        return {
            "epsilon": headsums.SINK_EPSILON,
            "fraction": floats(np.float32(rate.mean())),
            "heads_over_epsilon": floats(np.float32((self.metrics["first_token"] > headsums.SINK_EPSILON).mean())),
            "layers": floats(rate.mean(axis=1).astype(np.float32)),
        }

    def to_json(self) -> dict:
        def head(layer: int, h: int) -> dict:
            entry = {"head": h, **{name: floats(np.float32(self.layers[layer][key][h])) for name, key in STAT_FIELDS.items()}}
            entry.update({name: floats(np.float32(self.metrics[name][layer, h])) for name in NEW_FIELDS})
            entry["entropy_histogram"] = self.histogram[layer, h].tolist()
            return entry

        return {
            "schema_version": SCHEMA_VERSION,
            "model": vars(self.model),
            "texts": self.texts,
            "tokens": self.tokens,
            "threshold": self.threshold,
            "detectors": {
                "exclude_bos": self.options.exclude_bos,
                "exclude_current_token": self.options.exclude_current_token,
                "induction": None if self.induction is None else vars(self.induction),
            },
            "sink": self.sink(),
            "ablation": None if self.ablation is None else vars(self.ablation),
            "knockout": None if self.knockout is None else self.knockout.to_json(),
            "contributions": None if self.contributions is None else self.contributions.to_json(),
            "layers": [{"layer": layer, "heads": [head(layer, h) for h in range(self.model.heads)]} for layer in range(len(self.layers))],
            "named": [{"layer": n.layer, "head": n.head, "kind": n.kind, "value": floats(np.float32(n.value))} for n in self.named],
            **({} if self.attention is None else {"attention": self.attention, "omitted": list(self.omitted)}),
        }

    def to_csv(self) -> str:
        """layer,head,statistic,value: one row per layer, head and statistic (METRICS order);
        an empty value where a statistic has no data."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["layer", "head", "statistic", "value"])
        for layer in range(len(self.layers)):
            for h in range(self.model.heads):
                for name in headsums.METRICS:
                    value = floats(np.float32(self.metrics[name][layer, h]))
                    writer.writerow([layer, h, name, "" if value is None else repr(value)])
        return out.getvalue()


def build_result(
    model: ModelInfo, sums: headsums.HeadSums, threshold: float, options: headsums.DetectorOptions, induction: Induction | None,
    ablation: tuple[str, str] | None = None, knockout: int | None = None, contributions: str | None = None,
) -> StatsResult:
    """Means of merged sums (corpus and, if measured, induction prompts) and the named heads.
    `ablation`: (mode, measure) when the sums hold head ablations; `knockout`: the window, when
    they hold knockouts; `contributions`: the method, when they hold contribution sums."""
    metrics = sums.means()
    layers = tuple({key: metrics[name][layer] for name, key in STAT_FIELDS.items()} for layer in range(sums.layers))
    named = [
        NamedHead(layer, head, kind, value)
        for layer, means in enumerate(layers)
        for head, kind, value in analysis.classify_heads(means, threshold)
    ]
    named.sort(key=lambda n: -n.value)  # stable: ties keep layer order
    how = None if ablation is None else Ablation(*ablation, sums.counts["ablation"])
    profile = None if knockout is None else knockout_profile(sums, knockout)
    shares = None if contributions is None else contribution_profile(sums, metrics, contributions)
    return StatsResult(
        model, sums.texts, sums.tokens, threshold, layers, tuple(named), metrics, sums.histogram.copy(), options, induction, how, profile, shares
    )


def read_stats_document(source: str) -> dict:
    """A saved `attn stats --json` document (a path, or `-` for stdin), checked enough to plot."""
    import json
    import sys

    from ..errors import InputError

    fix = "save one with: attn stats --file corpus.txt --json > stats.json"
    if source == "-" and (sys.stdin is None or sys.stdin.isatty()):
        raise InputError(
            "--stats is - but nothing is piped to stdin", "pipe the document in (attn plot --stats - -o heads.png < stats.json) or give a file name"
        )
    try:
        raw = sys.stdin.read() if source == "-" else open(source, encoding="utf-8").read()
    except OSError as exc:
        raise InputError(f"cannot read {source}: {exc.strerror or exc}", fix) from None
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, nested too deeply, a 5,000-digit number
        raise InputError(f"{source} is not JSON", fix) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("layers"), list) or not doc["layers"]:
        raise InputError(f"{source} is not an attn stats document (it has no layers)", fix)
    if not isinstance(doc.get("model"), dict):
        raise InputError(f"{source} is not an attn stats document (it has no model)", fix)
    return doc


def metric_grid(doc: dict, metric: str) -> np.ndarray:
    """(layers, heads) of one statistic from a stats document; NaN where it is null or absent
    (a document from before the statistic existed)."""
    from ..errors import InputError

    if metric not in headsums.METRICS:
        raise InputError(f"--metric {metric!r} is not a statistic", f"give one of {', '.join(headsums.METRICS)}")
    fix = "save one with: attn stats --file corpus.txt --json > stats.json"
    layers = doc["layers"]
    if not all(isinstance(layer, dict) and isinstance(layer.get("heads"), list) and layer["heads"] for layer in layers):
        raise InputError("the stats document's layers are not lists of heads", fix)
    if not all(isinstance(h, dict) for layer in layers for h in layer["heads"]):
        raise InputError("the stats document's heads are not objects", fix)
    if len({len(layer["heads"]) for layer in layers}) != 1:
        raise InputError("the stats document's layers have different numbers of heads", fix)
    rows = [[h.get(metric) for h in layer["heads"]] for layer in layers]
    if not all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for row in rows for v in row):
        raise InputError(f"the stats document's {metric} values are not all numbers", fix)
    return np.array([[np.nan if v is None else float(v) for v in row] for row in rows], dtype=np.float64)

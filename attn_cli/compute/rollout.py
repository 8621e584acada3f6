"""`attn rollout`: attention rollout (Abnar & Zuidema 2020) for one query, beside the last
layer's plain attention. One forward pass; the maths is `analysis`'s."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..errors import OptionError
from ..loading.model import Model
from ..loading.tokenizer import Tokenization, units
from ..maths.analysis import cross_rollout, from_words, rollout, rollout_row, to_words, word_matrix
from ..models import Hyper, LayerTrace
from ..records import frozen
from .inspect import model_info, rank_words
from .query import Query, check_rankable, resolve_query
from .result import ModelInfo, WordWeight, document_header, floats, query_json, seq2seq_json, units_json, word_weight_json
from .seq2seq import attended


@frozen  # a short repr: arrays as their shapes
class RolloutResult:
    """Attention rollout for the query (Abnar & Zuidema 2020), over `level` units, next to the
    last layer's plain attention (mean over heads). `full`: the whole (units, units) rollout."""

    model: ModelInfo
    tokenization: Tokenization
    query: Query
    level: str
    rollout: np.ndarray
    last_layer: np.ndarray
    top: tuple[WordWeight, ...]
    full: np.ndarray | None
    # Decoders: the rollout with the first token's column taken out of every layer's map (rows
    # renormalised), and the top words by it; `notes` say why (the attention sink).
    without_sink: np.ndarray | None = None
    top_without_sink: tuple[WordWeight, ...] = ()
    notes: tuple[str, ...] = ()
    # An encoder–decoder's: the kind of attention, and the decoder's input (where the query is).
    attention: str | None = None
    decoder_tokenization: Tokenization | None = None

    def to_json(self) -> dict:
        return {
            **document_header(self.model, self.tokenization),
            "query": query_json(self.query),
            "level": self.level,
            "units": units_json(units(self.tokenization, self.level)),
            "rollout": floats(self.rollout),
            "last_layer_mean": floats(self.last_layer),
            "top": [word_weight_json(w) for w in self.top],
            "full": floats(self.full),
            "without_sink": floats(self.without_sink),
            "top_without_sink": [word_weight_json(w) for w in self.top_without_sink],
            "notes": list(self.notes),
        } | seq2seq_json(self.attention, self.decoder_tokenization)


def attention_rollout(
    model: Model,
    text: str,
    query: str | None = None,
    query_index: int | None = None,
    full: bool = False,
    level: str = "token",
    top_k: int = 5,
    include_special: bool = True,
    target: str | None = None,
    attention: str | None = None,
) -> RolloutResult:
    """Rollout: mean over heads, Â = 0.5·A + 0.5·I with rows renormalised, multiplied layer by
    layer (later layers on the left). For one query only the row is computed (a vector–matrix
    chain); `full` also gives the whole matrix. Works for decoders too (their maps are causal).
    An encoder–decoder model reads `text` as the source and `target` as what the decoder writes:
    `attention` "encoder", "decoder" (the default with a target: the decoder's self-attention)
    or "cross": through the decoder's layers onto the source (`analysis.cross_rollout`)."""
    if level not in ("token", "word"):
        raise OptionError(f"`level={level!r}` is not valid", "give token or word")
    a = attended(model, text, target, attention, whole=True)
    q = resolve_query(a.queries, query, query_index)
    if a.kind != "cross":
        return rollout_from_maps(model, a.keys, mean_maps(a.traces), q, full, level, top_k, include_special, a.kind, a.decoder, a.spec)
    self_maps, cross_maps = cross_mean_maps(a.traces)
    return cross_rollout_from_maps(model, a.pair.source, a.pair.decoder, self_maps, cross_maps, q, full, level, top_k, include_special)


def mean_maps(traces: Iterable[LayerTrace]) -> list[np.ndarray]:
    """Each layer's attention map, mean over heads: (seq, seq) per layer, what rollout multiplies."""
    return [trace.rows()[2].mean(axis=0) for trace in traces]


def rollout_from_maps(
    model: Model, tok: Tokenization, maps: list[np.ndarray], q: Query, full: bool = False, level: str = "token", top_k: int = 5, include_special: bool = True,
    attention: str | None = None, decoder: Tokenization | None = None, spec: Hyper | None = None,
) -> RolloutResult:
    """`attention_rollout` over the layers' mean maps (`mean_maps`), already computed for `tok`.
    An encoder–decoder's `attention` ("encoder" or "decoder"; `decoder` its input, `spec` the
    decoder's) is told in the result."""
    if level not in ("token", "word"):
        raise OptionError(f"`level={level!r}` is not valid", "give token or word")
    spec = model.spec if spec is None else spec
    check_rankable(tok, q, spec.causal, include_special)
    # A query of several tokens: the mean of its tokens' rows (rollout is linear in the row).
    row = np.mean([rollout_row(maps, i) for i in q.token_indices], axis=0).astype(np.float32)
    last = maps[-1][list(q.token_indices)].mean(axis=0)
    top = tuple(rank_words(tok, {"weight": row}, include_special, top_k=top_k))
    groups = [u.token_indices for u in units(tok, level)]

    def on_level(x: np.ndarray) -> np.ndarray:
        return x if level == "token" else to_words(x, groups)

    matrix = None
    if full:
        matrix = rollout(maps)
        if level == "word":  # attention *from* a word: mean of its rows; *to* a word: sum
            matrix = word_matrix(matrix, groups)
    info, s2s = model_info(model, spec), {"attention": attention, "decoder_tokenization": decoder}
    if not spec.causal:
        return RolloutResult(info, tok, q, level, on_level(row), on_level(last), top, matrix, **s2s)
    unsunk = without_first_key(maps)
    clean = np.mean([rollout_row(unsunk, i) for i in q.token_indices], axis=0).astype(np.float32)
    clean_top = tuple(rank_words(tok, {"weight": clean}, include_special, top_k=top_k))
    notes = ()
    if row[0] >= SINK_SHARE:
        notes = (
            f"rollout puts {row[0]:.2f} of the query's attention on the first token: decoder heads park unused attention there "
            "(the attention sink), and every layer's mean map passes it on, so the product ends there; "
            "without_sink takes the first token's column out of every layer's map (rows renormalised) before multiplying",
        )
    return RolloutResult(info, tok, q, level, on_level(row), on_level(last), top, matrix, on_level(clean), clean_top, notes, **s2s)


def cross_mean_maps(traces: Iterable[LayerTrace]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Each decoder layer's self-attention (m, m) and cross-attention (m, n) maps, mean over heads."""
    self_maps, cross_maps = [], []
    for t in traces:
        self_maps.append(t.rows()[2].mean(axis=0))
        cross_maps.append(t.cross.rows()[2].mean(axis=0))
    return self_maps, cross_maps


def cross_rollout_from_maps(
    model: Model, source: Tokenization, decoder: Tokenization, self_maps: list[np.ndarray], cross_maps: list[np.ndarray], q: Query,
    full: bool = False, level: str = "token", top_k: int = 5, include_special: bool = True,
) -> RolloutResult:
    """Cross-attention rollout (`analysis.cross_rollout`) for a query of `decoder`, over the
    units of `source`; `full` is (decoder units, source units): rows the decoder's input,
    columns the source. The maps are `cross_mean_maps`'."""
    if level not in ("token", "word"):
        raise OptionError(f"`level={level!r}` is not valid", "give token or word")
    rows = list(q.token_indices)
    start = np.eye(len(decoder.tokens))
    row = cross_rollout(self_maps, cross_maps, start[rows]).mean(axis=0).astype(np.float32)
    last = cross_maps[-1][rows].mean(axis=0)
    top = tuple(rank_words(source, {"weight": row}, include_special, top_k=top_k))
    groups = [u.token_indices for u in units(source, level)]

    def on_level(x: np.ndarray) -> np.ndarray:
        return x if level == "token" else to_words(x, groups)

    matrix = None
    if full:
        matrix = cross_rollout(self_maps, cross_maps, start).astype(np.float32)
        if level == "word":  # from a target word: mean of its rows; to a source word: sum
            matrix = to_words(from_words(matrix, [u.token_indices for u in units(decoder, "word")]), groups)
    return RolloutResult(
        model_info(model, model.spec.seq2seq.decoder), source, q, level, on_level(row), on_level(last), top, matrix,
        attention="cross", decoder_tokenization=decoder,
    )


SINK_SHARE = 0.5  # rollout's weight on the first token above which the sink is named


def without_first_key(maps: list[np.ndarray]) -> list[np.ndarray]:
    """Each (seq, seq) map with the first key's weight taken from every row but its own, the
    rows renormalised: rollout without the attention sink a decoder's first token is."""
    out = []
    for m in maps:
        m = m.astype(np.float64)
        m[1:, 0] = 0.0
        out.append((m / m.sum(axis=-1, keepdims=True)).astype(np.float32))
    return out

"""`attn heads`: the model view for one query, a layers × heads grid of each head's top word,
its weight on a key word, or its entropy. One forward pass; the maths is `analysis`'s."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..errors import OptionError
from ..loading.model import Model
from ..loading.tokenizer import Tokenization
from ..maths.analysis import weight_on
from ..maths.headsums import row_entropy
from ..maths.ops import causal_visibility, two_sided_visibility
from ..models import Hyper, LayerTrace
from ..records import frozen
from .inspect import model_info, rank_words, word_index
from .query import Query, check_rankable, resolve_query
from .result import ModelInfo, WordWeight, document_header, floats, query_json, seq2seq_json, word_weight_json
from .seq2seq import attended

METRICS = ("top", "weight", "entropy")


@frozen  # a short repr: arrays as their shapes
class HeadsResult:
    """One value per (layer, head) for the query: `values` (layers, heads), and the top-attended
    word of every head (`top`, layers × heads)."""

    model: ModelInfo
    tokenization: Tokenization
    query: Query
    metric: str
    key: Query | None
    values: np.ndarray
    top: tuple[tuple[WordWeight, ...], ...]
    # An encoder–decoder's: the kind of attention, and the decoder's input (where the query is).
    attention: str | None = None
    decoder_tokenization: Tokenization | None = None

    @property
    def visible_keys(self) -> tuple[int, ...]:
        """Per layer, how many keys the query's row spreads over: every token for an encoder
        (within a local layer's two-sided window: ModernBERT); a decoder's query sees itself and
        what comes before, within the layer's sliding window (Gemma 3 alternates sliding and
        global layers). A query of several tokens has the mean of their rows: the keys any of
        them sees."""
        m = self.model
        seq = len(self.tokenization.tokens)
        if self.attention == "cross":  # a target token sees every source token
            return (seq,) * m.layers
        windows = m.layer_windows or (m.sliding_window,) * m.layers
        if not m.causal and m.sliding_window is None:
            return (seq,) * m.layers
        rows = np.array(self.query.token_indices)

        def seen(w):
            if m.causal:
                return causal_visibility(rows, seq, w)
            return np.ones((len(rows), seq), dtype=bool) if w is None else two_sided_visibility(rows, seq, w)

        return tuple(int(seen(w).any(axis=0).sum()) for w in windows)

    @property
    def keys_label(self) -> str:
        """`visible_keys` for a legend: "7", or "4 or 7 by layer" where the layers' windows differ."""
        counts = sorted(set(self.visible_keys))
        return " or ".join(map(str, counts)) + (" by layer" if len(counts) > 1 else "")

    @property
    def focus(self) -> np.ndarray:
        """(layers, heads) entropy as focus in [0, 1]: 1 − H / ln(keys the query sees in that
        layer). 1 is all weight on one key, 0 an even spread over every key the query sees
        (entropy = `values`, nats); a query that sees one key is all focus."""
        if self.metric != "entropy":
            raise ValueError("focus is defined for the entropy metric")
        most = np.log(np.array(self.visible_keys, dtype=np.float64))[:, None]
        spread = np.divide(self.values, most, out=np.zeros(self.values.shape), where=most > 0)
        return np.clip(1.0 - spread, 0.0, 1.0)

    def to_json(self) -> dict:
        return {
            **document_header(self.model, self.tokenization),
            "query": query_json(self.query),
            "metric": self.metric,
            # JSON keeps the name "target" (schema 2.x) for what `--key` names now.
            "target": None if self.key is None else query_json(self.key),
            "layers": [
                {
                    "layer": layer,
                    "heads": [
                        {"head": h, "value": floats(np.float32(self.values[layer, h])), "top": word_weight_json(self.top[layer][h])}
                        for h in range(self.values.shape[1])
                    ],
                }
                for layer in range(self.values.shape[0])
            ],
        } | seq2seq_json(self.attention, self.decoder_tokenization, "target_text")


def heads(
    model: Model,
    text: str,
    query: str | None = None,
    query_index: int | None = None,
    metric: str | None = None,
    key: str | None = None,
    include_special: bool = True,
    target: str | None = None,
    attention: str | None = None,
) -> HeadsResult:
    """The layers × heads grid for one query. metric: "top" (the top-attended word's weight),
    "weight" (the weight on `key`, a word of the text) or "entropy" (of the query's row, in
    nats: low means focused). Default: "weight" with a key, else "top". An encoder–decoder
    model reads `text` as the source and `target` as what the decoder writes: `attention`
    "encoder", "decoder" (the default with a target) or "cross" picks the grid's attention
    (`compute.seq2seq`), the query a target token for the last two, the key a word of the keys'
    text (the target for decoder, the source for cross)."""
    _check_metric(metric, key)
    a = attended(model, text, target, attention)
    return heads_traced(model, a.keys, a.traces, query, query_index, metric, key, include_special, a.kind, a.decoder, a.spec)


def _check_metric(metric: str | None, key: str | None) -> str:
    metric = metric or ("weight" if key is not None else "top")
    if metric not in METRICS:
        raise OptionError(f"`metric={metric!r}` is not valid", f"give one of {', '.join(METRICS)}")
    if metric == "weight" and key is None:
        raise OptionError("`metric='weight'` is each head's weight on a key word, and no `key` was given", "add `key=WORD`, e.g. `key=it`")
    if metric != "weight" and key is not None:
        raise OptionError(f"`key` is read by `metric='weight'` only, and `metric={metric}` does not use it", "drop `key`, or use `metric='weight'`")
    return metric


def heads_traced(
    model: Model,
    tok: Tokenization,
    traces: Iterable[LayerTrace],
    query: str | None = None,
    query_index: int | None = None,
    metric: str | None = None,
    key: str | None = None,
    include_special: bool = True,
    attention: str | None = None,
    decoder: Tokenization | None = None,
    spec: Hyper | None = None,
) -> HeadsResult:
    """`heads` over traces already computed for `tok` (every layer, in order), whose keys are
    `tok`'s tokens. An encoder–decoder's decoder or cross-attention (`attention`): the query is
    a position of `decoder`, and `spec` the decoder's."""
    metric = _check_metric(metric, key)
    spec = model.spec if spec is None else spec
    q = resolve_query(tok if decoder is None else decoder, query, query_index)
    if attention != "cross":  # cross-attention's keys are the source, which has words whatever the query
        check_rankable(tok, q, spec.causal, include_special)
    aim = resolve_query(tok, key, what="key") if key is not None else None
    rows = list(q.token_indices)
    values = np.zeros((spec.layers, spec.heads), np.float32)
    top = []
    index = word_index(tok)  # the words arranged once, not per head (72 times on MiniLM: most of `g`'s first press on 500 tokens)
    for trace in traces:
        weights = trace.rows(rows)[2].mean(axis=1)  # (heads, seq)
        seen = None if trace.visible(rows) is None else trace.visible(rows).any(axis=0)
        firsts = [rank_words(tok, {"weight": w}, include_special, seen, top_k=1, index=index)[0] for w in weights]
        top.append(tuple(firsts))
        for h, w in enumerate(weights):
            if metric == "top":
                values[trace.layer, h] = firsts[h].weight
            elif metric == "weight":
                values[trace.layer, h] = weight_on(w, aim.token_indices)
            else:
                values[trace.layer, h] = row_entropy(w)
    return HeadsResult(model_info(model, spec), tok, q, metric, aim, values, tuple(top), attention, decoder)

"""`inspect`: run the forward pass and keep what the inspector shows for one query.

Only the query's rows are kept from each layer (plus keys and values of the heads shown with
`--steps`), so memory stays O(layers·heads·seq) however long the text is.
"""

from __future__ import annotations

import re
import warnings

import numpy as np

from .errors import InputError
from .loader import Model
from .query import Query, resolve_query
from .result import HeadId, HeadResult, InspectResult, LayerResult, ModelInfo, QueryInfo, Steps, WordWeight
from .tokenize import Tokenization, tokenize

HEAD_CHOICES = ("auto", "mean", "all")


def model_info(model: Model) -> ModelInfo:
    s = model.spec
    return ModelInfo(
        model.name, str(model.path), s.model_type, s.layers, s.heads, s.kv_heads, s.head_dim, s.hidden,
        s.max_positions, s.causal, s.sliding_window, s.rotary,
    )


def select_layers(layer: str | int, layers: int) -> list[int]:
    """'all', or an index (negative counts from the end) -> sorted layer indices."""
    if str(layer).strip().lower() == "all":
        return list(range(layers))
    index = _integer(layer, "layer", f"an index 0 … {layers - 1}, negative from the end, or 'all'")
    if not -layers <= index < layers:
        raise InputError(
            f"layer {index} is out of range: the model has {layers} layers (0 … {layers - 1}, or -1 … -{layers})",
            f"pick --layer between 0 and {layers - 1}, or 'all'",
        )
    return [index % layers]


def parse_head(head: str | int, heads: int) -> HeadId:
    """'auto', 'mean', 'all' or an index (negative counts from the end)."""
    name = str(head).strip().lower()
    if name in HEAD_CHOICES:
        return name
    index = _integer(head, "head", f"an index 0 … {heads - 1}, or one of {', '.join(HEAD_CHOICES)}")
    if not -heads <= index < heads:
        raise InputError(
            f"head {index} is out of range: each layer has {heads} heads (0 … {heads - 1})",
            f"pick --head between 0 and {heads - 1}, or auto, mean, all",
        )
    return index % heads


def _integer(value: str | int, what: str, expected: str) -> int:
    if isinstance(value, int) or re.fullmatch(r"\s*-?\d+\s*", str(value)):
        return int(value)
    raise InputError(f"--{what} {value!r} is not valid", f"give {expected}")


def word_weights(tok: Tokenization, weights: np.ndarray, include_special: bool, visible: np.ndarray | None = None) -> list[WordWeight]:
    """Attention to each word (the sum over its tokens), special tokens as their own entries,
    heaviest first; words a decoder hides from the query entirely are left out.
    weights: (seq,); visible: None or (seq,) bool."""
    def seen(indices) -> bool:
        return visible is None or bool(visible[list(indices)].any())

    entries = [
        WordWeight(w.text, w.index, w.token_indices, float(weights[list(w.token_indices)].sum()), False)
        for w in tok.words
        if seen(w.token_indices)
    ]
    if include_special:
        entries += [WordWeight(t.text, None, (t.index,), float(weights[t.index]), True) for t in tok.tokens if t.special and seen([t.index])]
    # Stable sort: equal weights keep text order.
    return sorted(entries, key=lambda e: -e.weight)


def auto_head(rows: np.ndarray, tok: Tokenization, query: Query) -> int:
    """The head that sends the most attention to *other* words: not to special tokens, not
    to the query itself. Such heads show context being gathered. rows: (heads, seq)."""
    other = np.array([not t.special for t in tok.tokens])
    other[list(query.token_indices)] = False
    return int(np.argmax(rows[:, other].sum(axis=1)))


def inspect(
    model: Model,
    text: str,
    query: str | None = None,
    query_index: int | None = None,
    layer: str | int = -1,
    head: str | int = "auto",
    top_k: int = 5,
    steps: bool = False,
    include_special: bool = True,
    truncate: bool = False,
) -> InspectResult:
    """Inspect self-attention for one query of `text` at the chosen layers and heads.
    A text longer than the model reads is an error, or with `truncate`, cut to fit."""
    if top_k < 1:
        raise InputError(f"--top {top_k} is not valid", "give --top 1 or more")
    s = model.spec
    layers = select_layers(layer, s.layers)
    head_choice = parse_head(head, s.heads)
    tok = tokenize(model.tokenizer, text, max_tokens=s.max_positions, truncate=truncate)
    q = resolve_query(tok, query, query_index)
    rows = list(q.token_indices)

    results = []
    for trace in model.arch.forward(model.weights, s, model.config, tok.ids):
        if trace.layer in layers:
            results.append(_layer_result(trace, tok, q, rows, head_choice, top_k, steps, include_special))
        if trace.layer >= layers[-1]:
            break  # later layers cannot change what was asked
    return InspectResult(
        model=model_info(model),
        tokenization=tok,
        query=QueryInfo(q.text, q.token_indices, q.occurrence, q.occurrences),
        layers=tuple(results),
        top_k=top_k,
        include_special=include_special,
        notes=tuple(_notes(tok, q, query)),
    )


def _layer_result(trace, tok, q, rows, head_choice, top_k, steps, include_special) -> LayerResult:
    scores, scaled_scores, weights = trace.rows(rows)  # each (heads, len(rows), seq)
    visible = trace.visible(rows)  # None for encoders, else (len(rows), seq)
    if visible is not None:  # a masked score is not a number the model used: NaN, shown as "—"
        scores, scaled_scores = (np.where(visible, x, np.nan) for x in (scores, scaled_scores))
    # A query of several tokens (a split word) gets the mean of their rows: (heads, seq).
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: masked for every row
        scores, scaled_scores = (np.nanmean(x, axis=1) for x in (scores, scaled_scores))
    weights = weights.mean(axis=1)
    heads = weights.shape[0]
    any_visible = None if visible is None else visible.any(axis=0)

    chosen = auto_head(weights, tok, q) if head_choice == "auto" else None
    if head_choice == "all":
        focus: tuple[HeadId, ...] = tuple(range(heads))
    else:
        focus = (chosen if chosen is not None else head_choice,)

    def top(w: np.ndarray) -> tuple[WordWeight, ...]:
        return tuple(word_weights(tok, w, include_special, any_visible)[:top_k])

    def mean_rows(x: np.ndarray | None, h: int) -> np.ndarray | None:
        return None if x is None else x[h, rows, :].mean(axis=0)

    results = []
    for h in range(heads):
        detail = None
        if steps and h in focus:
            kv = trace.kv_head(h)
            detail = Steps(
                query=mean_rows(trace.q, h),
                keys=trace.k[kv],
                values=trace.v[kv],
                output=mean_rows(trace.head_output, h),
                query_pre_rope=mean_rows(trace.q_pre_rope, h),
                keys_pre_rope=None if trace.k_pre_rope is None else trace.k_pre_rope[kv],
            )
        results.append(HeadResult(h, scores[h], scaled_scores[h], weights[h], top(weights[h]), detail, trace.kv_head(h)))
    mean = weights.mean(axis=0)
    results.append(HeadResult("mean", None, None, mean, top(mean)))
    return LayerResult(trace.layer, tuple(results), focus, chosen, any_visible)


def _notes(tok: Tokenization, q: Query, query: str | None) -> list[str]:
    notes = []
    if tok.total_tokens is not None:
        last = tok.words[-1].text if tok.words else ""
        notes.append(f"the text is {tok.total_tokens} tokens long; only its first {len(tok.tokens)} were read (up to {last!r})")
    if len(q.token_indices) > 1:
        pieces = " ".join(tok.tokens[i].text for i in q.token_indices)
        notes.append(f"{q.text!r} is {len(q.token_indices)} tokens ({pieces}): its row is the mean of their rows")
    if q.occurrences and q.occurrences > 1 and query is not None and "#" not in query:
        notes.append(f"{q.text!r} occurs {q.occurrences} times; this is the first ({q.text}#1); use {q.text}#2 for the next")
    return notes

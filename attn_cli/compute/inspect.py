"""`inspect`: run the forward pass and keep what the inspector shows for one query.

Only the query's rows are kept from each layer (plus keys and values of the heads shown with
`--steps`), so memory stays O(layers·heads·seq) however long the text is.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import replace

import numpy as np

from ..loading.model import Model
from ..loading.tokenizer import Tokenization, tokenize, units
from ..maths.analysis import output_slices, to_words, value_norms
from ..models import LayerTrace
from ..records import frozen
from .options import InspectOptions
from .query import Query, check_rankable, resolve_query
from .result import HeadId, HeadResult, InspectResult, LayerResult, ModelInfo, QueryInfo, Steps, WordWeight
from .seq2seq import check_kind, pair


def model_info(model: Model, spec=None) -> ModelInfo:
    """The model as documents describe it; `spec`: the part shown, when not the encoder's (an
    encoder–decoder's decoder: its own layer count, causal)."""
    s = model.spec if spec is None else spec
    return ModelInfo(
        model.name, str(model.path), s.model_type, s.layers, s.heads, s.kv_heads, s.head_dim, s.hidden,
        s.max_positions, s.causal, s.sliding_window, s.rotary, s.layer_windows, s.scale, s.attn_softcap,
    )


@frozen
class WordIndex:
    """A tokenization's word units, arranged once for ranking many rows: `rank_words` runs for
    every head of every layer shown. order, starts: `np.add.reduceat` runs summing each word's
    token columns (what `analysis.to_words` computes); special: (words,) bool."""

    items: tuple
    order: np.ndarray
    starts: np.ndarray
    special: np.ndarray


def word_index(tok: Tokenization) -> WordIndex:
    items = units(tok, "word")
    sizes = np.array([len(u.token_indices) for u in items], dtype=np.intp)
    order = np.fromiter((t for u in items for t in u.token_indices), dtype=np.intp, count=int(sizes.sum()))
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
    return WordIndex(items, order, starts, np.array([u.special for u in items], dtype=bool))


def rank_words(
    tok: Tokenization,
    ranked: dict[str, np.ndarray],
    include_special: bool,
    visible: np.ndarray | None = None,
    by: str = "weight",
    top_k: int | None = None,
    index: WordIndex | None = None,
) -> list[WordWeight]:
    """The `top_k` words (and special tokens) by attention received, heaviest first.

    ranked: "weight" -> (seq,) weights over tokens, summed per word; optionally "value_norm"
    and "output_norm" -> (words,) already per word unit. Words a decoder hides entirely from
    the query (`visible`, (seq,) bool) are left out. `index`: `word_index(tok)`, if the caller
    ranks many rows of one text.
    """
    index = word_index(tok) if index is None else index
    items = index.items
    values = {k: v for k, v in ranked.items() if k != "weight"} | {"weight": np.add.reduceat(ranked["weight"][index.order], index.starts)}
    keep = np.ones(len(items), dtype=bool) if include_special else ~index.special
    if visible is not None:
        keep &= np.add.reduceat(visible.astype(np.int32)[index.order], index.starts) > 0
    # Stable sort: equal values keep text order.
    order = np.argsort(-values[by], kind="stable")
    order = order[keep[order]][:top_k]
    extra = [k for k in values if k != "weight"]

    def entry(i: int) -> WordWeight:
        u = items[i]
        return WordWeight(
            u.text, u.word, u.token_indices, float(values["weight"][i]), u.special, **{k: float(values[k][i]) for k in extra}, label=u.label
        )

    return [entry(int(i)) for i in order]


def auto_head(rows: np.ndarray, tok: Tokenization, query: Query, causal: bool = False) -> int:
    """The head that sends the most attention to *other* words: not to special tokens, not
    to the query itself, and in a decoder not to the first token (an attention sink, special
    or not: SmolLM2 has no BOS). Such heads show context being gathered. rows: (heads, seq)."""
    other = np.array([not t.special for t in tok.tokens])
    other[list(query.token_indices)] = False
    if causal and other[1:].any():
        other[0] = False
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
    truncate: bool | None = False,
    level: str = "token",
    norms: bool = False,
    rank_by: str = "weight",
    chat: bool = False,
    system: str | None = None,
    target: str | None = None,
    attention: str | None = None,
) -> InspectResult:
    """Inspect self-attention for one query of `text` at the chosen layers and heads.

    A text longer than the model reads is an error, or with `truncate`, cut to fit. `level`
    "word" shows words instead of tokens (attention to a word is the sum over its tokens).
    `norms` adds ‖α·v‖ and ‖α·v·W_O‖ beside each weight; `rank_by` ("weight", "value_norm",
    "output_norm") orders the top-attended words, and implies `norms`. `chat` reads `text` as
    a user message rendered by the model's chat template (after `system`, if given). An
    encoder–decoder model reads `text` as the source and `target` as what the decoder writes
    (teacher-forced); `attention` "encoder", "decoder" (the default with a target) or "cross"
    picks the kind shown (`compute.seq2seq`). The options are those of `InspectOptions`, which
    checks them.
    """
    options = InspectOptions(
        query=query, query_index=query_index, layer=layer, head=head, top_k=top_k, steps=steps, include_special=include_special,
        truncate=truncate, level=level, norms=norms, rank_by=rank_by, chat=chat, system=system, target=target, attention=attention,
    )
    return inspect_with(model, text, options)


def inspect_with(model: Model, text: str, options: InspectOptions) -> InspectResult:
    """`inspect` with its options as one value."""
    kind = check_kind(model, options.target, options.attention)
    if kind in ("decoder", "cross"):
        return _inspect_target(model, text, options, kind)
    layers, head = options.layers(model.spec.layers), options.head_id(model.spec.heads)
    if options.chat:
        from .chat import chat_tokenization

        tok = chat_tokenization(model, text, options.system, truncate=options.truncate)
    else:
        tok = tokenize(model.tokenizer, text, max_tokens=model.spec.max_positions, truncate=options.truncate)
    attention = "encoder" if kind == "encoder" else None
    return _inspect(model, tok, None, options, layers, head, attention=attention)


def _inspect_target(model: Model, source: str, options: InspectOptions, kind: str) -> InspectResult:
    """An encoder–decoder's decoder self-attention or cross-attention, the target teacher-forced."""
    p = pair(model, source, options.target, options.truncate)
    return inspect_decoder(model, p.source, p.decoder, model.memory(p.source.ids), options, kind)


def inspect_decoder(model: Model, source: Tokenization, decoder: Tokenization, memory, options: InspectOptions, kind: str = "decoder") -> InspectResult:
    """`inspect` of a position of an encoder–decoder's decoder input `decoder` (its start token,
    then a target), over the source's `memory` (`Model.memory`): its self-attention ("decoder")
    or its cross-attention over `source` ("cross"). The query is a position of `decoder`."""
    spec = model.spec.seq2seq.decoder
    layers, head = options.layers(spec.layers), options.head_id(spec.heads)
    # Cross-attention is computed after the layer's self-attention: the last layer runs whole.
    through = None if options.steps or kind == "cross" else layers[-1]
    traces = model.trace_decoder(decoder.ids, memory, through=through)
    keys = decoder if kind == "decoder" else source
    return _inspect(
        model, keys, (t.cross if kind == "cross" else t for t in traces), options, layers, head,
        attention=kind, decoder=decoder, spec=spec, w_o_of=_decoder_w_o(model, kind),
    )


def _decoder_w_o(model: Model, kind: str):
    """layer -> W_O of an encoder–decoder's decoder self-attention or cross-attention."""
    projection = model.arch.seq2seq.output_projections
    return lambda layer: projection(model.weights, layer)[kind == "cross"]


def inspect_tokens(
    model: Model, tok: Tokenization, options: InspectOptions | None = None, traces: Iterable[LayerTrace] | None = None,
    attention: str | None = None, decoder: Tokenization | None = None,
) -> InspectResult:
    """`inspect` of a text already tokenized (a chat, or a prompt and what a decoder generated),
    over `traces` already computed for `tok` in layer order (the explorer keeps them), else a
    forward pass of its own: the same result, and so the same JSON, either way. How the text
    became tokens (`truncate`, `chat`, `system`) is not read from `options`. An encoder–decoder's
    `attention` "decoder" or "cross": `traces` are the decoder's (for cross, their `cross`), the
    query a position of `decoder`."""
    options = options or InspectOptions()
    if attention in ("decoder", "cross"):
        spec = model.spec.seq2seq.decoder
        layers, head = options.layers(spec.layers), options.head_id(spec.heads)
        return _inspect(model, tok, traces, options, layers, head, attention, decoder, spec, _decoder_w_o(model, attention))
    layers, head = options.layers(model.spec.layers), options.head_id(model.spec.heads)
    return _inspect(model, tok, traces, options, layers, head, attention)


def _inspect(
    model: Model, tok: Tokenization, traces: Iterable[LayerTrace] | None, options: InspectOptions, layers: list[int], head: HeadId,
    attention: str | None = None, decoder: Tokenization | None = None, spec=None, w_o_of=None,
) -> InspectResult:
    """The result over `traces` (else a pass of its own) whose keys are `tok`'s tokens. An
    encoder–decoder's decoder or cross-attention (`attention`): the query is a position of
    `decoder`, the decoder's input; `spec` the decoder's, `w_o_of(layer)` its W_O."""
    q = resolve_query(decoder if attention in ("decoder", "cross") else tok, options.query, options.query_index)
    if attention != "cross":  # cross-attention's keys are the source, which has words whatever the query
        check_rankable(tok, q, model.spec.causal if spec is None else spec.causal, options.include_special)
    results = []
    text = _text_units(tok, options.level)
    # The last layer asked for is needed only as far as its attention maps (q, k, v), unless
    # --steps shows its head outputs: `through` skips the rest of its work.
    through = None if options.steps else layers[-1]
    for trace in model.trace(tok.ids, through=through) if traces is None else traces:
        if trace.layer in layers:
            w_o = None
            if options.shows_norms:
                w_o = model.arch.output_projection(model.weights, trace.layer) if w_o_of is None else w_o_of(trace.layer)
            results.append(_layer_result(trace, tok, text, q, options, head, w_o))
        if trace.layer >= layers[-1]:
            break  # later layers cannot change what was asked
    return InspectResult(
        model=model_info(model, spec),
        tokenization=tok,
        query=QueryInfo(q.text, q.token_indices, q.occurrence, q.occurrences),
        layers=tuple(results),
        top_k=options.top_k,
        include_special=options.include_special,
        notes=tuple(_notes(tok, q, options.query)),
        level=options.level,
        rank_by=options.rank_by,
        attention=attention,
        decoder_tokenization=decoder,
    )


def _text_units(tok: Tokenization, level: str) -> tuple[list, list, WordIndex]:
    """What every layer's result needs of the text, found once: the token groups of the view's
    units and of the words, and the word index that ranks them."""
    words = [u.token_indices for u in units(tok, "word")]
    view = words if level == "word" else [u.token_indices for u in units(tok, level)]
    return view, words, word_index(tok)


def _layer_result(
    trace, tok: Tokenization, text: tuple, q: Query, options: InspectOptions, head: HeadId, w_o: np.ndarray | None
) -> LayerResult:
    rows = list(q.token_indices)
    scores, scaled_scores, weights = trace.rows(rows)  # each (heads, len(rows), seq)
    # The scores the softmax reads, where the model adds a term or a cap to the scaled ones.
    adjusted = None if trace.adjusts is None else trace.adjusted(scaled_scores, rows)
    visible = trace.visible(rows)  # None for encoders, else (len(rows), seq)
    if visible is not None:  # a masked score is not a number the model used: NaN, shown as "—"
        scores, scaled_scores = (np.where(visible, x, np.nan) for x in (scores, scaled_scores))
        adjusted = None if adjusted is None else np.where(visible, adjusted, np.nan)
    # A query of several tokens (a split word) gets the mean of their rows: (heads, seq).
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: masked for every row
        scores, scaled_scores = (np.nanmean(x, axis=1) for x in (scores, scaled_scores))
        adjusted = None if adjusted is None else np.nanmean(adjusted, axis=1)
    weights = weights.mean(axis=1)
    heads = weights.shape[0]
    seen = None if visible is None else visible.any(axis=0)

    # Cross-attention's query is no key: no key is left out as "the query itself".
    own = replace(q, token_indices=()) if trace.over_source else q
    chosen = auto_head(weights, tok, own, trace.spec.causal) if head == "auto" else None
    focus: tuple[HeadId, ...] = tuple(range(heads)) if head == "all" else (chosen if chosen is not None else head,)
    view, words, index = text
    slices = output_slices(w_o, heads) if w_o is not None else None

    def on_view(x: np.ndarray | None) -> np.ndarray | None:
        """(seq,) over tokens -> over the view's units (sums per word at word level)."""
        return x if x is None or options.level == "token" else to_words(x, view)

    results = []
    for h in range(heads):
        kv = trace.kv_head(h)
        norms = _norms(weights[h], trace.v[kv], slices[h], view, words) if slices is not None else {}
        ranked = {"weight": weights[h]} | {k: v[1] for k, v in norms.items()}
        top = tuple(rank_words(tok, ranked, options.include_special, seen, options.rank_by, options.top_k, index))
        detail = _steps(trace, h, rows) if options.steps and h in focus else None
        scored = options.level == "token"  # a word's raw score is no single number the model used
        results.append(
            HeadResult(
                h, scores[h] if scored else None, scaled_scores[h] if scored else None, on_view(weights[h]), top, detail, kv,
                value_norms=norms["value_norm"][0] if norms else None, output_norms=norms["output_norm"][0] if norms else None,
                adjusted_scores=adjusted[h] if scored and adjusted is not None else None,
            )
        )
    mean = weights.mean(axis=0)
    mean_top = tuple(rank_words(tok, {"weight": mean}, options.include_special, seen, top_k=options.top_k, index=index))
    results.append(HeadResult("mean", None, None, on_view(mean), mean_top))
    seen_view = None if seen is None else np.array([seen[list(g)].any() for g in view])
    routing = trace.routing if options.steps else None  # each token's experts: shown with the steps, where the layer has them
    return LayerResult(trace.layer, tuple(results), focus, chosen, seen_view, trace.spec.window(trace.layer), trace.adjusts, routing)


def _norms(weights: np.ndarray, values: np.ndarray, w_o: np.ndarray, view: list, words: list) -> dict:
    """‖Σ α_j·v_j‖ and ‖Σ α_j·v_j·W_O‖ over each unit's tokens (`analysis.value_norms`), as
    (over the view's units, over word units) per name."""
    (value_view, output_view), (value_words, output_words) = (value_norms(weights, values, w_o, g) for g in (view, words))
    return {"value_norm": (value_view, value_words), "output_norm": (output_view, output_words)}


def _steps(trace, h: int, rows: list[int]) -> Steps:
    """Step 1 and step 3 vectors of head h for the query (the mean over its rows)."""
    kv = trace.kv_head(h)

    def mean_rows(x: np.ndarray | None) -> np.ndarray | None:
        return None if x is None else x[h, rows, :].mean(axis=0)

    return Steps(
        query=mean_rows(trace.q),
        keys=trace.k[kv],
        values=trace.v[kv],
        output=mean_rows(trace.head_output),
        query_pre_rope=mean_rows(trace.q_pre_rope),
        keys_pre_rope=None if trace.k_pre_rope is None else trace.k_pre_rope[kv],
    )


def _notes(tok: Tokenization, q: Query, query: str | None) -> list[str]:
    notes = []
    if tok.total_tokens is not None:
        last = tok.words[-1].text if tok.words else ""
        notes.append(f"the text is {tok.total_tokens} tokens long; only its first {len(tok.tokens)} were read (up to {last!r})")
    if len(q.token_indices) > 1:
        pieces = " ".join(tok.tokens[i].text for i in q.token_indices)
        notes.append(f"{q.text!r} is {len(q.token_indices)} tokens ({pieces}): its row is the mean of their rows")
    if q.accents_ignored:
        notes.append(f"{query!r} matched {q.text!r} only once accents were set aside")
    if q.occurrences and q.occurrences > 1 and query is not None and "#" not in query:
        notes.append(f"{q.text!r} occurs {q.occurrences} times; this is the first ({q.text}#1); use {q.text}#2 for the next")
    return notes

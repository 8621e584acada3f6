"""The one result type of `attn inspect`, and its JSON form (described by `schema/attn.schema.json`).

The table renderer and the JSON writer both read an `InspectResult`, so they cannot disagree.
"""

from __future__ import annotations

import json
from dataclasses import field

import numpy as np

from ..loading.tokenizer import Token, Tokenization, Unit, Word, units
from ..models.base import Routing
from ..records import frozen

SCHEMA_VERSION = "2.4"

HeadId = int | str  # a head index, or "mean" (the mean over the layer's heads)


@frozen
class ModelInfo:
    name: str
    path: str
    architecture: str
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    hidden_size: int
    max_positions: int
    causal: bool
    sliding_window: int | None
    rotary: bool
    layer_windows: tuple[int | None, ...] | None = None  # per layer: its window, or None for a global layer (Gemma 3)
    scale: float | None = None  # the factor on Q·K: 1/√head_dim, or Gemma's query_pre_attn_scalar^-½
    attn_softcap: float | None = None  # Gemma 2's cap·tanh(s/cap) on the scaled scores, before the softmax

    def __repr__(self) -> str:  # every result holds one: the essentials, not all fourteen fields
        return f"ModelInfo(name={self.name!r}, architecture={self.architecture!r}, layers={self.layers}, heads={self.heads})"


@frozen
class WordWeight:
    """Attention to one word unit (`Tokenization.word_units`): the sum over its tokens. Special
    tokens, and tokens of whitespace alone, count as units of their own. `label` is the unit's
    name in a list: `fibonacci#2` for the second of a repeated word (see `Unit`)."""

    text: str
    word: int | None
    token_indices: tuple[int, ...]
    weight: float
    special: bool
    value_norm: float | None = None  # ‖Σ α·v‖ over the word's tokens, with norms
    output_norm: float | None = None  # ‖Σ α·v·W_O‖
    label: str = ""

    @property
    def name(self) -> str:
        """What a list shows: the label, else the text."""
        return self.label or self.text


@frozen
class Steps:
    """Step 1 and step 3 for one head: query (head_dim,), keys and values (seq, head_dim),
    output (head_dim,) = Σ_j weights[j]·values[j]. Rotary models also keep q and k before
    RoPE (the query and keys are after it, as they enter Q·Kᵀ)."""

    query: np.ndarray
    keys: np.ndarray
    values: np.ndarray
    output: np.ndarray
    query_pre_rope: np.ndarray | None = None
    keys_pre_rope: np.ndarray | None = None


@frozen
class HeadResult:
    """The query's row of one head (or of the mean over heads, whose scores are None).
    scores, scaled_scores, weights: (seq,); scores are NaN where a decoder masks the key.
    kv_head: the key/value head this query head reads (differs from `head` under GQA).
    adjusted_scores (seq,): what the softmax reads where the model changes the scaled scores
    first (`LayerResult.adjusts`: MPNet's position bias, Gemma 2's soft-cap), else None."""

    head: HeadId
    scores: np.ndarray | None
    scaled_scores: np.ndarray | None
    weights: np.ndarray
    top: tuple[WordWeight, ...]
    steps: Steps | None = None
    kv_head: int | None = None
    value_norms: np.ndarray | None = None  # (seq,) ‖α_j·v_j‖, with --norms (Kobayashi et al. 2020)
    output_norms: np.ndarray | None = None  # (seq,) ‖α_j·v_j·W_O‖: what token j adds to the layer's output
    adjusted_scores: np.ndarray | None = None


@frozen
class LayerResult:
    """Every head of one layer, then the mean; `focus` names the heads shown in detail."""

    layer: int
    heads: tuple[HeadResult, ...]
    focus: tuple[HeadId, ...]
    auto_head: int | None = None  # set when the focus head was chosen by `--head auto`
    visible: np.ndarray | None = None  # (seq,) bool for decoders: keys the query may see
    window: int | None = None  # this layer's sliding window; None when it attends to every (earlier) token
    adjusts: str | None = None  # between the scaled scores and the softmax: "bias", "cap" or "bias+cap" (`LayerTrace.adjusts`)
    routing: Routing | None = None  # with --steps, a mixture-of-experts layer: each token's top-k experts and their weights

    def head(self, head: HeadId) -> HeadResult:
        return next(h for h in self.heads if h.head == head)


@frozen
class QueryInfo:
    text: str
    token_indices: tuple[int, ...]
    occurrence: int | None
    occurrences: int | None


@frozen
class InspectResult:
    model: ModelInfo
    tokenization: Tokenization
    query: QueryInfo
    layers: tuple[LayerResult, ...]
    top_k: int
    include_special: bool
    notes: tuple[str, ...] = field(default=())
    level: str = "token"  # the rows of the per-head lists: tokens, or words ("word")
    rank_by: str = "weight"
    # An encoder–decoder model's: which attention ("encoder", "decoder", "cross"; None for other
    # models) and, with a target, the decoder's input (the query's sequence for decoder and
    # cross; `tokenization` is then the keys': the decoder's input, or the source).
    attention: str | None = None
    decoder_tokenization: Tokenization | None = None

    @property
    def marked(self) -> set[int]:
        """The key positions that are the query's own tokens (▶ in the views): none for
        cross-attention, whose query is a target token and whose keys are the source."""
        return set() if self.attention == "cross" else set(self.query.token_indices)

    @property
    def tokens(self) -> tuple[Token, ...]:
        return self.tokenization.tokens

    def __repr__(self) -> str:
        layers = [layer.layer for layer in self.layers]
        heads = len(self.layers[0].heads) if self.layers else 0
        return (
            f"InspectResult(model={self.model.name!r}, query={self.query.text!r} (tokens {list(self.query.token_indices)}), "
            f"layers={layers}, heads={heads} (the last: the mean), level={self.level!r}, weights: {len(layers)} × {heads} rows "
            f"of ({len(self.units)},), tokens={len(self.tokenization.tokens)}, words={len(self.tokenization.words)}, top_k={self.top_k})"
        )

    @property
    def units(self) -> tuple[Unit, ...]:
        """What the per-head lists run over: tokens, or words and special tokens."""
        return units(self.tokenization, self.level)

    def to_json(self) -> dict:
        return {
            **document_header(self.model, self.tokenization),
            "truncated_from": self.tokenization.total_tokens,
            "query": query_json(self.query),
            "top_k": self.top_k,
            "include_special": self.include_special,
            "level": self.level,
            "units": units_json(self.units),
            "rank_by": self.rank_by,
            "layers": [
                {
                    "layer": layer.layer,
                    "focus": list(layer.focus),
                    "auto_head": layer.auto_head,
                    "visible": None if layer.visible is None else layer.visible.tolist(),
                    "attention": "global" if layer.window is None else "sliding",
                    "window": layer.window,
                    "heads": [_head_json(h) for h in layer.heads],
                }
                | ({} if layer.adjusts is None else {"adjusts": layer.adjusts})
                | ({} if layer.routing is None else {"routing": routing_json(layer.routing)})
                for layer in self.layers
            ],
            "notes": list(self.notes),
        } | self._seq2seq_json()

    def _seq2seq_json(self) -> dict:
        return seq2seq_json(self.attention, self.decoder_tokenization)


def seq2seq_json(attention: str | None, decoder: Tokenization | None, text_field: str = "target") -> dict:
    """An encoder–decoder's fields (inspect, heads, rollout): the kind of attention, and the
    decoder's input tokens and the target's text (as `text_field`: heads' `target` is its key
    word); nothing for other models."""
    if attention is None:
        return {}
    doc = {"attention": attention}
    if decoder is not None:
        doc |= {text_field: decoder.text, "decoder_tokens": tokens_json(decoder)}
    return doc


def routing_json(routing: Routing) -> list[dict]:
    """`layers[].routing`: for each token in order, its experts (most probable first) and their weights."""
    return [{"experts": e.tolist(), "weights": floats(w)} for e, w in zip(routing.experts, routing.weights, strict=True)]


def tokens_json(tok: Tokenization) -> list[dict]:
    """`tokens[]`: each token as read (`text`), as the vocabulary spells it (`piece`), and the
    exact text it covers (`source` = text[start:end]; null for a special token)."""
    return [
        {
            "index": t.index, "text": t.text, "piece": t.piece or t.text, "source": tok.source(t), "id": t.id, "start": t.start, "end": t.end,
            "word": t.word, "special": t.special,
        }
        for t in tok.tokens
    ]


def units_json(items: tuple[Unit, ...]) -> list[dict]:
    return [{"text": u.text, "label": u.label, "token_indices": list(u.token_indices), "word": u.word, "special": u.special} for u in items]


def query_json(q) -> dict:
    """The `query` of every document about one query (inspect, batch, heads, rollout, lens,
    generate): a `Query` or `QueryInfo`."""
    return {"text": q.text, "token_indices": list(q.token_indices), "occurrence": q.occurrence, "occurrences": q.occurrences}


def word_weight_json(w: WordWeight) -> dict:
    """One entry of a `top` list (inspect, batch, heads, rollout, generate with a query)."""
    doc = {
        "text": w.text, "label": w.name, "word": w.word, "token_indices": list(w.token_indices), "weight": floats(np.float32(w.weight)), "special": w.special,
    }
    if w.value_norm is not None:
        doc |= {"value_norm": floats(np.float32(w.value_norm)), "output_norm": floats(np.float32(w.output_norm))}
    return doc


def words_json(words: tuple[Word, ...]) -> list[dict]:
    return [{"index": w.index, "text": w.text, "start": w.start, "end": w.end, "token_indices": list(w.token_indices)} for w in words]


def floats(array: np.ndarray | None) -> list | float | None:
    """float32 values as the shortest decimals that read back to the same float32 (0.08, not
    0.07999999821186066), nested like the array; NaN (a masked score) becomes None."""
    if array is None:
        return None
    array = np.asarray(array, dtype=np.float32)
    values = array.astype(str).astype(np.float64)
    if not np.isnan(array).any():
        return values.tolist()
    return np.where(np.isnan(array), None, values.astype(object)).tolist()


def _head_json(h: HeadResult) -> dict:
    doc = {
        "head": h.head,
        "kv_head": h.kv_head,
        "first_token_weight": floats(h.weights[0]),
        "scores": floats(h.scores),
        "scaled_scores": floats(h.scaled_scores),
        "weights": floats(h.weights),
        "top": [word_weight_json(w) for w in h.top],
    }
    if h.adjusted_scores is not None:
        doc["adjusted_scores"] = floats(h.adjusted_scores)
    if h.value_norms is not None:
        doc |= {"value_norms": floats(h.value_norms), "output_norms": floats(h.output_norms)}
    if h.steps is not None:
        doc["steps"] = {
            "query": floats(h.steps.query),
            "keys": floats(h.steps.keys),
            "values": floats(h.steps.values),
            "output": floats(h.steps.output),
        }
        if h.steps.query_pre_rope is not None:
            doc["steps"] |= {"query_pre_rope": floats(h.steps.query_pre_rope), "keys_pre_rope": floats(h.steps.keys_pre_rope)}
    return doc


def json_schema() -> dict:
    """The JSON Schema of `attn inspect --json` (and `attn tokens --json`), shipped in the package."""
    from importlib import resources  # only `attn schema` and tests read the schema

    return json.loads(resources.files("attn_cli").joinpath("schema/attn.schema.json").read_text(encoding="utf-8"))


def document_header(model: ModelInfo, tok: Tokenization) -> dict:
    """What every document about a text starts with: schema_version, model, text, tokens, words.
    It is all of `attn tokens --json`."""
    return {
        "schema_version": SCHEMA_VERSION,
        "model": vars(model)
        | {
            "layer_windows": None if model.layer_windows is None else list(model.layer_windows),
            "scale": floats(None if model.scale is None else np.float32(model.scale)),
        },
        "text": tok.text,
        "tokens": tokens_json(tok),
        "words": words_json(tok.words),
    }


def models_document(entries) -> dict:
    """The JSON of `attn models --json`."""
    return {
        "schema_version": SCHEMA_VERSION,
        "models": [
            {"name": e.name, "source": e.source, "path": e.path, "architecture": e.architecture, "usable": e.usable, "problem": e.problem,
             "layers": e.layers, "heads": e.heads, "quantization": e.quantization, "size_bytes": e.size_bytes}
            for e in entries
        ],
    }


CSV_COLUMNS = ("layer", "head", "kv_head", "token_index", "token", "word", "special", "score", "scaled_score", "weight")
CSV_NORM_COLUMNS = ("value_norm", "output_norm")


def csv_columns(result: InspectResult) -> tuple[str, ...]:
    """The CSV header: CSV_COLUMNS, plus the norms when the result has them (--norms)."""
    return CSV_COLUMNS + (CSV_NORM_COLUMNS if result.layers and result.layers[0].heads[0].value_norms is not None else ())


def csv_rows(result: InspectResult):
    """The table in long form, for spreadsheets and R/pandas: one row per (layer, head, unit),
    the units being those of the JSON's weights (tokens, or words with --level word, whose
    `token_index` lists their tokens, space-separated), the mean over heads as head "mean".
    Masked scores, and scores at word level, are empty cells. `word`: the word(s) the unit's
    tokens overlap, as written (empty for special and whitespace tokens)."""
    norms = len(csv_columns(result)) > len(CSV_COLUMNS)
    tok = result.tokenization
    words = [_words_text(tok, unit) for unit in result.units]
    for layer in result.layers:
        for head in layer.heads:
            for i, unit in enumerate(result.units):
                yield (
                    layer.layer, head.head, "" if head.kv_head is None else head.kv_head, " ".join(map(str, unit.token_indices)), unit.text,
                    words[i], int(unit.special),
                    _csv_number(head.scores, i), _csv_number(head.scaled_scores, i), _csv_number(head.weights, i),
                    *((_csv_number(head.value_norms, i), _csv_number(head.output_norms, i)) if norms else ()),
                )


def _words_text(tok: Tokenization, unit: Unit) -> str:
    """The text of the words a unit's tokens overlap (a token such as Gemma's 坐在 overlaps two)."""
    overlapped = [w for t in unit.token_indices for w in tok.words_of(tok.tokens[t])]
    return tok.text[overlapped[0].start : overlapped[-1].end] if overlapped else ""


def _csv_number(values: np.ndarray | None, i: int) -> str:
    if values is None or np.isnan(values[i]):
        return ""
    return str(np.float32(values[i]))

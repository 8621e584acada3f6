"""One text after one forward pass, kept so that the explorer's key presses only re-read it.

`trace_text` runs the forward pass once and keeps, per layer, what the views need: q, k, v
(after RoPE), the head outputs and, for rotary models, q and k before RoPE. Score rows are
computed on demand (`LayerTrace.rows`) by the very functions the commands use, so every number
the explorer shows equals `attn inspect --json`'s. Memory: no seq×seq map is kept, only
O(layers·seq·hidden) — except after the first rollout, which keeps each layer's mean map.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..errors import InputError
from ..loading.model import Model
from ..loading.tokenizer import Tokenization, tokenize
from ..models import LayerTrace
from .contrib import ContribResult, contributions
from .heads import HeadsResult, heads_traced
from .inspect import inspect_tokens
from .options import InspectOptions
from .query import Query, resolve_query
from .result import InspectResult
from .rollout import RolloutResult, cross_mean_maps, cross_rollout_from_maps, mean_maps, rollout_from_maps
from .seq2seq import pair

_KEPT = 64  # InspectResults kept (each holds one layer's rows for one query: O(heads·seq))


class TracedText:
    """`model`'s forward pass over `tokenization`, one slimmed `LayerTrace` per layer. An
    encoder–decoder's (`trace_pair`): `kind` "encoder", "decoder" or "cross"; for the last two
    `traces` are the decoder's layers (each with its `cross`), `decoder` the decoder's input,
    where the query is, and `tokenization` the keys (the decoder's input, or the source)."""

    def __init__(
        self, model: Model, tokenization: Tokenization, traces: tuple[LayerTrace, ...], kind: str | None = None, decoder: Tokenization | None = None
    ) -> None:
        self.model, self.tokenization, self.traces = model, tokenization, traces
        self.kind, self.decoder = kind, decoder
        self.spec = model.spec.seq2seq.decoder if decoder is not None else model.spec  # the stack shown: its layers and heads
        self._maps: list[np.ndarray] | None = None
        self._cross_maps: list[np.ndarray] | None = None
        self._heads: dict[tuple[int, ...], HeadsResult] = {}
        self._results: dict[InspectOptions, InspectResult] = {}
        self._contrib: dict[tuple[int, ...], ContribResult] = {}

    @property
    def queries(self) -> Tokenization:
        """The tokenization the query is a token of."""
        return self.tokenization if self.decoder is None else self.decoder

    def shown_traces(self) -> tuple[LayerTrace, ...]:
        """The traces of the attention shown: for cross-attention each decoder layer's `cross`."""
        return tuple(t.cross for t in self.traces) if self.kind == "cross" else self.traces

    def resolve(self, query: str | None = None, query_index: int | None = None) -> Query:
        return resolve_query(self.queries, query, query_index)

    def inspect(self, query: str | None = None, query_index: int | None = None, **options) -> InspectResult:
        """What `attn inspect TEXT --query … --json` computes, for the same options (those of
        `InspectOptions`). The last `_KEPT` results are kept: going back to a view is a
        dictionary look-up."""
        key = InspectOptions(query=query, query_index=query_index, **options)
        if key not in self._results:
            if len(self._results) >= _KEPT:
                self._results.pop(next(iter(self._results)))
            self._results[key] = inspect_tokens(self.model, self.tokenization, key, self.shown_traces(), self.kind, self.decoder)
        return self._results[key]

    def heads(self, query: str | None = None, query_index: int | None = None) -> HeadsResult:
        """The model view (`attn heads`, metric "top") for the query; cached per query."""
        key = self.resolve(query, query_index).token_indices
        if key not in self._heads:
            self._heads[key] = heads_traced(
                self.model, self.tokenization, self.shown_traces(), query, query_index, attention=self.kind, decoder=self.decoder, spec=self.spec
            )
        return self._heads[key]

    def rollout(self, query: str | None = None, query_index: int | None = None, level: str = "token", top_k: int = 5) -> RolloutResult:
        """`attn rollout` for the query. The first call computes and keeps each layer's mean map
        over heads, (seq, seq) float32 per layer; later calls are vector–matrix chains."""
        q = self.resolve(query, query_index)
        if self.kind == "cross":  # through the decoder's layers onto the source
            if self._cross_maps is None:
                self._maps, self._cross_maps = cross_mean_maps(self.traces)
            return cross_rollout_from_maps(self.model, self.tokenization, self.decoder, self._maps, self._cross_maps, q, level=level, top_k=top_k)
        if self._maps is None:
            self._maps = mean_maps(self.traces)
        return rollout_from_maps(
            self.model, self.tokenization, self._maps, q, level=level, top_k=top_k, attention=self.kind, decoder=self.decoder, spec=self.spec
        )

    def contributions(self, query: str | None = None, query_index: int | None = None) -> ContribResult:
        """`attn contrib --rollout` (ALTI) for the query: every layer's row and the rollout; cached
        per query. It runs its own passes (ALTI needs each layer's input and head writes)."""
        if self.decoder is not None:
            raise InputError(
                "contributions are the encoder's here: ALTI is not written for a decoder's self- or cross-attention",
                "press k for the encoder's attention, then c",
            )
        key = self.resolve(query, query_index).token_indices
        if key not in self._contrib:
            self._contrib[key] = contributions(self.model, self.tokenization.text, query, query_index, "alti", "all", rollout=True)
        return self._contrib[key]

    def nbytes(self) -> int:
        """Bytes held by the kept arrays (and the rollout maps, once computed)."""
        arrays = [a for t in self.traces for a in (t.q, t.k, t.v, t.head_output, t.q_pre_rope, t.k_pre_rope) if a is not None]
        maps = (self._maps or []) + (self._cross_maps or [])
        arrays += [t.cross.k for t in self.traces if t.cross is not None] + [t.cross.v for t in self.traces if t.cross is not None]
        return sum(a.nbytes for a in arrays) + sum(m.nbytes for m in maps)


def trace_text(model: Model, text: str, truncate: bool = False) -> TracedText:
    """Tokenize `text` (an error if empty or too long, unless `truncate`) and run the forward
    pass once, keeping every layer's trace without its hidden state (no view reads it)."""
    return trace_tokens(model, tokenize(model.tokenizer, text, max_tokens=model.spec.max_positions, truncate=truncate))


def trace_tokens(model: Model, tok: Tokenization) -> TracedText:
    """`trace_text` of a text already tokenized (a prompt and what a decoder wrote)."""
    kind = "encoder" if model.has_cross_attention else None  # an encoder–decoder without a target: its encoder
    return TracedText(model, tok, tuple(replace(t, hidden=None) for t in model.trace(tok.ids)), kind)


def trace_pair(model: Model, source: str, target: str, truncate: bool = False) -> dict[str, TracedText]:
    """An encoder–decoder's three kinds of attention of a source and a target (teacher-forced,
    `compute.seq2seq`), each a `TracedText`, from one encoder pass and one decoder pass; the
    decoder and cross kinds share the decoder's traces. The encoder's pass is the one the
    decoder's cross-attention reads (`Model.memory_of` its last layer): it runs once."""
    p = pair(model, source, target, truncate)
    encoder, last = [], None
    for last in model.trace(p.source.ids):
        encoder.append(replace(last, hidden=None))  # only the last layer's hidden state is read, and only here
    decoder = tuple(replace(t, hidden=None) for t in model.trace_decoder(p.decoder.ids, model.memory_of(last)))
    return {
        "encoder": TracedText(model, p.source, tuple(encoder), "encoder"),
        "decoder": TracedText(model, p.decoder, decoder, "decoder", p.decoder),
        "cross": TracedText(model, p.source, decoder, "cross", p.decoder),
    }

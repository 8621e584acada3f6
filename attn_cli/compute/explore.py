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

from ..loading.model import Model
from ..loading.tokenizer import Tokenization, tokenize
from ..models import LayerTrace
from .contrib import ContribResult, contributions
from .heads import HeadsResult, heads_traced
from .inspect import inspect_tokens
from .options import InspectOptions
from .query import Query, resolve_query
from .result import InspectResult
from .rollout import RolloutResult, mean_maps, rollout_from_maps

_KEPT = 64  # InspectResults kept (each holds one layer's rows for one query: O(heads·seq))


class TracedText:
    """`model`'s forward pass over `tokenization`, one slimmed `LayerTrace` per layer."""

    def __init__(self, model: Model, tokenization: Tokenization, traces: tuple[LayerTrace, ...]) -> None:
        self.model, self.tokenization, self.traces = model, tokenization, traces
        self._maps: list[np.ndarray] | None = None
        self._heads: dict[tuple[int, ...], HeadsResult] = {}
        self._results: dict[InspectOptions, InspectResult] = {}
        self._contrib: dict[tuple[int, ...], ContribResult] = {}

    def resolve(self, query: str | None = None, query_index: int | None = None) -> Query:
        return resolve_query(self.tokenization, query, query_index)

    def inspect(self, query: str | None = None, query_index: int | None = None, **options) -> InspectResult:
        """What `attn inspect TEXT --query … --json` computes, for the same options (those of
        `InspectOptions`). The last `_KEPT` results are kept: going back to a view is a
        dictionary look-up."""
        key = InspectOptions(query=query, query_index=query_index, **options)
        if key not in self._results:
            if len(self._results) >= _KEPT:
                self._results.pop(next(iter(self._results)))
            self._results[key] = inspect_tokens(self.model, self.tokenization, key, self.traces)
        return self._results[key]

    def heads(self, query: str | None = None, query_index: int | None = None) -> HeadsResult:
        """The model view (`attn heads`, metric "top") for the query; cached per query."""
        key = self.resolve(query, query_index).token_indices
        if key not in self._heads:
            self._heads[key] = heads_traced(self.model, self.tokenization, self.traces, query, query_index)
        return self._heads[key]

    def rollout(self, query: str | None = None, query_index: int | None = None, level: str = "token", top_k: int = 5) -> RolloutResult:
        """`attn rollout` for the query. The first call computes and keeps each layer's mean map
        over heads, (seq, seq) float32 per layer; later calls are vector–matrix chains."""
        if self._maps is None:
            self._maps = mean_maps(self.traces)
        return rollout_from_maps(self.model, self.tokenization, self._maps, self.resolve(query, query_index), level=level, top_k=top_k)

    def contributions(self, query: str | None = None, query_index: int | None = None) -> ContribResult:
        """`attn contrib --rollout` (ALTI) for the query: every layer's row and the rollout; cached
        per query. It runs its own passes (ALTI needs each layer's input and head writes)."""
        key = self.resolve(query, query_index).token_indices
        if key not in self._contrib:
            self._contrib[key] = contributions(self.model, self.tokenization.text, query, query_index, "alti", "all", rollout=True)
        return self._contrib[key]

    def nbytes(self) -> int:
        """Bytes held by the kept arrays (and the rollout maps, once computed)."""
        arrays = [a for t in self.traces for a in (t.q, t.k, t.v, t.head_output, t.q_pre_rope, t.k_pre_rope) if a is not None]
        return sum(a.nbytes for a in arrays) + sum(m.nbytes for m in self._maps or [])


def trace_text(model: Model, text: str, truncate: bool = False) -> TracedText:
    """Tokenize `text` (an error if empty or too long, unless `truncate`) and run the forward
    pass once, keeping every layer's trace without its hidden state (no view reads it)."""
    return trace_tokens(model, tokenize(model.tokenizer, text, max_tokens=model.spec.max_positions, truncate=truncate))


def trace_tokens(model: Model, tok: Tokenization) -> TracedText:
    """`trace_text` of a text already tokenized (a prompt and what a decoder wrote)."""
    return TracedText(model, tok, tuple(replace(t, hidden=None) for t in model.trace(tok.ids)))

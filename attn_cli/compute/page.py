"""What the interactive page (`attn plot -o page.html`) shows: one forward pass, kept whole.

The page lets the reader pick any layer, head and query token, so it needs every row of every
head, not only the query's: `PageResult` is the `InspectResult` of the chosen query (every layer
and head, with its steps: the exact numbers the steps panel shows) plus the weight maps of the
whole text, from the same traces (`TracedText`), so the numbers of both agree with
`attn inspect --json`.
"""

from __future__ import annotations

import numpy as np

from ..loading.model import Model
from ..records import frozen
from .explore import TracedText, trace_pair, trace_text, trace_tokens
from .result import InspectResult
from .seq2seq import check_kind

MAX_PAGE_TOKENS = 256  # every row of every head: 70 MB of float32 for SmolLM2 at 256 tokens, a 4 MB page


@frozen
class PageResult:
    """inspect: the query's `InspectResult` (layer "all", head "all", with steps, token level).
    weights: (layers, heads, seq, seq) float32, every query row of every head (rows sum to 1);
    None for a text longer than `MAX_PAGE_TOKENS`, whose page holds the query's rows only (and
    no steps). visible: (layers, seq, seq) bool, where a query may look (decoders, sliding
    windows), or None when every query sees every key. query: the page's first query token (the
    first token of a word of several)."""

    inspect: InspectResult
    weights: np.ndarray | None
    visible: np.ndarray | None
    query: int
    written: tuple[tuple[int, str, float], ...] | None = None  # `generate --html`: each written token's (position, text, log-probability)

    def __repr__(self) -> str:
        r = self.inspect
        rows = "" if self.weights is not None else ", rows: the query's only"
        return f"PageResult(model={r.model.name!r}, query={r.query.text!r}, layers={len(r.layers)}, heads={r.model.heads}, tokens={len(r.tokens)}{rows})"


def page(
    model: Model, text: str, query: str | None = None, query_index: int | None = None, truncate: bool = False,
    target: str | None = None, attention: str | None = None,
) -> PageResult:
    """One forward pass over `text`, kept for the page: every row of every head up to
    `MAX_PAGE_TOKENS` tokens (seq² weights per head), the query's rows only beyond. An
    encoder–decoder's `target` (teacher-forced) and `attention` (`compute.seq2seq`): the page of
    its encoder, its decoder's self-attention, or cross-attention (the target on the left, the
    source on the right)."""
    kind = check_kind(model, target, attention)
    if kind in ("decoder", "cross"):
        return _kept(trace_pair(model, text, target, truncate)[kind], query, query_index)
    return _kept(trace_text(model, text, truncate=truncate), query, query_index)


def written_page(model: Model, result) -> PageResult:
    """The page of what `generate` wrote (a `GenerateResult`): the prompt and every written
    token in one pass (the KV cache's numbers are the full pass's), its query the position that
    chose the first written token, and each step's token kept for the page's slider."""
    traced = trace_tokens(model, result.tokenization)
    kept = _kept(traced, None, result.prompt_tokens - 1)
    return PageResult(kept.inspect, kept.weights, kept.visible, kept.query, tuple((s.position, s.text, s.logprob) for s in result.steps))


def _kept(traced: TracedText, query: str | None, query_index: int | None) -> PageResult:
    seq = len(traced.queries.tokens)  # the rows; the keys are `traced.tokenization`'s (the source's, for cross-attention)
    first = traced.resolve(query, query_index).token_indices[0]
    if max(seq, len(traced.tokenization.tokens)) > MAX_PAGE_TOKENS:  # the query's rows (not its steps: the keys alone would be layers·kv_heads·seq·d)
        return PageResult(traced.inspect(query_index=first, layer="all", head="all"), None, None, first)
    result = traced.inspect(query_index=first, layer="all", head="all", steps=True)
    maps = [trace.rows()[2] for trace in traced.shown_traces()]  # each (heads, seq, keys)
    seen = [trace.visible(np.arange(seq)) for trace in traced.shown_traces()]
    keys = maps[0].shape[-1]
    visible = None if all(v is None for v in seen) else np.stack([np.ones((seq, keys), bool) if v is None else v for v in seen])
    return PageResult(result, np.stack(maps).astype(np.float32), visible, first)

"""`routes`: the information-flow routes of a decoder's prediction (Ferrando & Voita 2024), the
graph of facebookresearch/llm-transparency-tool (`routes/contributions.py`, `routes/graph.py`),
built from the top down and streamed (docs/contributions.md states the definitions).

Each layer l has, per position t, two sums: the attention's, a_t = x_t + Σ_h Σ_j α_tj^h·v_j^h·W_O^h
+ biases (x_t the layer's input; `resid_mid`), and the feed-forward's, y_t = a_t + FFN(a_t)
(`resid_post`); a family that norms a branch's write before the residual sum has it linearised,
and a parallel layer one sum y_t = x_t + A_t + F_t (`routes_sums` states how). A part p of a sum
s has the proximity max(‖s‖₁ - ‖s - p‖₁, 1e-5) (plain L1), divided by the sum of the
proximities of all the parts of s:

- attention: one part per key position j and head h, α_tj^h·(v_j^h - b_V^h)·W_O^h (without
  b_V; a key the query cannot see is a part of 0: its proximity 1e-5 counts in the sum, as in
  the tool, but it is no edge), and the residual x_t;
- feed-forward: its output FFN(a_t) and the residual a_t;
- a parallel layer's output: the heads' parts, the residual x_t and the feed-forward's F_t.

Then the threshold: every share at or below it is dropped, each position's remaining shares
divided by their sum (per head, before the heads are summed; the tool's feed-forward sums over
every position instead, contrary to its docstring: here per position). An edge is in the graph
when its weight passes the threshold; the routes are the edges reachable from the last layer's
output at `--at`, found layer by layer from the top: only the rows reached are computed, one
query row and one head at a time, never a positions × positions × heads × hidden array.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError, ModelError
from ..loading.model import Model
from ..loading.tokenizer import Tokenization, tokenize
from ..models import Interventions, Resume
from ..records import frozen
from .inspect import model_info
from .query import Query, resolve_query
from .result import ModelInfo, document_header, floats, query_json
from .routes_sums import WIRING, LayerSums, layer_sums, value_vectors

FLOOR = 1e-5  # the tool's EPS: the least proximity of a part
KINDS = ("attention", "ffn", "residual")


@frozen
class RouteEdge:
    """One edge of the graph. `layer`'s nodes, per position: its input (the layer below's output,
    or the token embedding at layer 0), the attention's sum a, the feed-forward and the output y.
    kind attention: from position `source`'s input to `target`'s a (`heads`: the share through
    each head, summing to `weight`); residual into "attention": t's input to t's a; residual
    into "ffn": t's a to t's y; ffn: t's a through the feed-forward to t's y. In a parallel
    layer (GPT-NeoX: y = x + A + F) every edge is `into` "output": from the input straight to y."""

    layer: int
    source: int
    target: int
    kind: str
    weight: float
    heads: np.ndarray | None = None
    into: str | None = None

    def to_json(self) -> dict:
        out = {"layer": self.layer, "from": self.source, "to": self.target, "kind": self.kind, "weight": floats(np.float32(self.weight))}
        if self.into is not None:
            out["into"] = self.into
        if self.heads is not None:
            out["heads"] = floats(self.heads.astype(np.float32))
        return out


@frozen
class RoutesResult:
    """The routes to the prediction at `position` (the text's tokens after it are not read):
    `edges`, layer by layer from the top, each layer's by target position."""

    model: ModelInfo
    tokenization: Tokenization
    query: Query
    position: int
    threshold: float
    edges: tuple[RouteEdge, ...]

    def sources(self) -> np.ndarray:
        """(position + 1,): each input token's share of the routes: 1 at the prediction, passed
        down the edges, multiplied by each edge's weight and summed where routes meet (the
        rollout of the routes graph); a token's share is what reaches its embedding."""
        out = np.zeros(self.position + 1)
        out[self.position] = 1.0  # the top layer's output at the prediction
        for layer in reversed(range(self.model.layers)):
            edges = [e for e in self.edges if e.layer == layer]
            mid = np.zeros_like(out)  # what reaches each position's attention sum
            below = np.zeros_like(out)  # what reaches each position's layer input
            for e in edges:
                if e.into == "output":  # a parallel layer: from the input straight into the output
                    below[e.source] += out[e.target] * e.weight
                elif e.kind == "ffn" or e.into == "ffn":
                    mid[e.target] += out[e.target] * e.weight
            for e in edges:
                if e.into == "attention" or (e.kind == "attention" and e.into is None):
                    below[e.source] += mid[e.target] * e.weight
            out = below
        return out

    def to_json(self) -> dict:
        return {
            **document_header(self.model, self.tokenization), "query": query_json(self.query), "position": self.position,
            "threshold": self.threshold, "edges": [e.to_json() for e in self.edges],
        }


def routes(model: Model, text: str, at: int | None = None, threshold: float = 0.04) -> RoutesResult:
    """The information-flow routes to the prediction at position `at` (default: the last token;
    negative counts from the end), edges with weight above `threshold` (see the module)."""
    if model.spec.model_type not in WIRING or not model.spec.causal:
        raise ModelError(
            f"routes are defined here for decoders ({', '.join(sorted(WIRING))}), not {model.spec.model_type}",
            "use a decoder of those families, e.g. -m smollm2",
        )
    if not 0.0 <= threshold < 1.0:
        raise InputError(f"a threshold of {threshold} is not valid", "give --threshold from 0 (every edge) up to, not including, 1")
    tok = tokenize(model.tokenizer, text, max_tokens=model.spec.max_positions)
    q = resolve_query(tok, None, -1 if at is None else at)
    position = q.token_indices[-1]
    edges = route_edges(model, np.asarray(tok.ids[: position + 1]), position, threshold)
    return RoutesResult(model_info(model), tok, q, position, float(threshold), tuple(edges))


def layer_inputs(model: Model, ids: np.ndarray) -> list[np.ndarray]:
    """Each layer's input (seq, hidden) and, last, the model's output: what the top-down pass
    resumes from. Only these are kept of the plain pass (layers + 1 arrays of seq × hidden)."""
    out = []
    for trace in model.trace(ids, interventions=Interventions(capture={"residual"})):
        out.append(trace.residual)
        last = trace.hidden
    return [*out, last]


def route_edges(model: Model, ids: np.ndarray, position: int, threshold: float) -> list[RouteEdge]:
    """The edges reachable from the last layer's output at `position`, from the top layer down."""
    s = model.spec
    inputs = layer_inputs(model, ids)
    reached = {position}  # positions whose layer output the routes reach
    edges: list[RouteEdge] = []
    for layer in reversed(range(s.layers)):
        trace = rerun_layer(model, ids, layer, inputs[layer])
        sums = layer_sums(model, trace, inputs[layer], inputs[layer + 1])
        step = _parallel_edges if sums.parallel else _sequential_edges
        layer_edges, reached = step(model, trace, sums, sorted(reached), threshold)
        edges.extend(sorted(layer_edges, key=lambda e: (e.target, KINDS.index(e.kind), e.into or "", e.source)))
        if not reached:
            break
    return edges


def _sequential_edges(model: Model, trace, sums: LayerSums, reached: list[int], threshold: float) -> tuple[list[RouteEdge], set[int]]:
    """A layer x → mid → y: the feed-forward's sum at each reached position, then the attention's
    sum where the routes go on. -> (its edges, the positions of its input they reach)."""
    layer, layer_edges, attended = trace.layer, [], set()
    for t in reached:
        ffn, resid = (float(c) for c in thresholded(proximities(sums.post[t], np.stack([sums.ffn[t], sums.mid[t]])), threshold))
        if ffn > threshold:
            layer_edges.append(RouteEdge(layer, t, t, "ffn", ffn))
        if resid > threshold:
            layer_edges.append(RouteEdge(layer, t, t, "residual", resid, into="ffn"))
        if max(ffn, resid) > threshold:
            attended.add(t)
    below: set[int] = set()
    for t, heads, (resid,) in _attention_rows(model, trace, sums, sorted(attended), lambda t: (sums.x[t],), sums.mid, threshold):
        below |= _attention_edges(layer_edges, layer, t, heads, None, threshold)
        if resid > threshold:
            layer_edges.append(RouteEdge(layer, t, t, "residual", resid, into="attention"))
            below.add(t)
    return layer_edges, below


def _parallel_edges(model: Model, trace, sums: LayerSums, reached: list[int], threshold: float) -> tuple[list[RouteEdge], set[int]]:
    """A parallel layer, y = x + A + F: one sum per reached position, of the residual x, each
    head's part and the feed-forward's F, every edge from the layer's input `into` its output."""
    layer, layer_edges, below = trace.layer, [], set()
    for t, heads, (resid, ffn) in _attention_rows(model, trace, sums, reached, lambda t: (sums.x[t], sums.ffn[t]), sums.post, threshold):
        below |= _attention_edges(layer_edges, layer, t, heads, "output", threshold)
        for kind, share in (("ffn", ffn), ("residual", resid)):
            if share > threshold:
                layer_edges.append(RouteEdge(layer, t, t, kind, share, into="output"))
                below.add(t)
    return layer_edges, below


def _attention_rows(model: Model, trace, sums: LayerSums, rows: list[int], others, whole: np.ndarray, threshold: float):
    """Per row t: (t, its heads' shares (heads, seq), the shares of the parts `others(t)`) of the
    sum whole[t], the heads' parts scaled by the linearised norm's row scale where there is one."""
    if not rows:
        return
    vectors = value_vectors(model, trace)
    weights = trace.rows(rows)[2].astype(np.float64)  # (heads, rows, seq)
    seen = trace.visible(rows)  # (rows, seq): a key the query cannot see is a part of 0, its floor in the sum, but no edge
    for row, t in enumerate(rows):
        scale = None if sums.scale is None else sums.scale[t]
        heads, rest = attention_shares(weights[:, row], vectors, np.stack(others(t)), whole[t], threshold, scale)
        yield t, heads if seen is None else np.where(seen[row][None], heads, 0.0), rest


def _attention_edges(edges: list[RouteEdge], layer: int, t: int, heads: np.ndarray, into: str | None, threshold: float) -> set[int]:
    """The attention edges into position t from the keys (seen) whose heads' shares add up past the threshold -> their positions."""
    total = heads.sum(axis=0)
    keys = np.flatnonzero(total > threshold)
    for j in keys:
        edges.append(RouteEdge(layer, int(j), t, "attention", float(total[j]), heads=heads[:, j], into=into))
    return {int(j) for j in keys}


def rerun_layer(model: Model, ids: np.ndarray, layer: int, x: np.ndarray):
    """Layer `layer` run again alone from its input x, keeping its feed-forward's output."""
    passes = model.trace(ids, interventions=Interventions(capture={"ffn"}, resume=Resume(layer, x)))
    try:
        return next(passes)
    finally:
        passes.close()


def proximities(whole: np.ndarray, parts: np.ndarray) -> np.ndarray:
    """max(‖s‖₁ - ‖s - p‖₁, 1e-5) per part, divided by their sum: whole (hidden,), parts (n, hidden) -> (n,)."""
    c = np.maximum(np.abs(whole).sum() - np.abs(whole[None] - parts).sum(axis=-1), FLOOR)
    return c / c.sum()


def thresholded(shares: np.ndarray, threshold: float) -> np.ndarray:
    """Shares at or below the threshold set to 0, the rest divided by their sum (all below: all 0)."""
    kept = np.where(shares > threshold, shares, 0.0)
    total = kept.sum()
    return kept / total if total > 0 else kept


def attention_shares(
    weights: np.ndarray, vectors: np.ndarray, others: np.ndarray, whole: np.ndarray, threshold: float, scale: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One query row's sum: weights (heads, seq) its α, vectors (heads, seq, hidden) the heads'
    value vectors (times `scale` (hidden,), the linearised norm's, where given), others (n,
    hidden) its other parts (the residual; in a parallel layer also the feed-forward), whole
    (hidden,) the sum. -> (heads, seq) the thresholded share of each head and key, (n,) the
    others'. One head at a time: a (seq, hidden) temporary, never (heads, seq, hidden)."""
    norm = np.abs(whole).sum()
    c = np.empty(weights.shape)
    for h in range(weights.shape[0]):
        part = weights[h][:, None] * vectors[h]
        c[h] = norm - np.abs(whole[None] - (part if scale is None else part * scale)).sum(axis=-1)
    rest = np.maximum(norm - np.abs(whole[None] - others).sum(axis=-1), FLOOR)
    c = np.maximum(c, FLOOR)
    shares = thresholded(np.append(c.ravel(), rest) / (c.sum() + rest.sum()), threshold)
    return shares[: c.size].reshape(c.shape), shares[c.size :]

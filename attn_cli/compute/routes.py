"""`routes`: the information-flow routes of a decoder's prediction (Ferrando & Voita 2024), the
graph of facebookresearch/llm-transparency-tool (`routes/contributions.py`, `routes/graph.py`),
built from the top down and streamed (docs/contributions.md states the definitions).

Each layer l has, per position t, two sums: the attention's, a_t = x_t + Σ_h Σ_j α_tj^h·v_j^h·W_O^h
+ biases (x_t the layer's input; `resid_mid`), and the feed-forward's, y_t = a_t + FFN(a_t)
(`resid_post`). A part p of a sum s has the proximity max(‖s‖₁ - ‖s - p‖₁, 1e-5) (plain L1),
divided by the sum of the proximities of all the parts of s:

- attention: one part per key position j and head h, α_tj^h·(v_j^h - b_V^h)·W_O^h (without
  b_V; a key the query cannot see is a part of 0: its proximity 1e-5 counts in the sum, as in
  the tool, but it is no edge), and the residual x_t;
- feed-forward: its output FFN(a_t) and the residual a_t.

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
from ..loading.model import Model, Weights
from ..loading.tokenizer import Tokenization, tokenize
from ..models import Interventions, Resume
from ..records import frozen
from .contrib import head_vectors
from .inspect import model_info
from .query import Query, resolve_query
from .result import ModelInfo, document_header, floats, query_json

FLOOR = 1e-5  # the tool's EPS: the least proximity of a part
KINDS = ("attention", "ffn", "residual")


def _no_bias(w: Weights, layer: int, hidden: int) -> np.ndarray | None:
    return None


def _gpt2_bias(w: Weights, layer: int, hidden: int) -> np.ndarray | None:
    return w[f"h.{layer}.attn.c_attn.bias"][2 * hidden :]  # the fused q, k, v bias: v is the last third


def _llama_bias(w: Weights, layer: int, hidden: int) -> np.ndarray | None:
    name = f"layers.{layer}.self_attn.v_proj.bias"
    return w[name] if name in w else None


# The pre-LN decoders whose layer is x + attention, then + FFN, with each head's write linear in
# the values: the families routes cover, and where each keeps b_V ((kv_heads·head_dim,) or None).
VALUE_BIAS = {"gpt2": _gpt2_bias, "llama": _llama_bias, "mistral": _llama_bias, "qwen2": _llama_bias, "qwen3": _llama_bias}


@frozen
class RouteEdge:
    """One edge of the graph. `layer`'s nodes, per position: its input (the layer below's output,
    or the token embedding at layer 0), the attention's sum a, the feed-forward and the output y.
    kind attention: from position `source`'s input to `target`'s a (`heads`: the share through
    each head, summing to `weight`); residual into "attention": t's input to t's a; residual
    into "ffn": t's a to t's y; ffn: t's a through the feed-forward to t's y."""

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
            for e in edges:
                if e.kind == "ffn" or e.into == "ffn":
                    mid[e.target] += out[e.target] * e.weight
            out = np.zeros_like(out)
            for e in edges:
                if e.kind == "attention" or e.into == "attention":
                    out[e.source] += mid[e.target] * e.weight
        return out

    def to_json(self) -> dict:
        return {
            **document_header(self.model, self.tokenization), "query": query_json(self.query), "position": self.position,
            "threshold": self.threshold, "edges": [e.to_json() for e in self.edges],
        }


def routes(model: Model, text: str, at: int | None = None, threshold: float = 0.04) -> RoutesResult:
    """The information-flow routes to the prediction at position `at` (default: the last token;
    negative counts from the end), edges with weight above `threshold` (see the module)."""
    if model.spec.model_type not in VALUE_BIAS or not model.spec.causal:
        raise ModelError(
            f"routes are defined here for pre-LN decoders (gpt2, llama, mistral, qwen2, qwen3), not {model.spec.model_type}",
            "use a decoder of those families, e.g. -m smollm2",
        )
    if not 0.0 <= threshold < 1.0:
        raise InputError(f"a threshold of {threshold}", "give --threshold from 0 (every edge) up to, not including, 1")
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
        trace = _layer(model, ids, layer, inputs[layer])
        post = inputs[layer + 1].astype(np.float64)
        mid = post - trace.ffn.astype(np.float64)  # the attention's sum, a_t: y_t less the feed-forward's output
        x = inputs[layer].astype(np.float64)
        layer_edges, attended = [], set()
        for t in sorted(reached):
            ffn, resid = (float(c) for c in thresholded(proximities(post[t], np.stack([trace.ffn[t].astype(np.float64), mid[t]])), threshold))
            if ffn > threshold:
                layer_edges.append(RouteEdge(layer, t, t, "ffn", ffn))
            if resid > threshold:
                layer_edges.append(RouteEdge(layer, t, t, "residual", resid, into="ffn"))
            if max(ffn, resid) > threshold:
                attended.add(t)
        if attended:
            vectors = value_vectors(model, trace, layer)
            rows = sorted(attended)
            weights = trace.rows(rows)[2].astype(np.float64)  # (heads, rows, seq)
            seen = trace.visible(rows)  # (rows, seq): a key the query cannot see is a part of 0, its floor in the sum, but no edge
            below: set[int] = set()
            for row, t in enumerate(rows):
                heads, resid = attention_shares(weights[:, row], vectors, x[t], mid[t], threshold)
                total = heads.sum(axis=0)
                for j in np.flatnonzero((total > threshold) & seen[row]):
                    layer_edges.append(RouteEdge(layer, int(j), t, "attention", float(total[j]), heads=heads[:, j]))
                    below.add(int(j))
                if resid > threshold:
                    layer_edges.append(RouteEdge(layer, t, t, "residual", resid, into="attention"))
                    below.add(t)
            reached = below
        else:
            reached = set()
        edges.extend(sorted(layer_edges, key=lambda e: (e.target, KINDS.index(e.kind), e.into or "", e.source)))
        if not reached:
            break
    return edges


def _layer(model: Model, ids: np.ndarray, layer: int, x: np.ndarray):
    """Layer `layer` run again alone from its input x, keeping its feed-forward's output."""
    passes = model.trace(ids, interventions=Interventions(capture={"ffn"}, resume=Resume(layer, x)))
    try:
        return next(passes)
    finally:
        passes.close()


def value_vectors(model: Model, trace, layer: int) -> np.ndarray:
    """(v_j^h - b_V^h)·W_O^h for every head and position: (heads, seq, hidden), float64."""
    s = model.spec
    w_o = model.arch.output_projection(model.weights, layer)
    f = head_vectors(trace, w_o)
    bias = VALUE_BIAS[s.model_type](model.weights, layer, s.hidden)
    if bias is not None:  # b_V·W_O^h, one vector per head, taken off every position
        b = bias.astype(np.float64).reshape(s.kv_heads, s.head_dim)[[trace.kv_head(h) for h in range(s.heads)]]
        f -= np.einsum("hd,hdo->ho", b, w_o.astype(np.float64).reshape(s.heads, s.head_dim, -1))[:, None, :]
    return f


def proximities(whole: np.ndarray, parts: np.ndarray) -> np.ndarray:
    """max(‖s‖₁ - ‖s - p‖₁, 1e-5) per part, divided by their sum: whole (hidden,), parts (n, hidden) -> (n,)."""
    c = np.maximum(np.abs(whole).sum() - np.abs(whole[None] - parts).sum(axis=-1), FLOOR)
    return c / c.sum()


def thresholded(shares: np.ndarray, threshold: float) -> np.ndarray:
    """Shares at or below the threshold set to 0, the rest divided by their sum (all below: all 0)."""
    kept = np.where(shares > threshold, shares, 0.0)
    total = kept.sum()
    return kept / total if total > 0 else kept


def attention_shares(weights: np.ndarray, vectors: np.ndarray, x: np.ndarray, whole: np.ndarray, threshold: float) -> tuple[np.ndarray, float]:
    """One query row's attention graph: weights (heads, seq) its α, vectors (heads, seq, hidden)
    the heads' value vectors, x (hidden,) its residual, whole (hidden,) the attention's sum.
    -> (heads, seq) the thresholded share of each head and key, and the residual's share. One
    head at a time: a (seq, hidden) temporary, never (heads, seq, hidden)."""
    norm = np.abs(whole).sum()
    c = np.empty(weights.shape)
    for h in range(weights.shape[0]):
        c[h] = norm - np.abs(whole[None] - weights[h][:, None] * vectors[h]).sum(axis=-1)
    resid = norm - np.abs(whole - x).sum()
    c = np.maximum(c, FLOOR)
    resid = max(resid, FLOOR)
    total = c.sum() + resid
    shares = thresholded(np.append(c.ravel(), resid) / total, threshold)
    return shares[:-1].reshape(c.shape), float(shares[-1])

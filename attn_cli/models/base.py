"""The shared steps of every architecture's forward pass: the weights it reads (`Weights`),
what each layer reports (`LayerTrace`), self-attention through the KV cache and the
interventions (`attend`), the layers a pass runs (`layer_plan`) and the LM head (`logits`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Protocol

import numpy as np

from ..errors import ModelError
from ..maths.attention import attention_output
from ..maths.ops import adjusted_scores, apply_rope, attention_rows, causal_visibility, merge_heads, split_heads, two_sided_visibility
from ..records import frozen
from .hyper import Hyper
from .interventions import Interventions
from .runtime import row_local


class Weights(Protocol):
    """A model's tensors by architecture name (no checkpoint prefix), as float32 arrays.

    The forward pass reads weights only through this; `loading` provides it for each file format.
    """

    def __contains__(self, name: str) -> bool: ...

    def __getitem__(self, name: str) -> np.ndarray: ...

    def rows(self, name: str, indices: np.ndarray) -> np.ndarray:
        """`weights[name][indices]`, reading only those rows: (len(indices), ...)."""
        ...

    def shape(self, name: str) -> tuple[int, ...]:
        """The tensor's shape, read from the file's header (nothing de-quantized)."""
        ...

    def row_range(self, name: str, start: int, stop: int) -> np.ndarray:
        """`weights[name][start:stop]`, reading only those rows (a block of the LM head)."""
        ...

    def release(self) -> None:
        """Let go of what was read so far (called between layers)."""
        ...


@frozen
class Routing:
    """Where a mixture-of-experts feed-forward sent each token of a layer (Mixtral, Qwen3-MoE).

    experts: int (seq, k), the k experts the router chose for each token, most probable first;
    weights: float32 (seq, k), each one's share of the token's feed-forward output (the
    router's softmax probabilities, renormalised over the k where the model does so).
    """

    experts: np.ndarray
    weights: np.ndarray


@frozen
class LayerTrace:
    """What one layer's self-attention computed, for every head and every token.

    q: (heads, seq, head_dim) and k, v: (kv_heads, seq, head_dim), as they enter Q·Kᵀ and P·V
    (after RoPE for rotary models, whose pre-rotation q and k are `q_pre_rope`, `k_pre_rope`).
    head_output: (heads, seq, head_dim), weights·V before the output projection.
    hidden: (seq, hidden), the layer's output (the next layer's input).
    Both are None in the last trace of a pass cut short (`layer_plan`): nothing reads them.
    Scores and weights are not stored: `rows()` computes the rows asked for, so that a long
    text never holds a seq×seq map per layer. `interventions`: what the pass changed (its
    knockouts show in `rows()`); `residual`, `ffn`, `head_writes`: what it captured (see
    `interventions`), else None. `routing`: a mixture-of-experts layer's choice of experts for
    each of the q rows' tokens (see `Routing`), None for a dense feed-forward.
    """

    layer: int
    spec: Hyper
    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    head_output: np.ndarray | None
    hidden: np.ndarray | None
    q_pre_rope: np.ndarray | None = None
    k_pre_rope: np.ndarray | None = None
    start: int = 0  # position of q's first row: with a KV cache, q holds the new tokens, k and v the kept positions
    interventions: Interventions | None = None
    residual: np.ndarray | None = None  # (seq, hidden): the layer's input
    ffn: np.ndarray | None = None  # (seq, hidden): the feed-forward's output, before its residual sum
    head_writes: np.ndarray | None = None  # (heads, seq, hidden): each head's output after W_O, no bias
    # (heads, seq, keys): a term the architecture adds to the scaled scores (relative position
    # buckets: T5, MPNet), None for most; with Gemma 2's soft-cap (`spec.attn_softcap`), the
    # softmax reads neither the scaled scores nor Q·Kᵀ but `adjusted` (see `steps`).
    score_bias: np.ndarray | None = None
    routing: Routing | None = None  # a mixture-of-experts layer: each token's experts and their weights
    # An encoder–decoder's decoder layer: its cross-attention, q the target rows, k and v the
    # source's (a trace with `over_source`, whose keys are source positions from 0).
    cross: LayerTrace | None = None
    over_source: bool = False

    @property
    def key_start(self) -> int:
        """The position of k's (and v's) first column: 0, but for a sliding layer with a KV
        cache, which keeps only its window's keys (`models.cache.KVCache`). The keys run up to
        the last query's position, so it is start + q rows - keys. Cross-attention's keys are
        the source's, from 0."""
        if self.over_source:
            return 0
        return self.start + self.q.shape[1] - self.k.shape[1]

    @property
    def key_positions(self) -> np.ndarray:
        """int (keys,): the position of each column of k and v (and of `rows()`)."""
        return np.arange(self.key_start, self.key_start + self.k.shape[1])

    def kv_head(self, head: int) -> int:
        return head // (self.spec.heads // self.spec.kv_heads)

    def visible(self, rows) -> np.ndarray | None:
        """bool (rows, keys), or (heads, rows, keys) under a knockout: True where the query rows
        may look (key column j being position key_start + j); None for an encoder's plain pass (everywhere) outside a sliding window (an
        encoder's is two-sided: ModernBERT's local layers)."""
        keys, window = self.k.shape[1], self.spec.window(self.layer)
        if self.spec.causal:
            seen = causal_visibility(rows, keys, window, self.start - self.key_start)
        else:
            seen = None if window is None else two_sided_visibility(rows, keys, window)
        blocked = None
        if self.interventions is not None:
            positions = np.arange(self.start, self.start + self.q.shape[1])[rows]
            blocked = self.interventions.blocked(self.layer, self.spec.heads, np.atleast_1d(positions), keys, self.key_start)
        if blocked is None:
            return seen
        return ~blocked if seen is None else seen & ~blocked

    def rows(self, rows=slice(None)):
        """(scores, scaled_scores, weights) of query `rows` (a slice or index list), each
        (heads, rows, seq). Masked entries of the scores are as computed; their weights are 0."""
        k = _per_query_head(self.k, self.spec)
        bias = None if self.score_bias is None else self.score_bias[:, rows]
        return attention_rows(self.q[:, rows], k, self.spec.scale, self.visible(rows), bias, self.spec.attn_softcap)

    @property
    def adjusts(self) -> str | None:
        """What comes between the scaled scores and the softmax, if anything: "bias" (an added
        position term), "cap" (a soft-cap) or "bias+cap"."""
        parts = [name for name, present in (("bias", self.score_bias is not None), ("cap", bool(self.spec.attn_softcap))) if present]
        return "+".join(parts) or None

    def adjusted(self, scaled_scores: np.ndarray, rows=slice(None)) -> np.ndarray:
        """The scores the softmax reads, from `rows()`' scaled scores of the same rows: (heads, rows, seq)."""
        bias = None if self.score_bias is None else self.score_bias[:, rows]
        return adjusted_scores(scaled_scores, bias, self.spec.attn_softcap)


def _per_query_head(x: np.ndarray, spec: Hyper) -> np.ndarray:
    """(kv_heads, seq, d) -> (heads, seq, d): each kv head serves heads // kv_heads query heads."""
    group = spec.heads // spec.kv_heads
    return x if group == 1 else np.repeat(x, group, axis=0)


def attend(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, spec: Hyper, layer: int,
    cache=None, interventions: Interventions | None = None, run=None, segments=None, bias: np.ndarray | None = None,
    over_source: bool = False,
):
    """Self-attention of the new positions, through the KV cache and the interventions.

    q: (heads, n, d), k and v: (kv_heads, n, d) of the n new tokens. Without a cache they are
    the whole sequence; with one (`models.cache.KVCache`) they are appended to the layer's past
    keys and values and the queries attend over all of them (a sliding layer's: the ones it
    kept, from position start + n - keys: `LayerTrace.key_start`). `segments`: [(first, stop), ...]
    when the rows are several texts packed one after another (`attn batch`): each text attends
    to itself alone, exactly as if it ran by itself. `bias` (heads, n, seq): a term added to the
    scaled scores (relative positions; see `LayerTrace.score_bias`). `over_source`: an
    encoder–decoder's cross-attention, k and v the source's (keys from position 0, no cache, a
    spec that is not causal), so that its knockouts and edits apply as self-attention's do. Returns (head_output (heads, n, d), keys
    (kv_heads, seq, d), values (kv_heads, seq, d) as they entered P·V, start: the position of
    the first query). `run`: see `runtime.rows_runner`.
    """
    start = 0
    if cache is not None:
        start = cache.lengths[layer]
        k, v = cache.append(layer, k, v)
    key_start = 0 if over_source else start + q.shape[1] - k.shape[1]  # a sliding layer's cache keeps only its window
    changes = interventions is not None and interventions.changes(layer)
    if changes or bias is not None or spec.attn_softcap:
        if changes:
            v = interventions.values(layer, v, key_start)
        out = _attention_textbook(q, k, v, spec, layer, start, interventions, bias, over_source)
        return (interventions.head_outputs(layer, out) if changes else out), k, v, start
    if segments is None:
        # The mask reads only position differences: query row r against key column j is position start + r against key_start + j.
        return attention_output(q, k, v, spec.scale, spec.causal, spec.window(layer), start - key_start, run=run), k, v, start
    out = np.empty((q.shape[0], q.shape[1], v.shape[-1]), dtype=np.float32)

    def part(first: int, stop: int) -> None:
        for a, b in segments[first:stop]:
            out[:, a:b] = attention_output(q[:, a:b], k[:, a:b], v[:, a:b], spec.scale, spec.causal, spec.window(layer))

    if run is None:
        part(0, len(segments))
    else:
        run(part, len(segments), 1)
    return out, k, v, start


def _attention_textbook(q, k, v, spec: Hyper, layer: int, start: int, interventions: Interventions | None, bias, over_source=False) -> np.ndarray:
    """weights·V the textbook way (`LayerTrace.rows`): one (heads, rows, keys) map, with the
    knockouts' edges blocked and the score bias or cap applied, which the fast blocked path
    (`maths.attention`) does not know."""
    trace = LayerTrace(layer, spec, q, k, v, None, None, start=start, interventions=interventions, score_bias=bias, over_source=over_source)
    weights = trace.rows()[2]
    return (weights @ _per_query_head(v, spec)).astype(np.float32)


def kept(interventions: Interventions | None, what: str, x: np.ndarray) -> np.ndarray | None:
    """A copy of x when the interventions capture `what`, else None."""
    return x.copy() if interventions is not None and interventions.captures(what) else None


def head_writes(head_output: np.ndarray, w_o: np.ndarray) -> np.ndarray:
    """Each head's output after the output projection: head_output (heads, seq, d) and W_O
    (heads·d, hidden) in x·W layout -> (heads, seq, hidden), summing (with W_O's bias) to the
    attention's output."""
    heads, _, d = head_output.shape
    return np.einsum("hsd,hdo->hso", head_output, w_o.reshape(heads, d, -1)).astype(np.float32)


def rope_parts(q: np.ndarray, k: np.ndarray, v: np.ndarray, cos, sin) -> tuple[np.ndarray, ...]:
    """What a rotary layer's row-local projection hands on: q (rows, heads, d), k (rows,
    kv_heads, d), v (rows, kv_heads·d or kv_heads, d) -> q, k, v, q after RoPE, k after RoPE,
    each flat, (rows, n·d)."""
    flat = lambda a: a.reshape(len(q), -1)  # noqa: E731
    return flat(q), flat(k), flat(v), flat(apply_rope(q, cos, sin)), flat(apply_rope(k, cos, sin))


def fused_rope_parts(fused: np.ndarray, s: Hyper, cos, sin, per_head: bool = False) -> tuple[np.ndarray, ...]:
    """`rope_parts` of one fused projection (rows, 3·heads·d), its outputs q | k | v
    (ModernBERT, nomic-bert) or, `per_head`, [q|k|v] head after head (GPT-NeoX)."""
    shape = (len(fused), s.heads, 3, s.head_dim) if per_head else (len(fused), 3, s.heads, s.head_dim)
    fused = fused.reshape(shape)
    q, k, v = (np.ascontiguousarray(fused[:, :, i] if per_head else fused[:, i]) for i in range(3))
    return rope_parts(q, k, v, cos, sin)


def rotary_layer(
    x, s: Hyper, layer: int, cos, sin, project, tail, run, cache=None, whole: bool = True, iv=None, segments=None, tail_whole: bool = False
) -> LayerTrace:
    """The frame every rotary layer shares: `project(x, cos, sin)` -> `rope_parts`, then (unless
    not `whole`, with no cache: q, k and v only, `layer_plan`) attention through the cache and
    the interventions (`attend`), then `tail(merged (rows, heads·d), x (rows, hidden))` ->
    (output (rows, hidden), the trace's `ffn`: `kept(iv, "ffn", feed-forward output)`). Both
    steps are row-local (`runtime.row_local`), split over `run`; the tail on one thread where
    `tail_whole` (a mixture of experts routes every row at once)."""
    widths = (s.heads * s.head_dim,) + (s.kv_heads * s.head_dim,) * 2 + (s.heads * s.head_dim, s.kv_heads * s.head_dim)
    parts = row_local(run, project, widths, x, cos, sin)
    q, k, v, q_rope, k_rope = (split_heads(a, n) for a, n in zip(parts, (s.heads, s.kv_heads, s.kv_heads, s.heads, s.kv_heads), strict=True))
    if not whole and cache is None:
        return LayerTrace(layer, s, q_rope, k_rope, v, None, None, q_pre_rope=q, k_pre_rope=k)
    head_output, k_all, v_all, start = attend(q_rope, k_rope, v, s, layer, cache, iv, run, segments)
    ffn = []

    def step(merged: np.ndarray, x: np.ndarray) -> np.ndarray:
        out, captured = tail(merged, x)
        ffn.append(captured)
        return out

    out = row_local(None if tail_whole else run, step, s.hidden, merge_heads(head_output), x)
    k_pre = k if cache is None else None  # the cache keeps keys after RoPE, as they enter Q·Kᵀ: k_pre_rope covers the new tokens only
    return LayerTrace(layer, s, q_rope, k_all, v_all, head_output, out, q_pre_rope=q, k_pre_rope=k_pre, start=start, interventions=iv, ffn=ffn[0])


def segments_of(texts: list[np.ndarray]) -> list[tuple[int, int]]:
    """[(first, stop), ...]: where each text's rows lie once the texts are packed in order."""
    bounds = np.cumsum([0] + [len(t) for t in texts])
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def split_trace(trace: LayerTrace, segments, score_biases=None) -> list[LayerTrace]:
    """The trace of packed texts (see `attend`) as one trace per text: views, no copies.
    `score_biases`: each text's own `LayerTrace.score_bias` (MPNet's relative positions)."""
    def cut(x, axis):
        return None if x is None else [x[:, a:b] if axis else x[a:b] for a, b in segments]

    q, k, v, o = (cut(getattr(trace, n), 1) for n in ("q", "k", "v", "head_output"))
    qp, kp = cut(trace.q_pre_rope, 1), cut(trace.k_pre_rope, 1)
    hidden = cut(trace.hidden, 0)
    return [
        LayerTrace(
            trace.layer, trace.spec, q[i], k[i], v[i], o[i], hidden[i], None if qp is None else qp[i], None if kp is None else kp[i],
            score_bias=None if score_biases is None else score_biases[i],
        )
        for i in range(len(segments))
    ]


def encoder_passes(encoder):
    """`forward` and `forward_packed` of an encoder around its `encoder(w, s, input_ids,
    positions, segments=None, through=None, iv=None)`: each text's positions from
    `s.position_offset`. Packed (`attn batch`), the texts run as one matrix for everything that
    works token by token, each text's attention over itself alone (`attend`'s segments); each
    layer yields one trace per text, the numbers of `forward` of that text alone."""

    def forward(w: Weights, s: Hyper, input_ids: np.ndarray, cache=None, through=None, interventions=None) -> Iterator[LayerTrace]:
        return encoder(w, s, input_ids, s.position_offset + np.arange(len(input_ids)), through=through, iv=interventions)

    def forward_packed(w: Weights, s: Hyper, texts: list[np.ndarray]) -> Iterator[list[LayerTrace]]:
        segments = segments_of(texts)
        positions = np.concatenate([s.position_offset + np.arange(len(t)) for t in texts])
        for trace in encoder(w, s, np.concatenate(texts), positions, segments):
            yield split_trace(trace, segments)

    return forward, forward_packed


def layer_plan(layers: int, through: int | None = None) -> Iterator[tuple[int, bool]]:
    """(layer, whole) for each layer a forward pass runs: every layer, whole; or, given
    `through`, layers 0 … through, the last of them only as far as its attention maps need:
    q, k and v. Its head outputs (every row), output projection and feed-forward would feed
    only the layers after it, so they are not computed (a sixth of a 6-layer model's work).
    A `through` past the last layer is the last layer."""
    last = layers - 1 if through is None else min(through, layers - 1)
    return ((layer, through is None or layer < last) for layer in range(last + 1))


def run_layers(x: np.ndarray, layers: int, through: int | None, block, interventions: Interventions | None) -> Iterator[LayerTrace]:
    """The layer loop every architecture shares: `block(x, layer, whole)` -> LayerTrace for each
    layer of `layer_plan(layers, through)`, each layer's output the next one's input x (seq,
    hidden). With the interventions capturing `residual`, each trace keeps its input; with a
    `resume`, the pass starts at that layer from the residual given."""
    keep = interventions is not None and interventions.captures("residual")
    resume = None if interventions is None else interventions.resume
    for layer, whole in layer_plan(layers, through):
        if resume is not None and layer <= resume.layer:
            if layer < resume.layer:
                continue
            x = resume.residual
        trace = block(x, layer, whole)
        if interventions is not None and interventions.changes(layer):
            # What the pass changed shows on the trace, however the block built it: a layer cut
            # short (`layer_plan`) never reaches `attend`, and a block may report its own v.
            trace = replace(trace, interventions=interventions, v=interventions.values(layer, trace.v, trace.key_start))
        if keep:
            trace = replace(trace, residual=x)  # x is never written to after the block reads it
        x = trace.hidden
        yield trace


HEAD_BLOCK_BYTES = 32 << 20  # of float32 per block of the LM head's rows


@frozen
class Head:
    """The LM head (vocab, hidden), read a block of rows at a time: a 1.5B model's tied
    embeddings are 0.9 GB as float32, an 8B's untied head 2.1 GB. The blocks depend on the
    shape alone, so the logits are the same numbers whatever the weights keep."""

    weights: Weights
    name: str

    def row(self, token: int) -> np.ndarray:
        """(hidden,): the unembedding of one token."""
        return self.weights.rows(self.name, np.asarray([token]))[0]

    def blocks(self) -> Iterator[np.ndarray]:
        """The rows in order, (rows, hidden) at a time."""
        vocab, hidden = self.weights.shape(self.name)
        step = max(1, HEAD_BLOCK_BYTES // (4 * hidden))
        for start in range(0, vocab, step):
            yield self.weights.row_range(self.name, start, min(start + step, vocab))


def lm_head(w: Weights, spec: Hyper) -> Head:
    """The LM head (vocab, hidden): `spec.lm_head`, or lm_head.weight when a tied checkpoint
    lacks the embeddings under that name."""
    for name in dict.fromkeys((spec.lm_head, "lm_head.weight")):
        if name is not None and name in w:
            return Head(w, name)
    raise ModelError(
        "the checkpoint has no LM head (lm_head.weight) and does not tie it to the embeddings: it is a base model",
        "use the model's *ForCausalLM checkpoint (the one that generates text)",
    )


def logits(normed: np.ndarray, head: Head, spec: Hyper) -> np.ndarray:
    """Next-token logits (seq, vocab) from the final-normed hidden state (seq, hidden) and the
    LM head (vocab, hidden), a block of its rows at a time; then Gemma's soft-cap
    cap·tanh(logits/cap) where the model has one."""
    out = np.concatenate([normed @ block.T for block in head.blocks()], axis=-1)
    cap = spec.final_softcap
    if cap:
        out = np.tanh(out / np.float32(cap)) * np.float32(cap)
    return out.astype(np.float32)

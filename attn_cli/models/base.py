"""What every architecture provides: its shape (`ModelSpec`) and, per layer, a `LayerTrace`."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Protocol

import numpy as np

from ..errors import ModelError
from ..maths.attention import attention_output
from ..maths.ops import attention_rows, causal_visibility
from ..records import frozen


class Weights(Protocol):
    """A model's tensors by architecture name (no checkpoint prefix), as float32 arrays.

    The forward pass reads weights only through this; `loading` provides it for each file format.
    """

    def __contains__(self, name: str) -> bool: ...

    def __getitem__(self, name: str) -> np.ndarray: ...

    def rows(self, name: str, indices: np.ndarray) -> np.ndarray:
        """`weights[name][indices]`, reading only those rows: (len(indices), ...)."""
        ...

    def release(self) -> None:
        """Let go of what was read so far (called between layers)."""
        ...


_MISSING = object()
MAX_COUNT = 1 << 20  # layers, heads, widths: far beyond any real model, far below a typo's 1e13
MAX_POSITIONS = 1 << 24


class ConfigValues:
    """config.json read once, each value checked as an architecture's `spec()` reads it: a wrong
    type or range is a ModelError naming the key, the value and what was expected, at load,
    never a TypeError mid-forward. A key set to null counts as absent (configs write
    "num_key_value_heads": null for "the default")."""

    def __init__(self, config: dict) -> None:
        self.config = config

    def _get(self, key: str, default):
        value = self.config.get(key)
        if value is None:
            if default is _MISSING:
                raise ModelError(f"config.json has no {key}", f"add {key} to config.json (or re-download it)")
            return default
        return value

    def _wrong(self, key: str, value, expected: str) -> ModelError:
        try:
            shown = json.dumps(value)
        except (RecursionError, TypeError, ValueError):
            shown = f"a {type(value).__name__}"
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        return ModelError(f"config.json: {key} is {shown}, expected {expected}", f"set {key} to {expected} in config.json (or re-download it)")

    def integer(self, key: str, default=_MISSING, low: int = 1, high: int = MAX_COUNT) -> int:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self._wrong(key, value, f"an integer from {low:,} to {high:,}")
        return value

    def number(self, key: str, default=_MISSING, positive: bool = True) -> float:
        value = self._get(key, default)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and (value > 0 or not positive)
        if not ok:
            raise self._wrong(key, value, "a positive number" if positive else "a number")
        return float(value)

    def boolean(self, key: str, default=_MISSING) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise self._wrong(key, value, "true or false")
        return value

    def string(self, key: str, default=_MISSING) -> str:
        value = self._get(key, default)
        if not isinstance(value, str):
            raise self._wrong(key, value, "a string")
        return value

    def choice(self, key: str, choices, default=_MISSING, what: str = "") -> str:
        value = self.string(key, default)
        if value not in choices:
            raise ModelError(
                f"config.json: {what or key} {value!r} is not supported (supported: {', '.join(choices)})",
                "use a model with one of those",
            )
        return value

    def mapping(self, key: str) -> dict:
        value = self._get(key, {})
        if not isinstance(value, dict):
            raise self._wrong(key, value, "an object")
        return value


@frozen
class ModelSpec:
    """The shape of a model, read from its config.json, checked whole when made: every count
    positive, the heads splitting the width, the key/value heads dividing the heads."""

    model_type: str
    layers: int
    heads: int
    kv_heads: int  # < heads under grouped-query attention: query head h reads kv head h // (heads // kv_heads)
    head_dim: int
    hidden: int
    max_positions: int
    causal: bool
    sliding_window: int | None = None  # keys further back than this are masked (Mistral)
    rotary: bool = False  # q and k are rotated (RoPE) before Q·Kᵀ
    # Per layer, the window of a sliding layer or None for a global one (Gemma 3); None when
    # every layer has `sliding_window`.
    layer_windows: tuple[int | None, ...] | None = None
    query_scale: float | None = None  # the factor on Q·Kᵀ when it is not 1/√head_dim (Gemma)

    def __post_init__(self) -> None:
        for name in ("layers", "heads", "kv_heads", "head_dim", "hidden", "max_positions"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ModelError(f"config.json gives the model {value!r} {name.replace('_', ' ')}", "correct config.json: it must be a positive integer")
        if self.heads % self.kv_heads:
            raise ModelError(
                f"config.json: {self.kv_heads} key/value heads do not divide {self.heads} attention heads",
                "correct num_key_value_heads: it must divide num_attention_heads",
            )
        if self.sliding_window is not None and (isinstance(self.sliding_window, bool) or not isinstance(self.sliding_window, int) or self.sliding_window < 1):
            raise ModelError(f"config.json: sliding_window is {self.sliding_window!r}, expected a positive integer or null", "correct sliding_window")

    @property
    def scale(self) -> float:
        return self.query_scale if self.query_scale is not None else float(self.head_dim) ** -0.5

    def window(self, layer: int | None = None) -> int | None:
        """The sliding window of `layer` (keys further back are masked), None if it sees all."""
        if self.layer_windows is not None and layer is not None:
            return self.layer_windows[layer]
        return self.sliding_window


def head_dim(c: ConfigValues, hidden: int, heads: int, key: str | None = "head_dim") -> int:
    """The config's `key` (head_dim) if the architecture has one and it is set, else
    hidden / heads, which must then divide evenly."""
    if key is not None and c.config.get(key) is not None:
        return c.integer(key)
    if hidden % heads:
        raise ModelError(
            f"config.json: the width {hidden} does not split into {heads} heads", "correct the hidden size or the number of heads: heads must divide it"
        )
    return hidden // heads


@frozen
class LayerTrace:
    """What one layer's self-attention computed, for every head and every token.

    q: (heads, seq, head_dim) and k, v: (kv_heads, seq, head_dim), as they enter Q·Kᵀ
    (after RoPE for rotary models, whose pre-rotation q and k are `q_pre_rope`, `k_pre_rope`).
    head_output: (heads, seq, head_dim), weights·V before the output projection.
    hidden: (seq, hidden), the layer's output (the next layer's input).
    Both are None in the last trace of a pass cut short (`layer_plan`): nothing reads them.
    Scores and weights are not stored: `rows()` computes the rows asked for, so that a long
    text never holds a seq×seq map per layer.
    """

    layer: int
    spec: ModelSpec
    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    head_output: np.ndarray | None
    hidden: np.ndarray | None
    q_pre_rope: np.ndarray | None = None
    k_pre_rope: np.ndarray | None = None
    start: int = 0  # position of q's first row: with a KV cache, q holds the new tokens, k and v every position

    def kv_head(self, head: int) -> int:
        return head // (self.spec.heads // self.spec.kv_heads)

    def visible(self, rows) -> np.ndarray | None:
        """bool (rows, seq), True where the query rows may look; None for encoders (all)."""
        if not self.spec.causal:
            return None
        return causal_visibility(rows, self.k.shape[1], self.spec.window(self.layer), self.start)

    def rows(self, rows=slice(None)):
        """(scores, scaled_scores, weights) of query `rows` (a slice or index list), each
        (heads, rows, seq). Masked entries of the scores are as computed; their weights are 0."""
        k = _per_query_head(self.k, self.spec)
        return attention_rows(self.q[:, rows], k, self.spec.scale, self.visible(rows))


def _per_query_head(x: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """(kv_heads, seq, d) -> (heads, seq, d): each kv head serves heads // kv_heads query heads."""
    group = spec.heads // spec.kv_heads
    return x if group == 1 else np.repeat(x, group, axis=0)


def self_attention(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, spec: ModelSpec, layer: int | None = None, start: int = 0, run=None, segments=None
) -> np.ndarray:
    """The head outputs weights·V for every query: q (heads, rows, d), k and v (kv_heads, seq, d)
    -> (heads, rows, d), a cache-sized block at a time, skipping the keys a causal mask hides
    from a whole block (see `maths.attention`). `layer` picks its window. Query row r is
    position start + r (start = seq - rows with a KV cache, else 0). `run`: see `runtime.rows_runner`.
    `segments`: [(first, stop), ...] when the rows are several texts packed one after another
    (`attn batch`): each text attends to itself alone, exactly as if it ran by itself."""
    if segments is None:
        return attention_output(q, k, v, spec.scale, spec.causal, spec.window(layer), start, run=run)
    out = np.empty((q.shape[0], q.shape[1], v.shape[-1]), dtype=np.float32)

    def part(first: int, stop: int) -> None:
        for a, b in segments[first:stop]:
            out[:, a:b] = attention_output(q[:, a:b], k[:, a:b], v[:, a:b], spec.scale, spec.causal, spec.window(layer))

    if run is None:
        part(0, len(segments))
    else:
        run(part, len(segments), 1)
    return out


def segments_of(texts: list[np.ndarray]) -> list[tuple[int, int]]:
    """[(first, stop), ...]: where each text's rows lie once the texts are packed in order."""
    bounds = np.cumsum([0] + [len(t) for t in texts])
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def split_trace(trace: LayerTrace, segments) -> list[LayerTrace]:
    """The trace of packed texts (see `self_attention`) as one trace per text: views, no copies."""
    def cut(x, axis):
        return None if x is None else [x[:, a:b] if axis else x[a:b] for a, b in segments]

    q, k, v, o = (cut(getattr(trace, n), 1) for n in ("q", "k", "v", "head_output"))
    qp, kp = cut(trace.q_pre_rope, 1), cut(trace.k_pre_rope, 1)
    hidden = cut(trace.hidden, 0)
    return [
        LayerTrace(trace.layer, trace.spec, q[i], k[i], v[i], o[i], hidden[i], None if qp is None else qp[i], None if kp is None else kp[i])
        for i in range(len(segments))
    ]


def layer_plan(layers: int, through: int | None = None) -> Iterator[tuple[int, bool]]:
    """(layer, whole) for each layer a forward pass runs: every layer, whole; or, given
    `through`, layers 0 … through, the last of them only as far as its attention maps need:
    q, k and v. Its head outputs (every row), output projection and feed-forward would feed
    only the layers after it, so they are not computed (a sixth of a 6-layer model's work).
    A `through` past the last layer is the last layer."""
    last = layers - 1 if through is None else min(through, layers - 1)
    return ((layer, through is None or layer < last) for layer in range(last + 1))


def attend(q: np.ndarray, k: np.ndarray, v: np.ndarray, spec: ModelSpec, layer: int, cache=None, run=None):
    """Self-attention of the new positions, through the KV cache when there is one.

    q: (heads, n, d), k and v: (kv_heads, n, d) of the n new tokens. Without a cache they are
    the whole sequence; with one (`models.cache.KVCache`) they are appended to the layer's past
    keys and values and the queries attend over all of them. Returns (head_output (heads, n, d),
    keys (kv_heads, seq, d), values (kv_heads, seq, d), start: the position of the first query).
    """
    start = 0
    if cache is not None:
        start = cache.lengths[layer]
        k, v = cache.append(layer, k, v)
    return self_attention(q, k, v, spec, layer, start, run), k, v, start


def lm_logits(w: Weights, config: dict, normed: np.ndarray, embedding: str, tied_by_default: bool) -> np.ndarray:
    """Next-token logits (seq, vocab) from the final-normed hidden state (seq, hidden): through
    `lm_head.weight`, or the input embedding when the model ties them (config
    `tie_word_embeddings`, whose default differs by architecture); then Gemma's soft-cap
    cap·tanh(logits/cap) when `final_logit_softcapping` is set."""
    tied = config.get("tie_word_embeddings", tied_by_default)
    if tied and embedding in w:
        head = w[embedding]
    elif "lm_head.weight" in w:
        head = w["lm_head.weight"]
    else:
        raise ModelError(
            "the checkpoint has no LM head (lm_head.weight) and does not tie it to the embeddings: it is a base model",
            "use the model's *ForCausalLM checkpoint (the one that generates text)",
        )
    logits = normed @ head.T
    cap = config.get("final_logit_softcapping")
    if cap:
        logits = np.tanh(logits / np.float32(cap)) * np.float32(cap)
    return logits.astype(np.float32)

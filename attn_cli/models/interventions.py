"""Places to intervene in the forward pass: one declarative value, `Interventions`.

The shared attention step (`base.attend`) and the layer loop (`base.run_layers`) apply it;
no architecture's file knows about it beyond `base.kept`. What it can do:

- `Knockout`: block attention edges (Geva et al., EMNLP 2023): the query positions may not look
  at the key positions, in some layers and heads (score -inf before the softmax). A query whose
  every visible key is blocked attends to nothing (its weights and head output are 0).
- `HeadEdit`: change one head's output, weights·V before the output projection (TransformerLens'
  `hook_z`), at every position: zero it, replace it by its mean over the positions, scale it,
  or replace it by a given array (head ablation).
- `ValueZeroing`: zero the value vectors of some positions in one layer, every head (Mohebbi
  et al., EACL 2023), before P·V; the trace's `v` shows them zeroed.
- `resume`: start the pass at a layer, from its input as an earlier pass captured it: the
  layers below an edit are unchanged by it, so a sweep of edits (knockout, ablation) recomputes
  only from the first layer it changes.
- `capture`: keep what each layer writes: `residual` (the layer's input, (seq, hidden)),
  `heads` (each head's output after W_O, (heads, seq, hidden), no bias) and `ffn` (the
  feed-forward's output before its residual sum, (seq, hidden)), on the `LayerTrace`.

Positions are absolute (with a KV cache, the cached positions count). Without interventions
(None, or an empty value) the forward pass is bit for bit the plain one.
"""

from __future__ import annotations

from dataclasses import field

import numpy as np

from ..errors import InputError
from ..records import frozen

HEAD_MODES = ("zero", "mean", "scale", "replace")
CAPTURES = ("residual", "heads", "ffn")


def _positions(values, what: str) -> tuple[int, ...]:
    out = tuple(int(v) for v in values)
    if any(v < 0 for v in out):
        raise InputError(f"{what} must be positions (0 or more), not {out}", f"give {what} as token positions from 0")
    return out


@frozen
class Knockout:
    """Query positions `queries` may not look at key positions `keys` in `layers`, in `heads`
    (None: every head)."""

    layers: tuple[int, ...]
    queries: tuple[int, ...]
    keys: tuple[int, ...]
    heads: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", _positions(self.layers, "a knockout's layers"))
        object.__setattr__(self, "queries", _positions(self.queries, "a knockout's queries"))
        object.__setattr__(self, "keys", _positions(self.keys, "a knockout's keys"))
        if self.heads is not None:
            object.__setattr__(self, "heads", _positions(self.heads, "a knockout's heads"))


@frozen
class HeadEdit:
    """Head `head` of layer `layer`, its output at every position: `mode` zero, mean (over the
    positions of the pass), scale (× factor) or replace (by `value`, (seq, head_dim))."""

    layer: int
    head: int
    mode: str = "zero"
    factor: float = 0.0
    value: np.ndarray | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.mode not in HEAD_MODES:
            raise InputError(f"a head edit's mode is {self.mode!r}", f"use one of: {', '.join(HEAD_MODES)}")
        if (self.mode == "replace") != (self.value is not None):
            raise InputError("a head edit replaces a head's output with `value`, and only mode replace takes one", "give mode='replace' and a value together")


@frozen
class ValueZeroing:
    """The value vectors of `positions` in layer `layer`, every head, set to 0 before P·V."""

    layer: int
    positions: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "positions", _positions(self.positions, "value zeroing's positions"))


@frozen
class Resume:
    """Run from `layer` on, with `residual` (seq, hidden) as its input; the layers before it are
    neither run nor reported."""

    layer: int
    residual: np.ndarray = field(compare=False)


@frozen
class Interventions:
    """What to change in (and keep from) a forward pass; see the module's docstring."""

    knockouts: tuple[Knockout, ...] = ()
    head_edits: tuple[HeadEdit, ...] = ()
    value_zeroing: tuple[ValueZeroing, ...] = ()
    capture: frozenset[str] = frozenset()
    resume: Resume | None = None

    def __post_init__(self) -> None:
        unknown = set(self.capture) - set(CAPTURES)
        if unknown:
            raise InputError(f"cannot capture {', '.join(sorted(unknown))}", f"capture any of: {', '.join(CAPTURES)}")
        object.__setattr__(self, "capture", frozenset(self.capture))

    def captures(self, what: str) -> bool:
        return what in self.capture

    def changes(self, layer: int) -> bool:
        """Whether the pass differs from the plain one in `layer`."""
        return any(layer in k.layers for k in self.knockouts) or any(e.layer == layer for e in (*self.head_edits, *self.value_zeroing))

    def blocked(self, layer: int, heads: int, positions: np.ndarray, keys: int, key_start: int = 0) -> np.ndarray | None:
        """bool (heads, len(positions), keys): True where a knockout blocks the query at that
        position from that key (key column j: position key_start + j) in `layer`; None where
        nothing is blocked."""
        found = [k for k in self.knockouts if layer in k.layers]
        if not found:
            return None
        out = np.zeros((heads, len(positions), keys), dtype=bool)
        for k in found:
            rows = np.isin(positions, k.queries)
            cols = np.isin(np.arange(key_start, key_start + keys), k.keys)
            chosen = slice(None) if k.heads is None else [h for h in k.heads if h < heads]
            out[chosen] |= rows[:, None] & cols[None, :]
        return out

    def values(self, layer: int, v: np.ndarray, key_start: int = 0) -> np.ndarray:
        """v (kv_heads, keys, head_dim), its first key at position key_start, with the zeroed
        positions of `layer` at 0 (a copy), or v itself."""
        zeroed = [p - key_start for z in self.value_zeroing if z.layer == layer for p in z.positions if 0 <= p - key_start < v.shape[1]]
        if not zeroed:
            return v
        v = v.copy()
        v[:, zeroed] = 0.0
        return v

    def head_outputs(self, layer: int, out: np.ndarray) -> np.ndarray:
        """The head outputs (heads, rows, head_dim) of `layer` after its head edits (in place)."""
        for e in self.head_edits:
            if e.layer != layer:
                continue
            if not 0 <= e.head < out.shape[0]:
                raise InputError(f"a head edit names head {e.head} of a model with {out.shape[0]} heads", f"use a head from 0 to {out.shape[0] - 1}")
            if e.mode == "zero":
                out[e.head] = 0.0
            elif e.mode == "mean":
                out[e.head] = out[e.head].mean(axis=0, keepdims=True)
            elif e.mode == "scale":
                out[e.head] *= np.float32(e.factor)
            else:
                value = np.asarray(e.value, dtype=np.float32)
                if value.shape != out[e.head].shape:
                    shape = out[e.head].shape
                    raise InputError(f"a head edit's value has shape {value.shape}, where head {e.head}'s output is {shape}", "give a (seq, head_dim) array")
                out[e.head] = value
        return out


NONE = Interventions()

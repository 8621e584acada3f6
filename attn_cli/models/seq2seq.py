"""The shared steps of encoder–decoder models (T5, BART, Marian): what a family declares for its
decoder (`Seq2Seq`), cross-attention through the shared `attend`, and the decoder's input.

The encoder is the family's `Architecture.forward`: one `LayerTrace` per encoder layer, as any
encoder's. The decoder (`Seq2Seq.decode`) yields one `LayerTrace` per decoder layer for its causal
self-attention over the target, whose `cross` is the layer's cross-attention: a `LayerTrace` whose
q rows are the target's and whose k, v are the source's (`over_source`), computed once from the
encoder's output (`Seq2Seq.memory`) and read by every step of a generation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace

import numpy as np

from ..errors import ModelError
from ..maths.gelu import gelu
from ..maths.ops import gelu_tanh, silu
from ..records import frozen
from .base import LayerTrace, attend
from .hyper import Hyper
from .interventions import Interventions

Memory = tuple[tuple[np.ndarray, np.ndarray], ...]
"""Per decoder layer, the cross-attention's keys and values of the source: (heads, n, head_dim) each."""


@frozen
class Seq2Seq:
    """An encoder–decoder family's decoder side.

    decode(weights, hyper, ids, memory, cache=None, through=None, interventions=None): one
    `LayerTrace` per decoder layer (its `cross` the cross-attention); `ids` the decoder's input
    (`decoder_input`), or with a `KVCache` of `hyper.seq2seq.decoder` the ids after the cached ones.
    memory(weights, hyper, encoded): the `Memory` of the encoder's output (n, hidden), final-normed.
    decoder_norm(weights, hyper, hidden): the decoder's last hidden state as transformers reports it.
    logits(weights, hyper, normed): (m, vocab), the next-token logits of each target position.
    output_projections(weights, layer): the decoder layer's W_O of its self-attention and of its
    cross-attention, each in x·W layout (heads·head_dim, hidden).
    """

    decode: Callable[..., Iterator[LayerTrace]]
    memory: Callable[..., Memory]
    decoder_norm: Callable[..., np.ndarray]
    logits: Callable[..., np.ndarray]
    output_projections: Callable[..., tuple[np.ndarray, np.ndarray]]


def decoder_input(labels: np.ndarray, start: int) -> np.ndarray:
    """The decoder's input when it is taught `labels` (m,): the labels shifted right behind the
    decoder start token, the last label dropped (transformers' `shift_tokens_right`), so that
    position t is the step that writes label t. int64 (m,)."""
    return np.concatenate([[start], np.asarray(labels, dtype=np.int64)[:-1]]).astype(np.int64)


def cross_spec(s: Hyper) -> Hyper:
    """The cross-attention's `Hyper`: the decoder's counts, every source key visible."""
    return replace(s.seq2seq.decoder, causal=False)


def cross_attention(q: np.ndarray, memory: Memory, spec: Hyper, layer: int, start: int, iv: Interventions | None) -> LayerTrace:
    """Cross-attention of the target rows q (heads, m, d), the first at target position `start`,
    over the source's keys and values of `memory[layer]`, through the shared `attend` (its
    interventions apply): a `LayerTrace` whose head_output is set and hidden left None."""
    k, v = memory[layer]
    head_output, k, v, _ = attend(q, k, v, spec, layer, interventions=iv, over_source=True)
    return LayerTrace(layer, spec, q, k, v, head_output, None, start=start, interventions=iv, over_source=True)


ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "gelu": gelu, "gelu_new": gelu_tanh, "gelu_pytorch_tanh": gelu_tanh, "relu": lambda x: np.maximum(x, np.float32(0)),
    "silu": silu, "swish": silu,
}


def activation(name: str) -> Callable[[np.ndarray], np.ndarray]:
    """The feed-forward's activation by its transformers name (`ACT2FN`)."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ModelError(f"config.json: activation {name!r} is not supported (supported: {', '.join(ACTIVATIONS)})", "use a model with one of those") from None


"""Running a forward pass and checking each layer: what `loading.Model.trace` calls.

A layer whose numbers are not finite, or weights whose shapes do not fit the hyper-parameters,
are a ModelError here, so that attn never shows NaN as an attention weight and never a NumPy
shape error as a traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace

import numpy as np

from ..errors import ModelError
from .architecture import Architecture
from .base import LayerTrace, Weights, head_writes
from .hyper import Hyper
from .interventions import Interventions


def checked_forward(
    arch: Architecture, weights: Weights, spec: Hyper, input_ids: np.ndarray, where: str,
    cache=None, through: int | None = None, interventions: Interventions | None = None, release: bool = True,
) -> Iterator[LayerTrace]:
    """`arch.forward`, one checked `LayerTrace` per layer (see `Architecture`); `where` names the
    model in errors. With `release`, each layer's weight pages are let go after it (one run holds
    one layer's weights). With interventions capturing `heads`, each trace has its head writes."""
    past = 0 if cache is None else cache.length
    start = lambda: arch.forward(weights, spec, input_ids, cache, through, interventions)  # noqa: E731
    for layer in checked(start, where):
        _check_layer(layer, len(input_ids), past, where)
        if interventions is not None and interventions.captures("heads"):
            layer = replace(layer, head_writes=head_writes(layer.head_output, arch.output_projection(weights, layer.layer)))
        yield layer
        if release:
            weights.release()


def checked_decode(
    arch: Architecture, weights: Weights, spec: Hyper, input_ids: np.ndarray, memory, where: str,
    cache=None, through: int | None = None, interventions: Interventions | None = None, release: bool = True,
) -> Iterator[LayerTrace]:
    """An encoder–decoder's decoder (`arch.seq2seq.decode`), checked as `checked_forward` checks
    a pass: one `LayerTrace` per decoder layer, its `cross` the layer's cross-attention."""
    past = 0 if cache is None else cache.length
    start = lambda: arch.seq2seq.decode(weights, spec, input_ids, memory, cache, through, interventions)  # noqa: E731
    for layer in checked(start, where):
        _check_layer(layer, len(input_ids), past, where)
        if layer.cross is not None and not np.isfinite(layer.cross.q).all():
            raise _not_finite(layer.layer, where, "cross-attention q")
        yield layer
        if release:
            weights.release()


def checked_forward_packed(arch: Architecture, weights: Weights, spec: Hyper, texts: list[np.ndarray], where: str) -> Iterator[list[LayerTrace]]:
    """`arch.forward_packed` of several texts, checked as `checked_forward` checks one, layer by
    layer: per layer, one LayerTrace per text, the same numbers as `checked_forward` of the text
    alone. Nothing is kept: a reader that sums each layer holds one layer of the pack at a time."""
    for traces in checked(lambda: arch.forward_packed(weights, spec, texts), where):
        for ids, trace in zip(texts, traces, strict=True):
            _check_layer(trace, len(ids), 0, where)
        yield traces


def checked(start: Callable[[], Iterator], where: str) -> Iterator:
    """The items of the iterator `start()` makes, with NumPy's shape errors (weights that do not
    fit the config) a ModelError and non-finite numbers left to `_check_layer`, not warned about."""
    try:
        with np.errstate(all="ignore"):
            items = start()
    except ValueError as exc:
        raise _misfit(where, exc) from None
    while True:
        try:
            with np.errstate(all="ignore"):
                item = next(items)
        except StopIteration:
            return
        except ValueError as exc:  # NumPy: shapes that do not fit (a matmul, a reshape, a split)
            raise _misfit(where, exc) from None
        yield item


def _misfit(where: str, exc: Exception) -> ModelError:
    return ModelError(
        f"the weights of {where} do not fit its config.json: {exc}",
        "use the config.json that came with the weights (hidden size, heads, head_dim)",
    )


def _check_layer(layer: LayerTrace, seq: int, past: int, where: str) -> None:
    """The layer computed what its hyper-parameters say, in finite numbers: weights whose shapes
    fit NumPy but not the config (8 heads of 8 where the config says 4 of 16) would give wrong
    numbers. `seq` new tokens after `past` cached ones: k and v cover both (a sliding layer's
    cache keeps only its window: k and v cover at least the window's keys, from `key_start`)."""
    s, keys = layer.spec, past + seq
    window = s.window(layer.layer) if s.causal else None
    if window is not None and min(keys, window - 1 + seq) <= layer.k.shape[1] <= keys:
        keys = layer.k.shape[1]
    expected = {"q": (s.heads, seq, s.head_dim), "k": (s.kv_heads, keys, s.head_dim), "v": (s.kv_heads, keys, s.head_dim), "hidden": (seq, s.hidden)}
    for name, shape in expected.items():
        if getattr(layer, name) is not None and getattr(layer, name).shape != shape:  # hidden is None in a pass cut short
            raise ModelError(
                f"the weights of {where} do not fit its config.json: layer {layer.layer} computes {name} of shape "
                f"{getattr(layer, name).shape}, where the config (heads {s.heads}, key/value heads {s.kv_heads}, "
                f"head_dim {s.head_dim}, hidden {s.hidden}) makes {shape}",
                "use the config.json that came with the weights",
            )
    for name in ("q", "k", "hidden"):
        if getattr(layer, name) is not None and not np.isfinite(getattr(layer, name)).all():
            raise _not_finite(layer.layer, where, name)


def _not_finite(layer: int, where: str, name: str) -> ModelError:
    return ModelError(
        f"layer {layer} of {where} computes {name} values that are NaN or infinite: its weights hold NaN/Inf, or are too large for float32",
        "re-download or re-export the model: its weight file is corrupt",
    )

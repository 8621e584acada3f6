"""The interface every architecture declares: one `Architecture` record per family file.

A family file (bert.py, llama.py, …) defines its functions and ends with one `ARCHITECTURE =
Architecture(...)`; `models/__init__.py` maps config.json's `model_type` to it. Nothing looks
for optional functions with hasattr: what a family can do is what it declares.

- `parse(config) -> Hyper`: config.json read and checked once (see `hyper.ConfigValues`).
- `forward(weights, hyper, ids, cache=None, through=None, interventions=None)`: one
  `LayerTrace` per layer. `cache` (decoders): a `KVCache`, `ids` then the tokens after the cached
  ones; `through`: stop at that layer, computing of it only q, k and v (`base.layer_plan`);
  `interventions`: see `interventions.py`, applied by the shared `base.attend`.
- `final_norm(weights, hyper, hidden)`: the last hidden state as transformers reports it.
- `output_projection(weights, layer)`: W_O in x·W layout, (heads·head_dim, hidden).
- `logits(weights, hyper, hidden, head=None)` (decoders): next-token logits (seq, vocab);
  `head` the LM head already read (`base.lm_head`), for callers that ask for logits per layer.
- `forward_packed(weights, hyper, texts)` (encoders): several texts in one pass (`attn batch`, `attn stats`).
- `gguf`: how llama.cpp's files of this family map onto it (`GGUFLayout`), if it reads them.
- `seq2seq`: an encoder–decoder model's decoder, with cross-attention (`seq2seq.Seq2Seq`);
  `forward` is then its encoder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from ..records import frozen
from .base import LayerTrace
from .hyper import Hyper
from .seq2seq import Seq2Seq


@frozen
class GGUFLayout:
    """A family's GGUF files: their `general.architecture` names, its table of tensor names, the
    fixes llama.cpp's converter made to undo, and the family's own metadata as config.json keys.

    names: {general.architecture: the model_type it feeds}.
    tensors: {gguf name with {n} for the layer: the family's name}.
    convert(name, array, config) -> array: the tensor as transformers has it.
    config(metadata, get, config) -> dict: keys to add to the config built from the shared
    metadata; `get(key, default)` reads `<arch>.<key>`.
    """

    names: dict[str, str]  # general.architecture -> the model_type it feeds
    tensors: dict[str, str]
    convert: Callable[[str, np.ndarray, dict], np.ndarray] | None = None
    config: Callable[[dict, Callable, dict], dict] | None = None


@frozen
class Architecture:
    """One family's code, as `Model` calls it (see the module's docstring)."""

    name: str
    parse: Callable[[dict], Hyper]
    forward: Callable[..., Iterator[LayerTrace]]
    final_norm: Callable[..., np.ndarray]
    output_projection: Callable[..., np.ndarray]
    weight_prefixes: tuple[str, ...] = ()
    logits: Callable[..., np.ndarray] | None = None
    forward_packed: Callable[..., Iterator[list[LayerTrace]]] | None = None
    gguf: GGUFLayout | None = None
    seq2seq: Seq2Seq | None = None  # an encoder–decoder model: its decoder (`forward` is its encoder)

    @property
    def decodes(self) -> bool:
        """Whether it predicts the next token (`logits`): `attn generate`, `attn lens`."""
        return self.logits is not None

    @property
    def packs(self) -> bool:
        """Whether it runs several texts in one pass (`forward_packed`): encoders."""
        return self.forward_packed is not None

"""RoBERTa (`model_type: roberta`): BERT's encoder, with position ids that start after the
padding index (padding_idx + 1, i.e. 2 for the usual pad id 1) and a `roberta.` weight prefix."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import numpy as np

from ..errors import ModelError
from . import bert
from .base import ConfigValues, LayerTrace, ModelSpec, Weights

WEIGHT_PREFIXES = ("roberta.",)
final_norm = bert.final_norm
output_projection = bert.output_projection


def _first_position(config: dict) -> int:
    return ConfigValues(config).integer("pad_token_id", 1, low=0) + 1


def spec(config: dict) -> ModelSpec:
    base = bert.spec(config)
    # The first positions of the table are reserved, so fewer tokens fit than the table has rows.
    first = _first_position(config)
    if base.max_positions <= first:
        raise ModelError(
            f"config.json: max_position_embeddings is {base.max_positions}, which leaves no position after the {first} that RoBERTa reserves",
            f"set max_position_embeddings above {first} (RoBERTa models have 514)",
        )
    return replace(base, model_type="roberta", max_positions=base.max_positions - first)


def forward(w: Weights, s: ModelSpec, config: dict, input_ids: np.ndarray, through: int | None = None) -> Iterator[LayerTrace]:
    return bert.encoder(w, s, config, input_ids, _first_position(config) + np.arange(len(input_ids)), through=through)


def forward_packed(w: Weights, s: ModelSpec, config: dict, texts: list[np.ndarray]) -> Iterator[list[LayerTrace]]:
    """See `bert.forward_packed`: RoBERTa's positions start after the padding index."""
    return bert.forward_packed(w, s, config, texts, _first_position(config))

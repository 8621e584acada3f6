"""RoBERTa (`model_type: roberta`): BERT's encoder, with position ids that start after the
padding index (padding_idx + 1, i.e. 2 for the usual pad id 1) and a `roberta.` weight prefix."""

from __future__ import annotations

from dataclasses import replace

from ..errors import ModelError
from . import bert
from .architecture import Architecture
from .hyper import ConfigValues, Hyper


def parse(config: dict) -> Hyper:
    base = bert.parse(config, "roberta")
    # The first positions of the table are reserved, so fewer tokens fit than the table has rows.
    first = ConfigValues(config).integer("pad_token_id", 1, low=0) + 1
    if base.max_positions <= first:
        raise ModelError(
            f"config.json: max_position_embeddings is {base.max_positions}, which leaves no position after the {first} that RoBERTa reserves",
            f"set max_position_embeddings above {first} (RoBERTa models have 514)",
        )
    return replace(base, max_positions=base.max_positions - first, position_offset=first)


ARCHITECTURE = Architecture(
    "roberta", parse, bert.forward, bert.final_norm, bert.output_projection, ("roberta.",), forward_packed=bert.forward_packed
)

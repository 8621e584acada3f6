"""`align`: an encoder–decoder's cross-attention as a target × source table, and the word
alignment it implies (the source word each target word weighs most).

Row t is the cross-attention of the decoder position that writes label t (teacher-forced: the
decoder reads the labels shifted right, `compute.seq2seq`), so each row is named by the target
token it writes. At word level a target word's row is the mean of its tokens' rows (as a split
query's is in `inspect`) and a source word's column the sum of its tokens' (attention to a word).
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..loading.model import Model
from ..loading.tokenizer import Tokenization, Unit, units
from ..maths.analysis import to_words
from ..records import frozen
from .inspect import model_info
from .options import LEVELS, parse_head, select_layers
from .result import HeadId, ModelInfo, document_header, floats, tokens_json, units_json
from .seq2seq import check_kind, pair


@frozen
class Link:
    """One target unit aligned to the source unit its row weighs most."""

    target: int  # index into AlignResult.rows
    source: int  # index into AlignResult.columns
    weight: float


@frozen
class AlignResult:
    """weights: (rows, columns) float32, target units × source units, at `layer` and `head`
    (an index, or "mean" over the layer's heads)."""

    model: ModelInfo
    source: Tokenization
    target: Tokenization  # the labels: the tokens the decoder writes
    layer: int
    head: HeadId
    level: str
    include_special: bool
    rows: tuple[Unit, ...]
    columns: tuple[Unit, ...]
    weights: np.ndarray
    alignment: tuple[Link, ...]

    def to_json(self) -> dict:
        return {
            **document_header(self.model, self.source),
            "target": self.target.text,
            "target_tokens": tokens_json(self.target),
            "layer": self.layer,
            "head": self.head,
            "level": self.level,
            "include_special": self.include_special,
            "rows": units_json(self.rows),
            "columns": units_json(self.columns),
            "weights": floats(self.weights),
            "alignment": [
                {"target": self.rows[a.target].label, "row": a.target, "source": self.columns[a.source].label, "column": a.source,
                 "weight": floats(np.float32(a.weight))}
                for a in self.alignment
            ],
        }


def align(
    model: Model, source: str, target: str, layer: int | str = -1, head: int | str = "mean", level: str = "word",
    include_special: bool = False, truncate: bool | None = False,
) -> AlignResult:
    """The target × source cross-attention of `layer` (negative from the end), at `head` or the
    mean over heads, over tokens or words (`level`), and each target unit's argmax source unit
    (special tokens, such as </s>, left out of the alignment unless `include_special`)."""
    check_kind(model, target, "cross")
    if level not in LEVELS:
        raise InputError(f"`level={level!r}` is not valid", f"give one of {', '.join(LEVELS)}")
    decoder = model.spec.seq2seq.decoder
    (layer_index,) = select_layers(layer, decoder.layers, allow_all=False)
    head_id = parse_head(head, decoder.heads, ("mean",))
    p = pair(model, source, target, truncate)
    memory = model.memory(p.source.ids)
    for trace in model.trace_decoder(p.decoder.ids, memory):
        if trace.layer == layer_index:
            weights = trace.cross.rows()[2]  # (heads, m, n): row t writes label t
            break
    matrix = weights.mean(axis=0) if head_id == "mean" else weights[head_id]
    rows, columns = units(p.labels, level), units(p.source, level)
    by_rows = np.stack([matrix[list(u.token_indices)].mean(axis=0) for u in rows])
    table = np.stack([to_words(r.astype(np.float32), [list(u.token_indices) for u in columns]) for r in by_rows]).astype(np.float32)
    usable = np.array([include_special or not u.special for u in columns])
    if not usable.any():
        raise InputError("the source has only special tokens, so leaving them out leaves nothing to align to", "add `include_special=True`")
    links = tuple(
        Link(i, int(np.argmax(np.where(usable, table[i], -1.0))), float(np.where(usable, table[i], -1.0).max()))
        for i, u in enumerate(rows) if include_special or not u.special
    )
    return AlignResult(model_info(model, decoder), p.source, p.labels, layer_index, head_id, level, include_special, rows, columns, table, links)

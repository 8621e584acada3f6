"""`ablate`: which heads a prediction needs. Each head's output (weights·V, before the output
projection: TransformerLens' `hook_z`) is zeroed at every position, or replaced by its mean over
the text's positions, one head at a time; decoders report the change of the target token's
log-probability, encoders (no next token) the cosine distance of the query's final
representation from the plain one.

Mean ablation over a dataset (`mean_over`, as TransformerLens takes a head's mean over a batch of
texts): the head's output is replaced at every position by its mean over every position of every
text of `mean_over` (each token weighs alike), so that the ablated head says what it says on
average, not what it says on average in this text (whose own mean still carries the text).
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError, OptionError
from ..loading.model import Model, kept
from ..loading.tokenizer import Tokenization, tokenize
from ..models import HeadEdit, Interventions
from ..records import frozen
from .inspect import model_info
from .prediction import Reruns, Target, explained_position
from .query import resolve_query
from .result import ModelInfo, document_header, floats

MODES = ("zero", "mean")


@frozen
class AblateResult:
    """`changes` (layers, heads): Δ log p(target) for a decoder, the cosine distance of the
    explained position's final representation for an encoder (`measure` says which)."""

    model: ModelInfo
    tokenization: Tokenization
    position: int
    mode: str
    measure: str  # "logprob" or "cosine_distance"
    target: Target | None
    changes: np.ndarray
    mean_over: int | None = None  # mode mean: the number of texts whose mean replaced each head, None for this text's own

    def to_json(self) -> dict:
        target = None if self.target is None else {
            "id": self.target.id, "text": self.target.text, "logprob": floats(np.float32(self.target.logprob)), "chosen": self.target.chosen
        }
        return {
            **document_header(self.model, self.tokenization),
            "position": self.position, "mode": self.mode, "mean_over": self.mean_over, "measure": self.measure, "target": target,
            "layers": [{"layer": layer, "changes": floats(row)} for layer, row in enumerate(self.changes)],
        }


def cosine_distance(x: np.ndarray, y: np.ndarray) -> float:
    """1 - cos(x, y), as ½‖x/‖x‖ - y/‖y‖‖² in float64: no cancellation when the two are close
    (the textbook 1 - x·y/(‖x‖‖y‖) in float32 loses everything below ~1e-7)."""
    a, b = np.asarray(x, np.float64), np.asarray(y, np.float64)
    return float(0.5 * np.sum(np.square(a / np.linalg.norm(a) - b / np.linalg.norm(b))))


def dataset_means(model: Model, texts: list[str]) -> np.ndarray:
    """Each head's output (weights·V before W_O) averaged over every position of every text:
    (layers, heads, head_dim), float32 (summed in float64)."""
    total, count = None, 0
    for text in texts:
        tok = tokenize(model.tokenizer, text, max_tokens=model.spec.max_positions)
        outputs = np.stack([t.head_output for t in model.trace(tok.ids)])  # (layers, heads, seq, head_dim)
        sums = outputs.sum(axis=2, dtype=np.float64)
        total = sums if total is None else total + sums
        count += outputs.shape[2]
    return (total / count).astype(np.float32)


def ablate(
    model: Model, text: str, target: str | None = None, target_id: int | None = None, mode: str = "zero",
    query: str | None = None, query_index: int | None = None, mean_over: list[str] | None = None,
) -> AblateResult:
    """Each head of each layer ablated alone (see the module). `mean_over`: texts whose mean
    head outputs replace each head (mode mean only)."""
    if mode not in MODES:
        raise InputError(f"ablation mode {mode!r} is not valid", f"use one of: {', '.join(MODES)}")
    if mean_over is not None and mode != "mean":
        raise OptionError(f"`mean_over` needs `mode='mean'` (the mode is {mode!r})", "give `mode='mean'` with `mean_over`, or leave `mean_over` out")
    if mean_over is not None and not [t for t in mean_over if t.strip()]:
        raise InputError("the texts to average over are empty", "give a file with one text a line")
    tok = tokenize(model.tokenizer, text, max_tokens=model.spec.max_positions)
    decodes = model.arch.decodes
    if not decodes and (target is not None or target_id is not None):
        raise InputError(f"{model.name} is an encoder: it predicts no next token", "leave out the target (an encoder's query is measured by cosine distance)")
    # An encoder has no last, predicting position: its last token is [SEP], so it needs a query,
    # as inspect and contrib do (resolve_query's "no query given" names the words to pick).
    position = explained_position(tok, query, query_index) if decodes else resolve_query(tok, query, query_index).token_indices[-1]
    model = kept(model)  # converted once for the dataset's passes and the sweep's
    texts = None if mean_over is None else [t for t in mean_over if t.strip()]
    means = None if texts is None else dataset_means(model, texts)
    reruns = Reruns(model, tok.ids, position)
    chosen = reruns.target(target, target_id) if decodes else None
    changes = head_sweep(reruns, chosen, mode, means)
    return AblateResult(model_info(model), tok, position, mode, measure_of(model), chosen, changes, None if texts is None else len(texts))


def measure_of(model: Model) -> str:
    """What an ablation changes: a decoder's target log-probability, an encoder's final representation."""
    return "logprob" if model.arch.decodes else "cosine_distance"


def head_sweep(reruns: Reruns, chosen: Target | None, mode: str, means: np.ndarray | None = None) -> np.ndarray:
    """Each head of each layer ablated alone (`mode`; `means` (layers, heads, head_dim): a
    dataset's means, else the text's own): Δ log p(chosen) for a decoder, the cosine distance
    of the explained position's final representation for an encoder (`chosen` None). (layers, heads)."""
    spec = reruns.model.spec
    changes = np.empty((spec.layers, spec.heads), dtype=np.float32)
    seq = len(reruns.ids)
    for layer in range(spec.layers):
        for head in range(spec.heads):
            if means is None:
                edit = HeadEdit(layer, head, mode)
            else:  # the dataset's mean at every position of this pass
                edit = HeadEdit(layer, head, "replace", value=np.broadcast_to(means[layer, head], (seq, means.shape[-1])))
            out = reruns.output_with(Interventions(head_edits=(edit,)), layer)
            if chosen is not None:
                changes[layer, head] = reruns.logprobs(out)[chosen.id] - chosen.logprob
            else:
                changes[layer, head] = cosine_distance(out, reruns.output)
    return changes

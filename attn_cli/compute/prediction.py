"""What `knockout` and `ablate` share: the position a model is explained at, the token it
explains, and that position's output with part of the forward pass changed.

A change in layer l leaves layers 0 … l-1 as they were, so `Reruns` keeps the plain pass's
input to every layer and runs a changed pass from the first layer it changes
(`Interventions.resume`): a sweep over L layers costs about L/2 passes per source, not L.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..errors import InputError
from ..loading.model import Model, kept
from ..loading.tokenizer import Tokenization, decoded_piece
from ..maths.sampling import log_softmax
from ..models import Interventions, Resume
from ..models.base import lm_head, logits
from ..records import frozen
from .query import resolve_query


@frozen
class Target:
    """The token explained: its id, its text, and its log-probability in the plain pass."""

    id: int
    text: str
    logprob: float
    chosen: str  # "top-1" (the model's own prediction) or "given"


def explained_position(tok: Tokenization, query: str | None, query_index: int | None) -> int:
    """The token position explained: the query's last token, else the text's last (the one that
    predicts the next token)."""
    q = resolve_query(tok, query, query_index if query is not None or query_index is not None else -1)
    return q.token_indices[-1]


class Reruns:
    """The forward pass of `ids` (seq,) once, then again with changes, each from the first layer
    it changes. Weights are kept between passes (`loading.model.kept`)."""

    def __init__(self, model: Model, ids: np.ndarray, position: int) -> None:
        self.model, self.position = kept(model), position
        self.ids = np.asarray(ids[: position + 1] if model.spec.causal else ids)  # a decoder's later tokens cannot change it
        traces = list(self.model.trace(self.ids, interventions=Interventions(capture={"residual"})))
        self.inputs = [t.residual for t in traces]  # (seq, hidden) entering each layer
        self.output = self._output(traces[-1].hidden)
        self._head = lm_head(self.model.weights, self.model.spec) if self.model.arch.decodes else None

    def _output(self, hidden: np.ndarray) -> np.ndarray:
        """The explained position's final representation (hidden,), as transformers reports it."""
        return self.model.arch.final_norm(self.model.weights, self.model.spec, hidden[self.position : self.position + 1])[0]

    def output_with(self, interventions: Interventions, first_layer: int) -> np.ndarray:
        """The explained position's final representation with `interventions`, whose first change
        is in `first_layer`."""
        resumed = replace(interventions, resume=Resume(first_layer, self.inputs[first_layer]))
        *_, last = self.model.trace(self.ids, interventions=resumed)
        return self._output(last.hidden)

    def logprobs(self, output: np.ndarray | None = None) -> np.ndarray:
        """log p of the next token (vocab,) from a final representation (the plain one by default)."""
        out = self.output if output is None else output
        return log_softmax(logits(out[None], self._head, self.model.spec)[0])  # `out` is already final-normed: the head (and soft-cap) only

    def target(self, target: str | None, target_id: int | None) -> Target:
        """The token to explain: `target_id`, or `target` (the text of exactly one token, its
        leading space included), else the model's top prediction."""
        logprobs = self.logprobs()
        tokenizer = self.model.tokenizer
        if target_id is not None:
            if not 0 <= target_id < len(logprobs):
                raise InputError(f"target id {target_id} is not in the vocabulary (0 … {len(logprobs) - 1})", "give a token id the model has")
            chosen, how = target_id, "given"
        elif target is not None:
            ids = tokenizer.encode(target, add_special_tokens=False).ids
            if len(ids) != 1:
                raise InputError(
                    f"the target {target!r} is {len(ids)} tokens, not one",
                    'give the text of exactly one token, its leading space included (e.g. " Paris"), or its id',
                )
            chosen, how = ids[0], "given"
        else:
            chosen, how = int(np.argmax(logprobs)), "top-1"
        text = decoded_piece(tokenizer, [int(i) for i in self.ids], chosen)
        return Target(chosen, text, float(logprobs[chosen]), how)

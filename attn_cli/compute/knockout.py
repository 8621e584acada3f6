"""`knockout`: which words, in which layers, carry what a decoder needs to predict the next
token (Geva et al., "Dissecting Recall of Factual Associations", EMNLP 2023).

For each source word and each layer l, the attention edges from the word's tokens to the
explained position are blocked (score -inf before the softmax, every head) in the window of
layers l - ⌊W/2⌋ … l + ⌈W/2⌉ - 1, clipped to the model, and the target token's probability is
read again: the relative change (p′ - p)/p. A large drop at layer l says the prediction reads
that word through attention around layer l. As Geva et al.'s code (`dissecting_factual_predictions`),
a word's tokens are blocked together and the window is centred on l; unlike it, attn blocks
every word of the text by default (not only the subject) and reports every layer.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..loading.model import Model
from ..loading.tokenizer import Tokenization, tokenize
from ..models import Interventions, Knockout
from ..records import frozen
from .decoding import require_decoder
from .inspect import model_info
from .prediction import Reruns, Target, explained_position
from .result import ModelInfo, document_header, floats


@frozen
class Source:
    """A word whose edges to the explained position were blocked, and per layer the relative
    change of the target's probability: (layers,)."""

    text: str
    token_indices: tuple[int, ...]
    changes: np.ndarray


@frozen
class KnockoutResult:
    model: ModelInfo
    tokenization: Tokenization
    position: int
    target: Target
    probability: float  # p of the target in the plain pass
    window: int
    sources: tuple[Source, ...]

    def to_json(self) -> dict:
        return {
            **document_header(self.model, self.tokenization),
            "position": self.position,
            "target": {"id": self.target.id, "text": self.target.text, "probability": floats(np.float32(self.probability)), "chosen": self.target.chosen},
            "window": self.window,
            "sources": [{"text": s.text, "token_indices": list(s.token_indices), "changes": floats(s.changes)} for s in self.sources],
        }


def window_layers(layer: int, window: int, layers: int) -> tuple[int, ...]:
    """Geva et al.'s window around `layer`: l - ⌊W/2⌋ … l + ⌈W/2⌉ - 1, clipped to 0 … layers - 1."""
    return tuple(range(max(0, layer - window // 2), min(layers, layer + (window + 1) // 2)))


def knockout(
    model: Model, text: str, target: str | None = None, target_id: int | None = None, window: int = 9,
    sources: list[str] | None = None, query: str | None = None, query_index: int | None = None,
) -> KnockoutResult:
    """The relative change of the target's probability when each source word's attention edges
    to the explained position are blocked, layer window by layer window (see the module)."""
    require_decoder(model, "knockout")
    if window < 1:
        raise InputError(f"a knockout window of {window} layers is not valid", "give a window of 1 layer or more")
    tok = tokenize(model.tokenizer, text, max_tokens=model.spec.max_positions)
    position = explained_position(tok, query, query_index)
    words = [w for w in tok.words if w.token_indices[0] <= position]
    if sources:
        seen = {w.text.casefold() for w in words}
        later = [s for s in sources if s.casefold() not in seen and any(w.text.casefold() == s.casefold() for w in tok.words)]
        if later:  # a word of the text, but a decoder's position cannot attend to what follows it
            at = tok.tokens[position].text
            raise InputError(
                f"{' and '.join(map(repr, later))} {'comes' if len(later) == 1 else 'come'} after the explained position"
                f" (token {position}, {at!r}), which cannot attend to it",
                "give --source a word before the explained position, or explain a later one with --query",
            )
        missing = [s for s in sources if s.casefold() not in seen]
        if missing:  # even one: blocking fewer words than asked would look like a result about them
            raise InputError(f"no word of the text is {' or '.join(map(repr, missing))}", "give --source a word of the text, up to the explained position")
        wanted = {s.casefold() for s in sources}
        words = [w for w in words if w.text.casefold() in wanted]
    if len([w for w in tok.words if w.token_indices[0] <= position]) < 2:
        raise InputError("the text has one word up to the explained position: nothing to knock out but the query itself", "give a longer text")
    reruns = Reruns(model, tok.ids, position)
    chosen = reruns.target(target, target_id)
    found = []
    for word in words:
        keys = tuple(i for i in word.token_indices if i <= position)
        found.append(Source(word.text, keys, source_changes(reruns, chosen, keys, window)))
    return KnockoutResult(model_info(model), tok, position, chosen, float(np.exp(chosen.logprob)), window, tuple(found))


def source_changes(reruns: Reruns, chosen: Target, keys: tuple[int, ...], window: int) -> np.ndarray:
    """(layers,) float32: the relative change of p(chosen) when the edges from token positions
    `keys` to the explained position are blocked in the window around each layer."""
    p = float(np.exp(chosen.logprob))
    layers = reruns.model.spec.layers
    changes = np.empty(layers, dtype=np.float32)
    found: dict[tuple[int, ...], float] = {}  # clipped windows repeat (a window of 2·layers - 1 or more blocks every layer from every column): each runs once
    for layer in range(layers):
        blocked = window_layers(layer, window, layers)
        if blocked not in found:
            changed = Interventions(knockouts=(Knockout(blocked, (reruns.position,), keys),))
            logprobs = reruns.logprobs(reruns.output_with(changed, blocked[0]))
            found[blocked] = (np.exp(np.float64(logprobs[chosen.id])) - p) / p
        changes[layer] = found[blocked]
    return changes

"""attn as a Python library, for notebooks and scripts: the same result objects the CLI renders.

    >>> import attn_cli as attn
    >>> model = attn.load_model()                       # the bundled all-MiniLM-L6-v2
    >>> r = attn.inspect(model, "The cat sat on the mat.", query="sat", layer="all", head="all")
    >>> r.layers[-1].heads[3].weights                   # (units,) softmax row of "sat", head 3
    >>> r.to_json()                                     # the document `attn inspect --json` prints

Every function raises `attn_cli.errors.AttnError` subclasses (`InputError`, `QueryNotFound`,
`ModelError`) with `.message` and `.fix`; none prints anything.
"""

from __future__ import annotations

from collections.abc import Iterable

from .compute.inspect import inspect
from .compute.lenses import HeadsResult, RolloutResult, attention_rollout, heads
from .compute.result import InspectResult
from .compute.stats import CompareResult, StatsResult, compare, head_statistics
from .loading.model import Model, load_model
from .loading.tokenizer import Tokenization
from .loading.tokenizer import tokenize as _tokenize

__all__ = [
    "CompareResult",
    "HeadsResult",
    "InspectResult",
    "Model",
    "RolloutResult",
    "StatsResult",
    "Tokenization",
    "compare",
    "heads",
    "inspect",
    "load_model",
    "rollout",
    "stats",
    "tokenize",
]

rollout = attention_rollout


def tokenize(model: Model, text: str, truncate: bool = False) -> Tokenization:
    """The text as the model reads it: tokens (with character offsets), words and special tokens."""
    return _tokenize(model.tokenizer, text, model.spec.max_positions, truncate)


def stats(model: Model, texts: Iterable[str] | str, threshold: float = 0.5) -> StatsResult:
    """Per-layer, per-head statistics (entropy, special/first-token/punctuation mass, previous/
    self/next-token heads) averaged over `texts`; heads above `threshold` are named."""
    if isinstance(texts, str):
        texts = [texts]
    return head_statistics(model, [(None, t) for t in texts], threshold)

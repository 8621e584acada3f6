"""attn as a Python library, for notebooks and scripts: the same result objects the CLI renders.

    >>> import attn_cli as attn
    >>> model = attn.load_model()                       # the bundled all-MiniLM-L6-v2
    >>> r = attn.inspect(model, "The cat sat on the mat.", query="sat", layer="all", head="all")
    >>> r.layers[-1].heads[3].weights                   # (units,) softmax row of "sat", head 3
    >>> r.to_json()                                     # the document `attn inspect --json` prints
    >>> g = attn.generate(attn.load_model("smollm2"), "The capital of France is", 8)
    >>> g.continuation, [s.attended.text for s in g.steps]   # what it wrote, what each token attended to
    >>> k = attn.knockout(attn.load_model("smollm2"), "The capital of France is")  # Geva et al.'s sweep
    >>> silenced = attn.Interventions(head_edits=(attn.HeadEdit(layer=3, head=1, mode="zero"),))
    >>> traces = list(model.trace(attn.tokenize(model, "The cat sat.").ids, interventions=silenced))  # any pass, changed

Every result shows itself in a notebook (`_repr_html_`: the interactive page for `inspect` and
`page`, the command's screen for the others, each in a sandboxed iframe) and has a short
`repr` (arrays as their shape); `attn.show(result)` opens it in the browser.
`attn.page(model, text, query=...)` keeps every row of every head, for the page that lets the
reader pick any query token.

Every function raises `attn_cli.errors.AttnError` subclasses (`InputError`, `QueryNotFound`,
`ModelError`) with `.message` and `.fix`; none prints anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from . import _API
from .compute.ablate import AblateResult as AblateResult
from .compute.ablate import ablate as ablate
from .compute.generate import GenerateResult as GenerateResult
from .compute.generate import generate as generate
from .compute.heads import HeadsResult as HeadsResult
from .compute.heads import heads as heads
from .compute.inspect import inspect as inspect
from .compute.knockout import KnockoutResult as KnockoutResult
from .compute.knockout import knockout as knockout
from .compute.lens import LensResult as LensResult
from .compute.lens import lens as lens
from .compute.page import PageResult as PageResult
from .compute.page import page as _page
from .compute.result import InspectResult as InspectResult
from .compute.rollout import RolloutResult as RolloutResult
from .compute.rollout import attention_rollout
from .compute.routes import RoutesResult as RoutesResult
from .compute.routes import routes as routes
from .compute.stats import CompareResult as CompareResult
from .compute.stats import StatsResult, head_statistics
from .compute.stats import compare as compare
from .loading.model import Model
from .loading.model import load_model as load_model
from .loading.tokenizer import Tokenization
from .loading.tokenizer import tokenize as _tokenize
from .models import HeadEdit as HeadEdit
from .models import Interventions as Interventions
from .models import Knockout as Knockout
from .models import ValueZeroing as ValueZeroing

__all__ = list(_API)  # listed once, in attn_cli/__init__.py (re-exports are `x as x`)

RESULTS = (InspectResult, PageResult, HeadsResult, RolloutResult, StatsResult, CompareResult, GenerateResult, LensResult, KnockoutResult, AblateResult)

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


def page(model: Model, text: str, query: str | None = None, query_index: int | None = None, truncate: bool = False) -> PageResult:
    """Every row of every head of `text` (up to 256 tokens; beyond, the query's rows only) and the query's steps: what
    `attn plot TEXT -q WORD -o page.html` writes, shown by a notebook or `show`."""
    return _page(model, text, query, query_index, truncate)


def show(result) -> Path:
    """Open `result` in the browser: its page (or its command's screen) written to a temporary
    .html file, whose path is returned."""
    from .views.notebook import show as _show

    return _show(result)


def _repr_html_(self) -> str:
    from .views.notebook import framed

    return framed(self)


for _result in RESULTS:  # the results are defined below views (compute/): their HTML is attached here
    _result._repr_html_ = _repr_html_

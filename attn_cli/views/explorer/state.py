"""What the explorer is showing, as one immutable value, and how each key changes it.

Pure: no Textual here, so the moves are tested without a terminal. Every view is a set of
`attn inspect` options (`inspect_options`), which is how the explorer shows exactly the numbers
`attn inspect --json` gives for the same layer, head and query.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, replace

from ...compute.explore import TracedText
from ...compute.options import check_head, check_layer, parse_head, select_layers
from ...compute.query import Query
from ...compute.result import HeadId
from ...errors import InputError

MODES = ("weights", "heads", "steps", "rollout", "grid", "contrib")
# The command whose --json the `e` key writes, per mode (the grid is `attn heads`).
COMMAND_OF_MODE = {"weights": "inspect", "heads": "inspect", "steps": "inspect", "rollout": "rollout", "grid": "heads", "contrib": "contrib"}

# (keys, what they do): the footer, the `?` screen and docs/explorer.md's table.
KEYS = (
    ("← →", "previous / next token as the query"),
    ("↑ ↓", "next / previous layer"),
    ("] [", "next / previous head"),
    ("m", "mean over heads (again: back to the head)"),
    ("a", "every head of the layer (multi-head table)"),
    ("s", "steps: q, k, v · scores, scaled, softmax · weighted sum"),
    ("w", "token / word level"),
    ("n", "value norms ‖α·v‖, ‖α·v·Wₒ‖"),
    ("r", "attention rollout through all layers"),
    ("g", "model view: layers × heads (Enter opens a cell)"),
    ("c", "token contributions: ALTI in this layer and rolled out"),
    ("k", "encoder–decoders: encoder / decoder / cross-attention"),
    ("/", "type a word to make it the query"),
    ("e", "export this view as JSON (as --json prints it)"),
    ("?", "this help"),
    ("q", "quit"),
)
FOOTER = (
    ("←→", "query"), ("↑↓", "layer"), ("][", "head"), ("m", "mean"), ("a", "all heads"), ("s", "steps"), ("w", "words"),
    ("n", "norms"), ("r", "rollout"), ("g", "grid"), ("/", "find"), ("e", "export"), ("?", "help"), ("q", "quit"),
)
KIND_KEY = "k"  # switches an encoder–decoder's attention: listed only for models that have cross-attention


def footer(cross: bool) -> tuple[tuple[str, str], ...]:
    """The footer's keys; with `cross` (an encoder–decoder) `k` too, after `g`."""
    if not cross:
        return FOOTER
    at = next(i for i, (key, _) in enumerate(FOOTER) if key == "g") + 1
    return (*FOOTER[:at], (KIND_KEY, "attention"), *FOOTER[at:])


def help_keys(cross: bool) -> tuple[tuple[str, str], ...]:
    """The `?` screen's rows: `KEYS`, without `k` for a model that has one kind of attention."""
    return KEYS if cross else tuple(k for k in KEYS if k[0] != KIND_KEY)


@dataclass(frozen=True)
class View:
    """The layer, head and query shown, and how. The query is a word as typed (`query`, e.g.
    "dog#2") or a token position (`query_index`), exactly one of them set."""

    layer: int
    head: HeadId  # an index, or "mean"
    query: str | None
    query_index: int | None
    mode: str = "weights"
    level: str = "token"
    norms: bool = False
    last_head: int = 0  # the head `m` returns to
    attention: str | None = None  # an encoder–decoder's kind (`k`), for the exported command line

    def inspect_options(self) -> dict:
        """The `attn inspect` options (library names) of this view."""
        return {
            "layer": self.layer, "head": self.head, "level": self.level, "norms": self.norms, "steps": self.mode == "steps",
        }

    def query_args(self) -> dict:
        return {"query": self.query, "query_index": self.query_index}

    def command(self, text: str = "TEXT") -> str:
        """The command line whose --json `e` writes for this view."""
        which = COMMAND_OF_MODE[self.mode]
        args = ["-q", self.query] if self.query is not None else ["-i", str(self.query_index)]
        if which == "inspect":
            args += ["--layer", str(self.layer), "--head", str(self.head)]
            args += ["--level", "word"] if self.level == "word" else []
            args += ["--norms"] if self.norms else []
            args += ["--steps"] if self.mode == "steps" else []
        elif which == "rollout" and self.level == "word":
            args += ["--level", "word"]
        elif which == "contrib":
            args += ["--rollout"]
        if self.attention in ("decoder", "cross"):
            args += ["--target", "TARGET", "--attention", self.attention]
        return f"attn {which} {text} {shlex.join(args)} --json"

    # Moves. Each returns the new view (or the same one at an edge).

    def token(self, q: Query, step: int, tokens: int) -> View:
        """The token before the query's first / after its last, as the query (by position)."""
        i = q.token_indices[0] - 1 if step < 0 else q.token_indices[-1] + 1
        return self.at_token(max(0, min(tokens - 1, i)))

    def at_token(self, index: int) -> View:
        return replace(self, query=None, query_index=index)

    def at_word(self, word: str) -> View:
        return replace(self, query=word, query_index=None)

    def move_layer(self, step: int, layers: int) -> View:
        return replace(self, layer=max(0, min(layers - 1, self.layer + step)))

    def move_head(self, step: int, heads: int) -> View:
        if self.head == "mean":  # from the mean, ] and [ go back to the heads
            h = self.last_head
        else:
            h = max(0, min(heads - 1, int(self.head) + step))
        return replace(self, head=h, last_head=h)

    def at_head(self, head: HeadId) -> View:
        return replace(self, head=head, last_head=self.last_head if head == "mean" else int(head))

    def toggle_mean(self) -> View:
        return self.at_head(self.last_head if self.head == "mean" else "mean")

    def toggle_mode(self, mode: str) -> View:
        """Open `mode`, or go back to the weights if it is open. Steps are token-level."""
        new = "weights" if self.mode == mode else mode
        return replace(self, mode=new, level="token" if new == "steps" else self.level)

    def toggle_level(self) -> View:
        return replace(self, level="word" if self.level == "token" else "token")

    def toggle_norms(self) -> View:
        return replace(self, norms=not self.norms)


def switched(old: TracedText, new: TracedText, view: View) -> tuple[TracedText, View]:
    """`view` moved to another of an encoder–decoder's attentions: the layer and head kept
    where `new` has them, the query too when both are the decoder's (decoder and cross), else
    the first word of `new`'s sequence."""
    layer, heads = min(view.layer, new.spec.layers - 1), new.spec.heads
    head = view.head if view.head == "mean" else min(int(view.head), heads - 1)
    moved = replace(view, layer=layer, head=head, last_head=min(view.last_head, heads - 1), attention=new.kind)
    if (old.decoder is None) != (new.decoder is None):
        moved = moved.at_token(first_word(new))
    return new, moved


def first_word(traced: TracedText) -> int:
    """The position of the first token that is not special, where the query starts."""
    return next((t.index for t in traced.queries.tokens if not t.special), 0)


START_HEADS = ("auto", "mean")  # what --head may name besides an index: the explorer shows one head or the mean


def check_start(layer: str | int, head: str | int) -> None:
    """Refuse a starting layer or head the explorer cannot show (before any model is loaded)."""
    if str(layer).strip().lower() == "all" or str(head).strip().lower() == "all":
        raise InputError("attn explore starts at one layer and head", "give --layer N and --head N, mean or auto (keys a and g show them all)")
    check_layer(layer, allow_all=False)
    check_head(head, START_HEADS)


def start_view(traced: TracedText, query: str | None, query_index: int | None, layer: str | int, head: str | int, level: str = "token") -> View:
    """The first view, from the command line's options, validated as `attn inspect` validates
    them (the errors are its errors). No query: the first word. `--head auto` is resolved to
    the head it picks, as `attn inspect` names it."""
    check_start(layer, head)
    spec = traced.spec
    select_layers(layer, spec.layers, allow_all=False)  # out of range: the error offers only what explore takes
    parse_head(head, spec.heads, choices=START_HEADS)
    if query is None and query_index is None:
        query_index = first_word(traced)
    result = traced.inspect(query, query_index, layer=layer, head=head, level=level)
    shown = result.layers[0]
    picked = shown.focus[0]
    by_index = query_index is not None or (query or "").startswith("@")
    return View(
        layer=shown.layer, head=picked, query=None if by_index else query,
        query_index=result.query.token_indices[0] if by_index else None, level=level,
        last_head=0 if picked == "mean" else int(picked), attention=traced.kind,
    )

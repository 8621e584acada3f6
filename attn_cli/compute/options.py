"""`InspectOptions`: what `inspect` is asked for, as one value, checked once when it is made.

`attn inspect`, each line of `attn batch` (`InspectOptions.from_json`), `attn explore` and
`attn generate --query` all build one, so a value is refused the same way wherever it comes
from. Errors are `OptionError`s that name options as the library does (`top_k`, `rank_by`: the
keyword arguments of `inspect`, the fields of a JSON line); the CLI rewords them with its flags.
What needs the model (is layer 7 in range?) is checked by `layers` and `head_id`, given its sizes.
"""

from __future__ import annotations

import json
import re
from dataclasses import fields, replace
from numbers import Integral

from ..errors import InputError, OptionError
from ..records import frozen

HEAD_CHOICES = ("auto", "mean", "all")
LEVELS = ("token", "word")
RANKINGS = ("weight", "value_norm", "output_norm")
ATTENTION_KINDS = ("encoder", "decoder", "cross")  # an encoder–decoder's three (`compute.seq2seq`)


def _is_int(value) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)  # JSON true is not a position


def _is_str(value) -> bool:
    return isinstance(value, str)


def _is_bool(value) -> bool:
    return isinstance(value, bool)


# Each option's types, as JSON spells them: a JSON line's "query_index": "3" would otherwise
# fail deep inside `inspect`, as an internal error.
TYPES = {
    "query": (lambda v: v is None or _is_str(v), "a string or null"),
    "query_index": (lambda v: v is None or _is_int(v), "an integer or null"),
    "layer": (lambda v: _is_int(v) or _is_str(v), 'an integer or "all"'),
    "head": (lambda v: _is_int(v) or _is_str(v), 'an integer, "auto", "mean" or "all"'),
    "top_k": (_is_int, "an integer"),
    "steps": (_is_bool, "true or false"),
    "include_special": (_is_bool, "true or false"),
    "truncate": (lambda v: v is None or _is_bool(v), "true or false"),
    "level": (_is_str, 'a string ("token" or "word")'),
    "norms": (_is_bool, "true or false"),
    "rank_by": (_is_str, 'a string ("weight", "value_norm" or "output_norm")'),
    "chat": (_is_bool, "true or false"),
    "system": (lambda v: v is None or _is_str(v), "a string or null"),
    "target": (lambda v: v is None or _is_str(v), "a string or null"),
    "attention": (lambda v: v is None or _is_str(v), 'null, "encoder", "decoder" or "cross"'),
}


@frozen
class InspectOptions:
    """What to inspect (the query, the layers and heads) and how to show it. The defaults are
    `attn inspect`'s. `truncate` None: cut a text too long for the model without a note."""

    query: str | None = None
    query_index: int | None = None
    layer: str | int = -1
    head: str | int = "auto"
    top_k: int = 5
    steps: bool = False
    include_special: bool = True
    truncate: bool | None = False
    level: str = "token"
    norms: bool = False
    rank_by: str = "weight"
    chat: bool = False
    system: str | None = None
    target: str | None = None  # encoder–decoder models: the text the decoder writes (teacher-forced)
    attention: str | None = None  # encoder–decoder models: "encoder", "decoder" or "cross" (`compute.seq2seq`)

    def __post_init__(self) -> None:
        for f in fields(self):
            check_type(f.name, getattr(self, f.name))
        if self.query is not None and self.query_index is not None:
            raise OptionError("both a query word and a query index were given", "give either `query` or `query_index`")
        check_layer(self.layer)
        check_head(self.head)
        if self.top_k < 1:
            raise OptionError(f"`top_k={self.top_k}` is not valid", "give `top_k` 1 or more")
        if self.level not in LEVELS:
            raise OptionError(f"`level={self.level!r}` is not valid", f"give one of {', '.join(LEVELS)}")
        if self.rank_by not in RANKINGS:
            raise OptionError(f"`rank_by={self.rank_by!r}` is not valid", f"give one of {', '.join(RANKINGS)}")
        if self.steps and self.level == "word":
            raise OptionError("`steps=True` shows token vectors, so it cannot be used with `level='word'`", "drop `steps=True` or `level='word'`")
        check_chat(self.chat, self.system)
        if self.attention is not None and self.attention not in ATTENTION_KINDS:
            raise OptionError(f"`attention={self.attention!r}` is not valid", f"give one of {', '.join(ATTENTION_KINDS)}")
        if self.target is not None and self.chat:
            raise OptionError("`target=...` is an encoder–decoder's target, and a chat template is a decoder's", "drop `chat=True` or `target`")

    @property
    def shows_norms(self) -> bool:
        """Whether the norms are computed: asked for, or needed to rank by."""
        return self.norms or self.rank_by != "weight"

    def layers(self, layers: int, allow_all: bool = True) -> list[int]:
        """The layer indices asked for, in a model of `layers` layers."""
        return select_layers(self.layer, layers, allow_all)

    def head_id(self, heads: int, choices: tuple[str, ...] = HEAD_CHOICES):
        """The head asked for (an index, or one of `choices`), in layers of `heads` heads."""
        return parse_head(self.head, heads, choices)

    @classmethod
    def from_json(cls, obj: dict, defaults: InspectOptions | None = None) -> InspectOptions:
        """`defaults` (else the defaults) with the options a JSON object sets, as `attn batch`
        reads each line. An object that names its query either way replaces both query
        options, so a "query_index" over a default "query" is not "both were given"."""
        check_json(obj)
        changes = dict(obj)
        if "query" in obj or "query_index" in obj:
            changes = {"query": obj.get("query"), "query_index": obj.get("query_index"), **changes}
        return replace(defaults or cls(), **changes)


NAMES = tuple(f.name for f in fields(InspectOptions))


def check_chat(chat: bool, system: str | None) -> None:
    """A system message belongs to a chat: without `chat` it would be ignored."""
    if system is not None and not chat:
        raise OptionError("`system` is a chat template's system message, and the text is not read as a chat", "add `chat=True`, or drop `system`")


def check_type(name: str, value) -> None:
    """Raise InputError if `value` is not of a type option `name` takes (see TYPES)."""
    suits, expected = TYPES[name]
    if not suits(value):
        raise InputError(f'"{name}" must be {expected}, not {_shown(value)}', f'give "{name}" as {expected}')


def check_json(obj: dict) -> None:
    """Raise InputError if a JSON object has a field that is no option, or of the wrong type."""
    unknown = [k for k in obj if k not in TYPES]
    if unknown:
        raise InputError(f"unknown field {', '.join(map(json.dumps, unknown))}; the options are: {', '.join(NAMES)}", "leave it out, or fix its name")
    for name, value in obj.items():
        check_type(name, value)


def _shown(value) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def check_layer(layer: str | int, allow_all: bool = True) -> None:
    """Raise OptionError unless `layer` is an index (negative from the end) or, if allowed, 'all'."""
    if not (allow_all and str(layer).strip().lower() == "all"):
        _integer(layer, "layer", "an index (negative from the end)" + (" or 'all'" if allow_all else ""))


def check_head(head: str | int, choices: tuple[str, ...] = HEAD_CHOICES) -> None:
    """Raise OptionError unless `head` is an index (negative from the end) or one of `choices`."""
    if str(head).strip().lower() not in choices:
        _integer(head, "head", f"an index, or one of {', '.join(choices)}")


def select_layers(layer: str | int, layers: int, allow_all: bool = True) -> list[int]:
    """'all' (when `allow_all`), or an index (negative counts from the end) -> sorted layer indices."""
    if allow_all and str(layer).strip().lower() == "all":
        return list(range(layers))
    alternatives = ", or 'all'" if allow_all else ""
    index = _integer(layer, "layer", f"an index 0 … {layers - 1}, negative from the end{alternatives}")
    if not -layers <= index < layers:
        raise OptionError(
            f"layer {index} is out of range: the model has {layers} layers (0 … {layers - 1}, or -1 … -{layers})",
            f"pick `layer` between 0 and {layers - 1}{alternatives}",
        )
    return [index % layers]


def parse_head(head: str | int, heads: int, choices: tuple[str, ...] = HEAD_CHOICES):
    """One of `choices` ('auto', 'mean', 'all'), or an index (negative counts from the end)."""
    name = str(head).strip().lower()
    if name in choices:
        return name
    index = _integer(head, "head", f"an index 0 … {heads - 1}, or one of {', '.join(choices)}")
    if not -heads <= index < heads:
        raise OptionError(
            f"head {index} is out of range: each layer has {heads} heads (0 … {heads - 1})",
            f"pick `head` between 0 and {heads - 1}, or {', '.join(choices)}",
        )
    return index % heads


def _integer(value: str | int, what: str, expected: str) -> int:
    if _is_int(value) or re.fullmatch(r"\s*-?\d{1,100}\s*", str(value)):
        return int(value)
    if re.fullmatch(r"\s*-?\d+\s*", str(value)):  # Python refuses to convert over 4,300 digits
        number = str(value).strip()
        raise OptionError(f"`{what}={number[:20]}…` ({len(number.lstrip('-'))} digits) is out of range", f"give {expected}")
    raise OptionError(f"`{what}={value!r}` is not valid", f"give {expected}")

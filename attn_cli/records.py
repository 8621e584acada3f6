"""`frozen`: a frozen dataclass that costs one generated method to define, not six.

dataclasses writes each method it adds as source text and compiles it with exec when the class
is defined: ~0.25 ms a method on our machines, ~1.5 ms a frozen class, and ~25 ms of every
`attn` start for the 17 result, token and spec types on the inspect path (the import floor is
~150 ms). `frozen` lets dataclasses generate only `__init__` and gives the class shared methods
that behave as a frozen dataclass's: a field cannot be assigned once set (FrozenInstanceError),
`==` and `hash` compare the fields in order, `repr` names them (unless the class writes its
own). Everything else is dataclasses' own: `fields`, `replace`, defaults, `__post_init__`,
`__match_args__`, pickling.

Unlike a dataclass's, the repr stays short, for a notebook's `print(result)`: an array reads as
its dtype and shape, a sequence of more than a few items as their count and kind, a long string
as its start.
"""

from __future__ import annotations

import dataclasses

__all__ = ["frozen"]


def frozen(cls: type) -> type:
    """`@dataclass(frozen=True)`, defined at a sixth of the cost (see the module)."""
    cls = dataclasses.dataclass(cls, repr=False, eq=False)
    cls.__setattr__ = _setattr
    cls.__delattr__ = _delattr
    cls.__eq__ = _eq
    cls.__hash__ = _hash
    if "__repr__" not in cls.__dict__:
        cls.__repr__ = _repr
    return cls


def _setattr(self, name: str, value) -> None:
    # __init__ sets each field once; after that (and for any name that is not a field) it is frozen.
    if name in self.__dict__ or name not in self.__dataclass_fields__:
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")
    object.__setattr__(self, name, value)


def _delattr(self, name: str) -> None:
    raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")


def _values(self, use: str) -> tuple:
    return tuple(getattr(self, f.name) for f in dataclasses.fields(self) if getattr(f, use))


def _eq(self, other) -> bool:
    if other.__class__ is not self.__class__:
        return NotImplemented
    return _values(self, "compare") == _values(other, "compare")


def _hash(self) -> int:
    return hash(tuple(getattr(self, f.name) for f in dataclasses.fields(self) if (f.compare if f.hash is None else f.hash)))


def _repr(self) -> str:
    fields = ", ".join(f"{f.name}={short_repr(getattr(self, f.name))}" for f in dataclasses.fields(self) if f.repr)
    return f"{self.__class__.__qualname__}({fields})"


def short_repr(value, items: int = 6, chars: int = 60) -> str:
    """repr(value), summarised: an array as `<float32 array (12, 13)>`, a tuple, list or dict of
    more than `items` as `<tuple of 13 Token>`, a string of more than `chars` cut with `…`."""
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    if shape is not None and dtype is not None and not isinstance(value, type):
        return repr(value.item()) if tuple(shape) == () else f"<{dtype} array {tuple(shape)}>"
    if isinstance(value, (tuple, list, dict)) and len(value) > items:
        kinds = sorted({type(v).__name__ for v in value.values()} if isinstance(value, dict) else {type(v).__name__ for v in value})
        return f"<{type(value).__name__} of {len(value)} {'/'.join(kinds)}>"
    if isinstance(value, (tuple, list)):
        inner = ", ".join(short_repr(v, items, chars) for v in value)
        return f"({inner}{',' if len(value) == 1 else ''})" if isinstance(value, tuple) else f"[{inner}]"
    if isinstance(value, str) and len(value) > chars:
        return repr(value[: chars - 1] + "…")
    return repr(value)

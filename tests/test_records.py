"""`records.frozen` behaves as `@dataclass(frozen=True)` does, for what attn's types use."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from attn_cli.records import frozen, short_repr


@frozen
class Point:
    x: int
    y: int = 0
    tags: tuple[str, ...] = dataclasses.field(default=(), compare=False, repr=False)


@dataclasses.dataclass(frozen=True)
class Twin:
    x: int
    y: int = 0
    tags: tuple[str, ...] = dataclasses.field(default=(), compare=False, repr=False)


def test_fields_cannot_be_assigned_or_deleted_once_set():
    p = Point(1, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.x = 5
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.z = 5  # not a field either
    with pytest.raises(dataclasses.FrozenInstanceError):
        del p.y
    assert (p.x, p.y) == (1, 2)


def test_eq_hash_and_repr_are_a_frozen_dataclass_s():
    assert Point(1, 2, ("a",)) == Point(1, 2, ("b",))  # compare=False fields are left out
    assert Point(1, 2) != Point(1, 3)
    assert Point(1, 2) != Twin(1, 2)  # another class is never equal
    assert hash(Point(1, 2, ("a",))) == hash(Twin(1, 2, ("b",))) == hash((1, 2))
    assert repr(Point(1, 2)) == repr(Twin(1, 2)).replace("Twin", "Point") == "Point(x=1, y=2)"
    assert {Point(1, 2): "a"}[Point(1, 2)] == "a"


def test_dataclass_tools_and_pickling_still_work():
    p = Point(1, 2, ("a",))
    assert [f.name for f in dataclasses.fields(p)] == ["x", "y", "tags"]
    q = dataclasses.replace(p, y=7)
    assert (q.x, q.y, q.tags) == (1, 7, ("a",)) and (p.x, p.y) == (1, 2)
    r = pickle.loads(pickle.dumps(p))
    assert r == p and r.tags == ("a",)
    assert Point.__match_args__ == ("x", "y", "tags")


def test_repr_summarises_arrays_long_sequences_and_strings_and_a_class_may_write_its_own():
    import numpy as np

    assert repr(Point(np.zeros((2, 3), np.float32), np.float32(0.5))) == "Point(x=<float32 array (2, 3)>, y=0.5)"
    assert repr(Point(tuple(range(7)), (1, 2))) == "Point(x=<tuple of 7 int>, y=(1, 2))"
    assert short_repr("x" * 100) == repr("x" * 59 + "…") and short_repr((1,)) == "(1,)"

    @frozen
    class Own:
        x: int

        def __repr__(self) -> str:
            return "mine"

    assert repr(Own(1)) == "mine"

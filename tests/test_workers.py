"""The worker pool `attn batch` and `attn stats` share (compute/workers.py): answers in input
order, a task's error raised whole in the parent, workers stopped at once when the reader stops."""

from __future__ import annotations

import pickle
import time

import pytest

from attn_cli.compute.workers import ordered_map
from attn_cli.errors import InputError, ModelError, QueryNotFound


def _setup(offset: int) -> int:
    return offset


def _task(offset: int, item):
    if item == "model":
        raise ModelError("the model broke", "re-download it")
    if item == "query":
        raise QueryNotFound("no such word", "pick one", ["cat", "dog"])
    if item == "sleep":
        time.sleep(120)
    return item + offset


def test_answers_come_in_input_order():
    assert list(ordered_map(_setup, (100,), _task, range(25), workers=2, ahead=2)) == list(range(100, 125))


def test_attn_errors_pickle_whole_and_can_say_which_input_they_are_about():
    for error in (ModelError("m", "f"), QueryNotFound("m", "f", ["a", "b"]), InputError("m")):
        back = pickle.loads(pickle.dumps(error))
        assert (type(back), back.message, back.fix, getattr(back, "candidates", None)) == (type(error), "m", error.fix, getattr(error, "candidates", None))
        relabelled = error.prefixed("line 3: ")
        assert (type(relabelled), relabelled.message, relabelled.fix) == (type(error), "line 3: m", error.fix)
    assert QueryNotFound("m", "f", ["a"]).prefixed("text A: ").candidates == ["a"]


@pytest.mark.parametrize("item, kind, fix", [("model", ModelError, "re-download it"), ("query", QueryNotFound, "pick one")])
def test_a_tasks_error_is_raised_in_the_parent_as_it_was_raised(item, kind, fix):
    answers = ordered_map(_setup, (0,), _task, [1, 2, item, 3], workers=2, ahead=2)
    assert next(answers) == 1
    with pytest.raises(kind) as caught:
        list(answers)
    assert caught.value.fix == fix
    assert getattr(caught.value, "candidates", ["cat", "dog"]) == ["cat", "dog"]


def test_a_reader_that_stops_early_stops_busy_workers_at_once():
    answers = ordered_map(_setup, (0,), _task, [1, "sleep", "sleep", 2], workers=2, ahead=2)
    assert next(answers) == 1
    started = time.monotonic()
    answers.close()  # the two sleeping tasks are not waited for
    assert time.monotonic() - started < 20

"""`InspectOptions`, the one record of what `inspect` is asked for: checked once when made, read
from a JSON object the way `attn batch` reads a line, its errors worded with the library's names
for options (and with the CLI's flags once `named`)."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from attn_cli import records
from attn_cli.compute.options import NAMES, InspectOptions, parse_head, select_layers
from attn_cli.errors import InputError, OptionError

DEFAULTS = InspectOptions()


def test_the_defaults_are_inspects():
    d = DEFAULTS
    assert (d.layer, d.head, d.top_k, d.level, d.rank_by, d.include_special) == (-1, "auto", 5, "token", "weight", True)
    assert NAMES == (
        "query", "query_index", "layer", "head", "top_k", "steps", "include_special", "truncate", "level", "norms", "rank_by", "chat", "system",
        "target", "attention",
    )


def test_it_is_a_frozen_record_and_a_dictionary_key():
    assert InspectOptions.__setattr__ is records._setattr  # records.frozen, not dataclass(frozen=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULTS.top_k = 3
    assert {InspectOptions(query="cat"): 1}[InspectOptions(query="cat")] == 1
    assert pickle.loads(pickle.dumps(InspectOptions(query="cat", head=3))) == InspectOptions(query="cat", head=3)


@pytest.mark.parametrize(
    "options, message, fix",
    [
        ({"top_k": 0}, "`top_k=0` is not valid", "give `top_k` 1 or more"),
        ({"level": "sentence"}, "`level='sentence'` is not valid", "give one of token, word"),
        ({"rank_by": "size"}, "`rank_by='size'` is not valid", "give one of weight, value_norm, output_norm"),
        ({"steps": True, "level": "word"}, "`steps=True` shows token vectors, so it cannot be used with `level='word'`", "drop `steps=True` or `level='word'`"),
        ({"query": "cat", "query_index": 2}, "both a query word and a query index were given", "give either `query` or `query_index`"),
        ({"system": "Be brief."}, "`system` is a chat template's system message, and the text is not read as a chat", "add `chat=True`, or drop `system`"),
        ({"layer": "last"}, "`layer='last'` is not valid", "give an index (negative from the end) or 'all'"),
        ({"head": "best"}, "`head='best'` is not valid", "give an index, or one of auto, mean, all"),
    ],
)
def test_bad_options_are_refused_when_made_in_the_librarys_words(options, message, fix):
    with pytest.raises(OptionError) as info:
        InspectOptions(**options)
    assert (info.value.message, info.value.fix, info.value.code) == (message, fix, "bad_input")


def test_the_cli_words_the_same_error_with_its_flags():
    from attn_cli.cli.phrasing import for_cli

    with pytest.raises(OptionError) as info:
        InspectOptions(steps=True, level="word")
    assert (for_cli(info.value.message), for_cli(info.value.fix)) == (
        "--steps shows token vectors, so it cannot be used with --level word", "drop --steps or --level word"
    )
    with pytest.raises(OptionError) as info:
        InspectOptions(level="{top_k}")  # a value that looks like a name is a value
    assert for_cli(info.value.message) == "--level '{top_k}' is not valid"
    again = pickle.loads(pickle.dumps(info.value))
    assert (type(again), again.message, again.fix) == (OptionError, info.value.message, info.value.fix)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"top_k": "3"}, '"top_k" must be an integer, not "3"'),
        ({"query_index": True}, '"query_index" must be an integer or null, not true'),
        ({"steps": 1}, '"steps" must be true or false, not 1'),
        ({"layer": 1.5}, '"layer" must be an integer or "all", not 1.5'),
    ],
)
def test_types_are_checked_too(options, message):
    with pytest.raises(InputError) as info:
        InspectOptions(**options)
    assert info.value.message == message


def test_from_json_sets_what_the_object_sets_over_the_defaults():
    base = InspectOptions(query="cat", layer=2, top_k=3, steps=True)
    assert InspectOptions.from_json({"head": "mean", "layer": "all"}, base) == InspectOptions(query="cat", layer="all", head="mean", top_k=3, steps=True)
    # Naming the query either way replaces both: a position over a default word is no conflict.
    assert InspectOptions.from_json({"query_index": 4}, base) == InspectOptions(query_index=4, layer=2, top_k=3, steps=True)
    assert InspectOptions.from_json({"query": None}, base).query is None
    assert InspectOptions.from_json({}) == DEFAULTS
    with pytest.raises(OptionError, match="^`steps=True` shows token vectors"):
        InspectOptions.from_json({"level": "word"}, base)  # fine alone, not over --steps
    with pytest.raises(InputError) as info:
        InspectOptions.from_json({"qeury": "cat", "weights": 1})
    assert info.value.message == 'unknown field "qeury", "weights"; the options are: ' + ", ".join(NAMES)


def test_layers_and_heads_are_checked_against_the_model():
    options = InspectOptions(layer="-2", head=" MEAN ")
    assert (options.layers(6), options.head_id(12)) == ([4], "mean")
    assert InspectOptions(layer="all", head=-1).layers(3) == [0, 1, 2] and InspectOptions(head=-1).head_id(12) == 11
    with pytest.raises(OptionError) as info:
        InspectOptions(layer=6).layers(6)
    assert info.value.message == "layer 6 is out of range: the model has 6 layers (0 … 5, or -1 … -6)"
    assert info.value.fix == "pick `layer` between 0 and 5, or 'all'"
    # A command that takes one layer and no 'all' is not offered it.
    with pytest.raises(OptionError) as info:
        select_layers(6, 6, allow_all=False)
    assert info.value.fix == "pick `layer` between 0 and 5"
    with pytest.raises(OptionError) as info:
        select_layers("all", 6, allow_all=False)
    assert (info.value.message, info.value.fix) == ("`layer='all'` is not valid", "give an index 0 … 5, negative from the end")
    with pytest.raises(OptionError) as info:
        parse_head(12, 12, choices=("auto", "mean"))
    assert info.value.fix == "pick `head` between 0 and 11, or auto, mean"

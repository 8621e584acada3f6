"""Interventions against transformers with the same change made inside its eager attention
(tests/fixtures/interventions, made by scripts/make_intervention_fixtures.py): knockout of
attention edges, head ablation (zero, mean), value zeroing, and the captures; and without any
intervention, the forward pass bit for bit the plain one."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from attn_cli.errors import InputError
from attn_cli.loading.model import load_model
from attn_cli.models import HeadEdit, Interventions, Knockout, ValueZeroing

FIXTURES = Path(__file__).parent / "fixtures" / "interventions"
TINY = Path(__file__).parent / "fixtures" / "tiny"
MODELS = [
    "bert", "roberta", "distilbert", "mpnet", "nomic_bert", "modernbert", "gpt2", "gpt_neox", "gpt_neox-sequential",
    "llama", "llama3rope", "mistral", "qwen2", "qwen3", "phi3", "olmo2", "gemma2", "gemma3", "mixtral", "qwen3_moe",
]
TOLERANCE = 1e-5


def _relative(ours: np.ndarray, ref: np.ndarray) -> float:
    """max |ours - ref| over max(1, max |ref|): the hidden states reach ~30 in gemma3."""
    return float(np.max(np.abs(ours - ref)) / max(1.0, float(np.max(np.abs(ref)))))


@pytest.fixture(scope="module", params=MODELS)
def case(request):
    ref = np.load(FIXTURES / f"{request.param}.npz")
    return request.param, load_model(TINY / request.param), ref, json.loads(str(ref["spec"]))["cases"]


def _interventions(spec: dict) -> Interventions:
    """The fixture's case as attn's Interventions."""
    mode = spec["mode"]
    if mode == "knockout":
        return Interventions(knockouts=(Knockout(spec["layers"], spec["query_positions"], spec["key_positions"], spec["heads"]),))
    if mode in ("head_zero", "head_mean"):
        return Interventions(head_edits=tuple(HeadEdit(layer, h, mode.removeprefix("head_")) for layer in spec["layers"] for h in spec["heads"]))
    if mode == "value_zero":
        return Interventions(value_zeroing=tuple(ValueZeroing(layer, spec["positions"]) for layer in spec["layers"]))
    return Interventions()


def _run(model, ids, interventions):
    traces = list(model.trace(ids, interventions=interventions))
    last = model.arch.final_norm(model.weights, model.spec, traces[-1].hidden)
    return traces, np.stack([t.rows()[2] for t in traces]), last


@pytest.mark.parametrize("name", ["none", "knockout", "knockout_heads", "head_zero", "head_mean", "value_zero"])
def test_each_intervention_equals_transformers_with_hooks(case, name):
    _, model, ref, cases = case
    spec = cases[name]
    _, weights, last = _run(model, ref["input_ids"], _interventions(spec))
    assert np.max(np.abs(weights - ref[f"{name}.attentions"])) <= TOLERANCE
    assert _relative(last, ref[f"{name}.last_hidden_state"]) <= TOLERANCE
    if name != "none":  # the case changed something, so the check above could fail
        plain = ref["none.last_hidden_state"]
        assert _relative(ref[f"{name}.last_hidden_state"], plain) > 10 * TOLERANCE


def test_the_trace_shows_the_values_as_they_entered_p_v(case):
    """Under value zeroing each trace's v is transformers' value tensor after the hook, zeroed rows
    and all: also in the families whose layer builds its trace from its own v (nomic_bert and
    modernbert showed the rows unzeroed), and in a pass cut short at that layer (every family did)."""
    _, model, ref, cases = case
    interventions = _interventions(cases["value_zero"])
    layer = cases["value_zero"]["layers"][0]
    for through in (None, layer):
        traces = list(model.trace(ref["input_ids"], interventions=interventions, through=through))
        for t in traces:
            assert _relative(t.v, ref["value_zero.v"][t.layer]) <= TOLERANCE
        assert (traces[layer].v[:, cases["value_zero"]["positions"]] == 0).all()


def test_a_pass_cut_short_at_a_knocked_out_layer_shows_the_knockout_in_its_maps(case):
    """`through` computes of its last layer only q, k and v; its maps are still the knocked-out
    ones (they were the plain ones: that trace did not carry the interventions)."""
    _, model, ref, cases = case
    spec = cases["knockout_heads"]
    layer = spec["layers"][0]
    traces = list(model.trace(ref["input_ids"], interventions=_interventions(spec), through=layer))
    assert traces[-1].head_output is None
    assert np.max(np.abs(traces[-1].rows()[2] - ref["knockout_heads.attentions"][layer])) <= TOLERANCE


def test_knocked_out_edges_weigh_nothing_and_the_rest_renormalise(case):
    _, model, ref, cases = case
    spec = cases["knockout_heads"]
    traces, weights, _ = _run(model, ref["input_ids"], _interventions(spec))
    layer = spec["layers"][0]
    rows, keys = np.ix_(spec["query_positions"], spec["key_positions"])
    for h in range(model.spec.heads):
        blocked = weights[layer, h][rows, keys]
        if h in spec["heads"]:
            assert (blocked == 0).all()
        else:
            assert (blocked > 0).all()
    np.testing.assert_allclose(weights[layer].sum(-1), 1.0, atol=1e-6)


def test_captures_equal_transformers(case):
    _, model, ref, _ = case
    traces = list(model.trace(ref["input_ids"], interventions=Interventions(capture={"residual", "heads", "ffn"})))
    for t in traces:
        assert _relative(t.residual, ref["capture.resid_pre"][t.layer]) <= TOLERANCE
        assert _relative(t.head_output, ref["capture.z"][t.layer]) <= TOLERANCE
        assert _relative(t.head_writes, ref["capture.head_writes"][t.layer]) <= TOLERANCE
        assert _relative(t.ffn, ref["capture.ffn_out"][t.layer]) <= TOLERANCE
    assert _relative(traces[-1].hidden, ref["capture.resid_final"]) <= TOLERANCE


def test_no_intervention_is_bit_for_bit_the_plain_pass(case):
    _, model, ref, _ = case
    ids = ref["input_ids"]
    plain = list(model.trace(ids))
    for interventions in (Interventions(), Interventions(capture={"residual", "heads", "ffn"})):
        for a, b in zip(plain, model.trace(ids, interventions=interventions), strict=True):
            for name in ("q", "k", "v", "head_output", "hidden"):
                np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
            np.testing.assert_array_equal(a.rows()[2], b.rows()[2])
    assert plain[0].residual is None and plain[0].ffn is None and plain[0].head_writes is None


def test_an_intervention_in_a_later_layer_leaves_the_earlier_ones_alone(case):
    _, model, ref, _ = case
    ids = ref["input_ids"]
    plain = list(model.trace(ids))
    changed = list(model.trace(ids, interventions=Interventions(head_edits=(HeadEdit(1, 0, "scale", 0.5),))))
    np.testing.assert_array_equal(plain[0].hidden, changed[0].hidden)
    assert not np.array_equal(plain[1].hidden, changed[1].hidden)


def test_a_head_replaced_by_a_given_array():
    model = load_model(TINY / "llama")
    ids = np.load(FIXTURES / "llama.npz")["input_ids"]
    value = np.full((len(ids), model.spec.head_dim), 0.25, dtype=np.float32)
    traces = list(model.trace(ids, interventions=Interventions(head_edits=(HeadEdit(0, 2, "replace", value=value),))))
    np.testing.assert_array_equal(traces[0].head_output[2], value)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: HeadEdit(0, 0, "halve"), "mode is 'halve'"),
        (lambda: HeadEdit(0, 0, "replace"), "only mode replace"),
        (lambda: Knockout((1,), (-1,), (0,)), "positions"),
        (lambda: Interventions(capture={"attention_maps"}), "cannot capture attention_maps"),
    ],
)
def test_bad_interventions_are_input_errors(make, message):
    with pytest.raises(InputError, match=message):
        make()


def test_a_head_edit_of_a_head_the_model_lacks_is_an_input_error():
    model = load_model(TINY / "gpt2")
    with pytest.raises(InputError, match="head 9 of a model with 4 heads"):
        list(model.trace(np.arange(5), interventions=Interventions(head_edits=(HeadEdit(0, 9),))))


def test_a_pass_resumed_at_a_layer_from_its_captured_input_is_the_plain_pass_from_there(case):
    from attn_cli.models import Resume

    _, model, ref, _ = case
    ids = ref["input_ids"]
    plain = list(model.trace(ids, interventions=Interventions(capture={"residual"})))
    resumed = list(model.trace(ids, interventions=Interventions(resume=Resume(1, plain[1].residual))))
    assert [t.layer for t in resumed] == [1]
    np.testing.assert_array_equal(resumed[0].hidden, plain[1].hidden)
    np.testing.assert_array_equal(resumed[0].rows()[2], plain[1].rows()[2])


@pytest.mark.parametrize("name", ["none", "knockout", "value_zero"])
def test_a_pass_resumed_from_transformers_captured_input_equals_transformers_from_there(case, name):
    """Resume at layer 1 from the residual transformers captured entering it, with the case's change
    in layer 1: layer 1's maps and the last hidden state are transformers' own for that case."""
    from attn_cli.models import Resume

    _, model, ref, cases = case
    interventions = replace(_interventions(cases[name]), resume=Resume(1, ref["capture.resid_pre"][1]))
    (trace,) = model.trace(ref["input_ids"], interventions=interventions)
    assert np.max(np.abs(trace.rows()[2] - ref[f"{name}.attentions"][1])) <= TOLERANCE
    last = model.arch.final_norm(model.weights, model.spec, trace.hidden)
    assert _relative(last, ref[f"{name}.last_hidden_state"]) <= TOLERANCE

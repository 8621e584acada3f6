"""attn's numbers against Hugging Face transformers on the bundled model, every layer and head.

The fixtures in tests/fixtures/minilm/ were made by scripts/make_reference_fixtures.py
(transformers, eager attention, output_attentions=True, hooks on the q/k/v Linear layers).
These tests need no torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from attn_cli.compute.inspect import inspect
from attn_cli.loading.tokenizer import tokenize

FIXTURES = sorted((Path(__file__).parent / "fixtures" / "minilm").glob("*.npz"))
TOLERANCE = 1e-5


def test_the_fixtures_are_there():
    assert {f.stem for f in FIXTURES} >= {"making", "cat", "long", "unicode", "repeat"}


@pytest.fixture(scope="module", params=FIXTURES, ids=lambda p: p.stem)
def case(request, model):
    ref = dict(np.load(request.param))
    tok = tokenize(model.tokenizer, str(ref["text"]))
    traces = list(model.arch.forward(model.weights, model.spec, tok.ids))
    return ref, tok, traces


def full_maps(traces):
    """(scores, scaled_scores, weights) of every layer, each (layers, heads, seq, seq)."""
    return [np.stack(m) for m in zip(*(t.rows() for t in traces))]


def test_tokenization_matches_transformers(case):
    ref, tok, _ = case
    assert tok.ids.tolist() == ref["input_ids"].tolist()


def test_attention_weights_match_in_every_layer_and_head(case):
    ref, _, traces = case
    ours = full_maps(traces)[2]
    assert ours.shape == ref["attentions"].shape
    assert np.max(np.abs(ours - ref["attentions"])) <= TOLERANCE


@pytest.mark.parametrize("name", ["q", "k", "v"])
def test_query_key_value_vectors_match(case, name):
    ref, _, traces = case
    ours = np.stack([getattr(t, name) for t in traces])
    assert ours.shape == ref[name].shape
    assert np.max(np.abs(ours - ref[name])) <= TOLERANCE * max(1.0, float(np.abs(ref[name]).max()))


def test_scores_match_those_of_the_reference_vectors(case):
    ref, _, traces = case
    d_k = ref["q"].shape[-1]
    want = ref["q"].astype(np.float64) @ ref["k"].astype(np.float64).swapaxes(-1, -2)
    ours, scaled, _ = full_maps(traces)
    scale = max(1.0, float(np.abs(want).max()))
    assert np.max(np.abs(ours - want)) <= TOLERANCE * scale
    np.testing.assert_allclose(scaled, want / np.sqrt(d_k), atol=TOLERANCE * scale)


def test_last_hidden_state_matches(case):
    ref, _, traces = case
    assert np.max(np.abs(traces[-1].hidden - ref["last_hidden_state"])) <= 1e-4


def test_long_fixture_is_over_60_tokens():
    assert len(np.load(next(f for f in FIXTURES if f.stem == "long"))["input_ids"]) > 60


def test_json_weights_equal_transformers_attentions(model):
    """The documented promise: weights[j] == attentions[layer][0, head, i, j] for a one-token query."""
    ref = np.load(next(f for f in FIXTURES if f.stem == "making"))
    doc = inspect(model, str(ref["text"]), "making", layer="all").to_json()
    i = doc["query"]["token_indices"][0]
    for layer in doc["layers"]:
        for head in layer["heads"][:-1]:
            got = np.array(head["weights"], np.float32)
            assert np.max(np.abs(got - ref["attentions"][layer["layer"], head["head"], i])) <= TOLERANCE

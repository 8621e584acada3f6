"""The inspector keeps the right rows, picks heads and layers as documented, ranks words."""

from __future__ import annotations

import jsonschema
import numpy as np
import pytest
from conftest import SENTENCE

from attn_cli.compute.inspect import inspect, rank_words
from attn_cli.compute.options import parse_head, select_layers
from attn_cli.errors import InputError
from attn_cli.loading.tokenizer import tokenize


def full_trace(model, text):
    tok = tokenize(model.tokenizer, text)
    return tok, list(model.arch.forward(model.weights, model.spec, tok.ids))


@pytest.fixture(scope="module")
def making(model):
    return inspect(model, SENTENCE, "making", steps=True)


def test_defaults_are_last_layer_and_auto_head(making, model):
    assert [layer.layer for layer in making.layers] == [model.spec.layers - 1]
    layer = making.layers[0]
    assert layer.focus == (layer.auto_head,)
    assert [h.head for h in layer.heads] == [*range(12), "mean"]


def test_rows_equal_the_forward_pass_rows(making, model):
    _, traces = full_trace(model, SENTENCE)
    scores, scaled, weights = traces[-1].rows()  # the full (heads, seq, seq) maps
    for h in range(12):
        head = making.layers[0].head(h)
        np.testing.assert_allclose(head.weights, weights[h, 5], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(head.scores, scores[h, 5], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(head.scaled_scores, scaled[h, 5], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(making.layers[0].head("mean").weights, weights[:, 5].mean(0), rtol=1e-6)


def test_scaled_scores_are_scores_over_root_dk_and_weights_their_softmax(making):
    head = making.layers[0].head(making.layers[0].focus[0])
    np.testing.assert_allclose(head.scaled_scores, head.scores / np.sqrt(32), rtol=1e-6)
    e = np.exp(head.scaled_scores - head.scaled_scores.max())
    np.testing.assert_allclose(head.weights, e / e.sum(), rtol=1e-5)


def test_steps_output_is_the_weighted_sum_of_values(making):
    layer = making.layers[0]
    head = layer.head(layer.focus[0])
    assert head.steps is not None
    np.testing.assert_allclose(head.steps.output, head.weights @ head.steps.values, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(head.scores, head.steps.keys @ head.steps.query, rtol=1e-4, atol=1e-4)
    # Only the focus head carries step vectors.
    assert all(h.steps is None for h in layer.heads if h.head != layer.focus[0])


def test_auto_head_sends_the_most_weight_to_other_words(making):
    layer = making.layers[0]
    other = [i for i, t in enumerate(making.tokens) if not t.special and i != 5]
    mass = [layer.head(h).weights[other].sum() for h in range(12)]
    assert layer.auto_head == int(np.argmax(mass))


def test_split_query_row_is_the_mean_of_its_token_rows(model):
    result = inspect(model, SENTENCE, "transformer", layer=2, head=4)
    _, traces = full_trace(model, SENTENCE)
    np.testing.assert_allclose(result.layers[0].head(4).weights, traces[2].rows()[2][4, [2, 3]].mean(0), rtol=1e-6)
    assert result.layers[0].focus == (4,)
    assert "mean of their rows" in result.notes[0]


def test_top_words_sum_split_words_and_can_leave_out_special_tokens(model):
    tok = tokenize(model.tokenizer, SENTENCE)
    weights = np.zeros(13, np.float32)
    weights[[0, 2, 3, 10]] = [0.4, 0.2, 0.15, 0.25]
    ranked = rank_words(tok, {"weight": weights}, include_special=True)
    assert [(w.text, round(w.weight, 6)) for w in ranked[:3]] == [("[CLS]", 0.4), ("Transformer", 0.35), ("language", 0.25)]
    assert ranked[0].special and ranked[1].token_indices == (2, 3)
    assert [w.text for w in rank_words(tok, {"weight": weights}, include_special=False)[:2]] == ["Transformer", "language"]
    assert sum(w.weight for w in ranked) == pytest.approx(1.0)


def test_top_k_and_no_special(model):
    result = inspect(model, SENTENCE, "making", top_k=3, include_special=False, head="all")
    for h in result.layers[0].heads:
        assert len(h.top) == 3 and not any(w.special for w in h.top)
        assert [w.weight for w in h.top] == sorted((w.weight for w in h.top), reverse=True)
    assert result.layers[0].focus == tuple(range(12))


def test_layer_all_and_negative_layers(model):
    assert [r.layer for r in inspect(model, SENTENCE, "it", layer="all").layers] == list(range(6))
    assert [r.layer for r in inspect(model, SENTENCE, "it", layer=-6).layers] == [0]


@pytest.mark.parametrize(
    "layer, message", [(6, "layer 6 is out of range: the model has 6 layers"), (-7, "layer -7 is out of range"), ("two", "`layer='two'` is not valid")]
)
def test_bad_layers(layer, message):
    with pytest.raises(InputError, match=message):
        select_layers(layer, 6)


def test_heads():
    assert parse_head("mean", 12) == "mean" and parse_head("AUTO", 12) == "auto" and parse_head("-1", 12) == 11
    with pytest.raises(InputError, match="head 12 is out of range: each layer has 12 heads"):
        parse_head(12, 12)
    with pytest.raises(InputError, match="^`head='x'` is not valid"):
        parse_head("x", 12)


def test_repeated_word_note(model):
    result = inspect(model, "The dog saw the dog.", "dog")
    assert result.query.token_indices == (2,)
    assert any("occurs 2 times" in n for n in result.notes)
    assert not inspect(model, "The dog saw the dog.", "dog#1").notes


def test_json_document(model, schema):
    result = inspect(model, SENTENCE, "making", layer="all", head="all", steps=True)
    doc = result.to_json()
    jsonschema.validate(doc, schema["$defs"]["inspect"] | {"$defs": schema["$defs"]})
    assert doc["query"] == {"text": "making", "token_indices": [5], "occurrence": 1, "occurrences": 1}
    assert len(doc["layers"]) == 6 and all(len(layer["heads"]) == 13 for layer in doc["layers"])
    head = doc["layers"][3]["heads"][7]
    assert head["head"] == 7
    np.testing.assert_array_equal(np.float32(head["weights"]), result.layers[3].head(7).weights)  # exact float32
    assert len(head["steps"]["keys"]) == 13 and len(head["steps"]["keys"][0]) == 32
    assert doc["layers"][0]["heads"][-1]["head"] == "mean" and doc["layers"][0]["heads"][-1]["scores"] is None


def test_word_level_sums_attention_to_split_words(model, schema):
    tokens = inspect(model, SENTENCE, "making", head="all")
    words = inspect(model, SENTENCE, "making", head="all", level="word")
    assert [u.text for u in words.units] == ["[CLS]", "The", "Transformer", "is", "making", "it", "possible", "to", "understand", "language", ".", "[SEP]"]
    for h in range(12):
        t, w = tokens.layers[0].head(h).weights, words.layers[0].head(h).weights
        assert w[2] == pytest.approx(t[2] + t[3], abs=1e-7)  # Transformer = transform + ##er
        np.testing.assert_array_equal(w[3:], t[4:])
        assert w.sum() == pytest.approx(1.0, abs=1e-6)
        assert words.layers[0].head(h).scores is None
    doc = words.to_json()
    jsonschema.validate(doc, schema["$defs"]["inspect"] | {"$defs": schema["$defs"]})
    assert doc["level"] == "word" and doc["units"][2] == {"text": "Transformer", "label": "Transformer", "token_indices": [2, 3], "word": 1, "special": False}
    assert len(doc["layers"][0]["heads"][0]["weights"]) == 12


def test_word_level_rejects_steps(model):
    with pytest.raises(InputError, match="^`steps=True` shows token vectors, so it cannot be used with `level='word'`$"):
        inspect(model, SENTENCE, "making", level="word", steps=True)


def test_value_norms_are_the_sizes_of_what_each_token_adds(model, schema):
    result = inspect(model, SENTENCE, "making", head=3, norms=True, top_k=12)
    head = result.layers[0].head(3)
    _, traces = full_trace(model, SENTENCE)
    last = traces[-1]
    weights = last.rows([5])[2][3, 0]  # (seq,)
    w_o = model.arch.output_projection(model.weights, 5)[3 * 32 : 4 * 32]  # head 3's rows, (d, hidden)
    contribution = weights[:, None] * last.v[3]  # (seq, d)
    np.testing.assert_allclose(head.value_norms, np.linalg.norm(contribution, axis=1), rtol=1e-5)
    np.testing.assert_allclose(head.output_norms, np.linalg.norm(contribution @ w_o, axis=1), rtol=1e-5)
    # a split word's norm is the norm of the sum of its tokens' vectors, not the sum of norms
    transformer = {w.text: w for w in head.top}["Transformer"]  # top_k=12: every word is listed
    assert transformer.output_norm == pytest.approx(float(np.linalg.norm((contribution[2] + contribution[3]) @ w_o)), rel=1e-5)
    assert transformer.weight == pytest.approx(float(weights[2] + weights[3]), rel=1e-6)
    doc = result.to_json()
    jsonschema.validate(doc, schema["$defs"]["inspect"] | {"$defs": schema["$defs"]})
    assert len(doc["layers"][0]["heads"][3]["output_norms"]) == 13 and "value_norm" in doc["layers"][0]["heads"][3]["top"][0]


def test_rank_by_output_norm_orders_the_top_words(model):
    result = inspect(model, SENTENCE, "making", head=6, rank_by="output_norm", top_k=12)
    top = result.layers[0].head(6).top
    assert [w.output_norm for w in top] == sorted((w.output_norm for w in top), reverse=True)
    assert result.rank_by == "output_norm" and top[0].text == "language"
    # [CLS] gets weight 0.11 but adds little: the norms rank it far lower than its weight does
    by_weight = [w.text for w in inspect(model, SENTENCE, "making", head=6, top_k=12).layers[0].head(6).top]
    assert by_weight.index("[CLS]") < [w.text for w in top].index("[CLS]")
    with pytest.raises(InputError, match="^`rank_by='size'` is not valid"):
        inspect(model, SENTENCE, "making", rank_by="size")

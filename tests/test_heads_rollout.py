"""`attn heads` (the model view) and `attn rollout`, checked against the forward pass."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import SENTENCE
from helpers import attn, make_tiny_bert, validate
from typer.testing import CliRunner

from attn_cli.cli import ExitStatus, app
from attn_cli.compute.heads import heads
from attn_cli.compute.rollout import attention_rollout
from attn_cli.errors import InputError
from attn_cli.loading.tokenizer import tokenize
from attn_cli.maths.analysis import rollout as full_rollout

CAT = "The cat sat on the mat because it was tired."
runner = CliRunner()


def mean_maps(model, text):
    tok = tokenize(model.tokenizer, text)
    return [t.rows()[2].mean(axis=0) for t in model.arch.forward(model.weights, model.spec, tok.ids)]


def test_heads_weight_on_key_is_the_forward_pass_weight(model, schema):
    result = heads(model, CAT, "it", key="cat")
    assert result.metric == "weight" and result.values.shape == (6, 12)
    tok = tokenize(model.tokenizer, CAT)
    traces = list(model.arch.forward(model.weights, model.spec, tok.ids))
    for layer in (0, 5):
        np.testing.assert_allclose(result.values[layer], traces[layer].rows([8])[2][:, 0, 2], rtol=1e-6)
    assert result.values[5, 11] == pytest.approx(0.71, abs=0.01)  # the coreference head: "it" -> "cat"
    validate(result.to_json(), schema, "heads")


def test_heads_top_and_entropy(model):
    top = heads(model, SENTENCE, "making", include_special=False)
    assert top.metric == "top" and not any(w.special for row in top.top for w in row)
    np.testing.assert_allclose(top.values, [[w.weight for w in row] for row in top.top])
    ent = heads(model, SENTENCE, "making", metric="entropy")
    assert ent.values.min() >= 0 and ent.values.max() <= np.log(13) + 1e-5
    assert ent.values[0, 2] < 0.05  # layer 0 head 2 looks only at the previous token


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"metric": "weight"}, "`metric='weight'` is each head's weight on a key word, and no `key` was given"),
        ({"metric": "size"}, "`metric='size'` is not valid"),
        ({"metric": "entropy", "key": "sat"}, "`key` is read by `metric='weight'` only, and `metric=entropy` does not use it"),
        ({"metric": "top", "key": "sat"}, "`key` is read by `metric='weight'` only, and `metric=top` does not use it"),
    ],
)
def test_heads_bad_options(model, kwargs, message):
    with pytest.raises(InputError) as info:
        heads(model, SENTENCE, "making", **kwargs)
    assert info.value.message == message


def test_grid_fits_80_columns_with_32_layers_and_32_heads(tmp_path):
    folder = make_tiny_bert(tmp_path / "wide", layers=32, heads=32, hidden=64)
    for args in ([], ["--metric", "entropy"], ["--key", "sat"]):
        result = runner.invoke(app, ["heads", "The cat sat.", "-q", "cat", "-m", str(folder), *args], env={"COLUMNS": "80"})
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert max(len(line) for line in lines) <= 80
        grids = 2 if not args else 1  # without colour, the top words' weights follow as a grid of their own
        assert sum(1 for line in lines if line[:3].strip().isdigit()) == 32 * grids  # one row per layer, no wrapping
    # inspect's multi-head table puts the heads that do not fit in a second block, unwrapped
    out = runner.invoke(app, ["inspect", "The cat sat.", "-q", "cat", "-m", str(folder)], env={"COLUMNS": "80"}).output
    assert max(len(line) for line in out.splitlines()) <= 80
    headers = [line.split() for line in out.splitlines() if line.startswith("# token")]
    assert len(headers) == 2 and headers[0][2:] + headers[1][2:] == [*map(str, range(32)), "mean"]


def test_rollout_row_equals_the_full_matrix_row(model, schema):
    result = attention_rollout(model, CAT, "it", full=True)
    expected = full_rollout(mean_maps(model, CAT))
    np.testing.assert_allclose(result.rollout, expected[8], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(result.full, expected, rtol=1e-5, atol=1e-7)
    assert result.rollout.sum() == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(result.last_layer, mean_maps(model, CAT)[-1][8], rtol=1e-6)
    validate(result.to_json(), schema, "rollout")


def test_rollout_at_word_level_and_for_a_split_query(model):
    tokens = attention_rollout(model, SENTENCE, "transformer")
    words = attention_rollout(model, SENTENCE, "transformer", level="word", full=True)
    assert words.rollout[2] == pytest.approx(tokens.rollout[2] + tokens.rollout[3], abs=1e-6)
    rows = full_rollout(mean_maps(model, SENTENCE))
    np.testing.assert_allclose(tokens.rollout, rows[[2, 3]].mean(axis=0), rtol=1e-5, atol=1e-7)
    assert words.full.shape == (12, 12)
    np.testing.assert_allclose(words.full.sum(axis=1), 1.0, rtol=1e-5)


def test_rollout_is_causal_for_decoders():
    from pathlib import Path

    from attn_cli.loading.model import load_model

    llama = load_model(Path(__file__).parent / "fixtures" / "tiny" / "llama")
    result = attention_rollout(llama, CAT, "sat", full=True)
    assert np.allclose(np.triu(result.full, k=1), 0)
    q = result.query.token_indices[0]
    assert np.all(result.rollout[q + 1 :] == 0) and result.rollout.sum() == pytest.approx(1.0, abs=1e-5)


def test_cli_heads_and_rollout(schema):
    p = attn("heads", CAT, "-q", "it", "--key", "cat", "--json")
    assert p.returncode == 0
    validate(json.loads(p.stdout), schema, "heads")
    p = attn("rollout", CAT, "-q", "it", "--level", "word", "--json")
    doc = json.loads(p.stdout)
    validate(doc, schema, "rollout")
    assert doc["units"][2]["text"] == "cat" and doc["full"] is None
    p = attn("heads", CAT, "-q", "dog")
    assert p.returncode == ExitStatus.QUERY_NOT_FOUND and "'dog' is not a word of the text" in p.stderr
    out = runner.invoke(app, ["rollout", CAT, "-q", "it"]).output
    assert "Attention rollout" in out and "▶ it" in out and "Top by rollout: [CLS]" in out


def test_a_decoders_rollout_names_the_sink_and_shows_where_attention_flows_without_it():
    from gguf_helpers import packaged_gguf

    from attn_cli.compute.rollout import attention_rollout, without_first_key
    from attn_cli.loading.model import load_model

    smollm2 = load_model(packaged_gguf("smollm2"))
    r = attention_rollout(smollm2, "The cat sat on the mat because it was tired.", "it")
    assert r.rollout[0] > 0.9 and r.top[0].token_indices == (0,)  # the sink: "The", the first token
    assert len(r.notes) == 1 and "attention sink" in r.notes[0]
    assert abs(float(r.without_sink.sum()) - 1.0) < 1e-5 and r.without_sink[0] < 0.1
    assert r.top_without_sink[0].token_indices != (0,)
    doc = r.to_json()
    assert doc["notes"] == list(r.notes) and len(doc["without_sink"]) == len(doc["units"])
    # The maps it multiplies: the first key's column gone from every row but the first, rows summing to 1.
    m = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.6, 0.2, 0.2]], dtype=np.float32)
    np.testing.assert_allclose(without_first_key([m])[0], [[1, 0, 0], [0, 1, 0], [0, 0.5, 0.5]])


def test_an_encoders_rollout_has_no_sink_column(model):
    r = attention_rollout(model, SENTENCE, "making")
    assert r.without_sink is None and r.notes == () and r.to_json()["without_sink"] is None

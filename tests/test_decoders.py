"""What the inspector shows for decoders: masked future, sliding window, GQA, RoPE, the sink."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from typer.testing import CliRunner

from attn_cli.cli import app
from attn_cli.compute.inspect import inspect
from attn_cli.loading.model import load_model
from attn_cli.loading.tokenizer import tokenize

TINY = Path(__file__).parent / "fixtures" / "tiny"
TEXT = "The cat sat on the mat because it was tired."
runner = CliRunner()


@pytest.fixture(scope="module")
def llama():
    return load_model(TINY / "llama")


@pytest.fixture(scope="module")
def mistral():
    return load_model(TINY / "mistral")


def test_future_is_masked_not_zero(llama, schema):
    result = inspect(llama, TEXT, "sat", head="all", steps=True)
    q = result.query.token_indices[0]
    layer = result.layers[0]
    assert layer.visible.tolist() == [j <= q for j in range(len(result.tokens))]
    for h in layer.heads[:-1]:
        assert np.all(np.isnan(h.scores[q + 1 :])) and np.all(np.isfinite(h.scores[: q + 1]))
        assert np.all(h.weights[q + 1 :] == 0)
        assert h.weights[: q + 1].sum() == pytest.approx(1.0, abs=1e-6)
        assert all(w.token_indices[0] <= q for w in h.top)  # hidden words are not ranked
    doc = result.to_json()
    jsonschema.validate(doc, schema["$defs"]["inspect"] | {"$defs": schema["$defs"]})
    head = doc["layers"][0]["heads"][0]
    assert head["scores"][q + 1 :] == [None] * (len(result.tokens) - q - 1)
    assert head["weights"][q + 1 :] == [0.0] * (len(result.tokens) - q - 1)
    assert doc["layers"][0]["visible"][: q + 2] == [True] * (q + 1) + [False]


def test_screen_shows_masked_rows_as_dashes(llama):
    out = runner.invoke(app, ["inspect", TEXT, "-q", "sat", "-m", str(TINY / "llama"), "--head", "0"]).output
    masked = next(line for line in out.splitlines() if "masked (future)" in line)
    assert masked.split()[0] == "4–24" and masked.count("—") == 3
    assert "0.000" not in masked


def test_sliding_window_masks_the_distant_past(mistral):
    assert mistral.spec.sliding_window == 4
    result = inspect(mistral, TEXT, "@12")
    visible = result.layers[0].visible
    assert np.flatnonzero(visible).tolist() == [9, 10, 11, 12]
    out = runner.invoke(app, ["inspect", TEXT, "-q", "@12", "-m", str(TINY / "mistral")]).output
    assert "0–8" in out and "masked (before window)" in out


def test_grouped_query_heads_name_their_key_value_head(llama):
    assert (llama.spec.heads, llama.spec.kv_heads) == (4, 2)
    result = inspect(llama, TEXT, "cat", head="all", steps=True)
    assert [h.kv_head for h in result.layers[0].heads[:-1]] == [0, 0, 1, 1]
    # heads 2 and 3 read the same keys and values
    np.testing.assert_array_equal(result.layers[0].head(2).steps.keys, result.layers[0].head(3).steps.keys)
    out = runner.invoke(app, ["inspect", TEXT, "-q", "cat", "-m", str(TINY / "llama"), "--head", "3"]).output
    assert "head 3, reads key/value head 1, shared by heads 2–3" in out


def test_steps_show_q_and_k_before_and_after_rope(llama):
    result = inspect(llama, TEXT, "sat", head=1, steps=True)
    steps = result.layers[0].head(1).steps
    assert steps.query_pre_rope is not None and steps.keys_pre_rope is not None
    # RoPE rotates: norms are kept, and position 0 is not rotated at all
    np.testing.assert_allclose(np.linalg.norm(steps.keys, axis=1), np.linalg.norm(steps.keys_pre_rope, axis=1), rtol=1e-5)
    np.testing.assert_allclose(steps.keys[0], steps.keys_pre_rope[0], rtol=1e-6)
    assert not np.allclose(steps.keys[3], steps.keys_pre_rope[3])
    doc = result.to_json()["layers"][0]["heads"][1]["steps"]
    assert len(doc["keys_pre_rope"]) == len(result.tokens) and len(doc["query_pre_rope"]) == llama.spec.head_dim
    out = runner.invoke(app, ["inspect", TEXT, "-q", "sat", "-m", str(TINY / "llama"), "--head", "1", "--steps"]).output
    assert "q(sat) before RoPE" in out and "k post-RoPE" in out


def test_bos_sink_is_visible_in_json_and_top(llama):
    result = inspect(llama, TEXT, "tired", layer=-1, head="all")
    doc = result.to_json()
    assert result.tokens[0].text == "<s>" and result.tokens[0].special
    for head in doc["layers"][0]["heads"]:
        assert head["first_token_weight"] == head["weights"][0]
    assert any(w.special and w.text == "<s>" for h in result.layers[0].heads for w in h.top)


def test_words_of_sentencepiece_and_byte_level_tokenizers_match_bert_words(llama, model):
    for m in (llama, load_model(TINY / "gpt2"), model):
        words = [w.text for w in tokenize(m.tokenizer, "The cat sat, because it wasn't tired.").words]
        assert words == ["The", "cat", "sat", ",", "because", "it", "wasn't", "tired", "."], m.name


def test_query_over_split_decoder_word(llama):
    result = inspect(llama, TEXT, "because", head=0)
    assert result.query.text == "because" and len(result.query.token_indices) > 1
    assert "because" in " ".join(result.notes)


def test_gpt2_has_no_special_tokens_and_its_first_word_is_the_sink_candidate():
    m = load_model(TINY / "gpt2")
    result = inspect(m, TEXT, "tired")
    assert not any(t.special for t in result.tokens)
    assert result.to_json()["layers"][0]["heads"][0]["first_token_weight"] == pytest.approx(float(result.layers[0].head(0).weights[0]))


def test_cli_json_for_every_architecture(schema):
    for folder in sorted(p for p in TINY.iterdir() if (p / "config.json").is_file()):
        result = runner.invoke(app, ["inspect", TEXT, "-q", "cat", "-m", str(folder), "--layer", "all", "--head", "all", "--steps", "--json"])
        assert result.exit_code == 0, (folder.name, result.output)
        doc = json.loads(result.stdout)
        jsonschema.validate(doc, schema)
        assert doc["model"]["architecture"] == json.loads((folder / "config.json").read_text())["model_type"]

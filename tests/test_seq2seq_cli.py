"""`attn inspect SOURCE --target TARGET --attention encoder|decoder|cross` on the tiny
encoder–decoder models: the weights in the JSON are transformers' (tests/fixtures/seq2seq/,
teacher-forced with `labels`), query positions are those of the query's own sequence, and models
without cross-attention refuse the options."""

from __future__ import annotations

import json

import pytest
from helpers import attn, validate
from option_registry import close, covers, run_json, runner
from test_seq2seq import SEQ2SEQ, ref

from attn_cli.cli import app
from attn_cli.compute.result import json_schema


def inspect_json(name: str, i: int, *args: str) -> dict:
    """inspect --json of pair i's source, every layer and head, with `args` (--target …)."""
    return run_json("inspect", str(ref(name, i)["source"]), "-m", str(SEQ2SEQ / name), "--layer", "all", "--head", "all", "--json", *args)


@covers("inspect --target", "inspect --attention")
@pytest.mark.parametrize("name", ["t5", "bart", "marian"])
def test_every_kind_of_attention_is_transformers_in_the_json(name):
    """A target token's decoder and cross-attention rows, and a source token's encoder row, in
    every layer and head; the JSON lists the decoder's input and says which attention it is."""
    r = ref(name, 1)
    t = 5  # a target position: the step that writes label 5
    for kind, key in (("decoder", "decoder_attentions"), ("cross", "cross_attentions")):
        doc = inspect_json(name, 1, "--target", str(r["target"]), "--query-index", str(t), "--attention", kind)
        assert doc["attention"] == kind and doc["query"]["token_indices"] == [t]
        assert [tok["id"] for tok in doc["decoder_tokens"]] == r["decoder_input_ids"].tolist()
        keys = r["decoder_input_ids"] if kind == "decoder" else r["input_ids"]
        assert [tok["id"] for tok in doc["tokens"]] == keys.tolist()
        for layer in doc["layers"]:
            for head in layer["heads"][:-1]:
                assert close(head["weights"], r[key][layer["layer"], head["head"], t]), (kind, layer["layer"], head["head"])
        validate(doc, json_schema(), "inspect")
    doc = inspect_json(name, 1, "--target", str(r["target"]), "--query-index", "3", "--attention", "encoder")
    assert doc["attention"] == "encoder" and [tok["id"] for tok in doc["tokens"]] == r["input_ids"].tolist()
    for layer in doc["layers"]:
        for head in layer["heads"][:-1]:
            assert close(head["weights"], r["encoder_attentions"][layer["layer"], head["head"], 3])


@covers("inspect --target")
def test_the_decoder_is_the_default_and_a_query_word_is_found_in_the_target():
    r = ref("bart", 0)  # source "The cat sat on the mat.", target "A lazy cat sat."
    doc = inspect_json("bart", 0, "--target", str(r["target"]), "-q", "cat")
    assert doc["attention"] == "decoder" and doc["target"] == "A lazy cat sat."
    (position,) = doc["query"]["token_indices"]
    assert doc["decoder_tokens"][position]["text"] == "cat"
    assert doc["decoder_tokens"][0]["text"] == "</s>"  # BART's decoder starts from </s>, then <s> A lazy …
    weights = doc["layers"][-1]["heads"][0]["weights"]
    assert close(weights, r["decoder_attentions"][-1, 0, position]) and all(w == 0 for w in weights[position + 1 :])


def test_the_cross_attention_screen_marks_no_source_token_and_says_what_it_shows():
    r = ref("t5", 0)
    result = runner.invoke(app, ["inspect", str(r["source"]), "-m", str(SEQ2SEQ / "t5"), "-t", str(r["target"]), "-q", "cat", "--attention", "cross"])
    assert result.exit_code == 0, result.output
    assert 'query "cat" = target token 5' in result.stdout and "cross-attention over the source" in result.stdout
    assert "scaled by 1 (T5 folds √d_k into W_Q)" in result.stdout
    assert "▶" not in result.stdout  # the query is a target token, not one of the source's rows


def test_an_encoder_decoder_without_a_target_shows_its_encoder_and_says_how_to_see_the_rest():
    r = ref("t5", 0)
    done = attn("inspect", str(r["source"]), "-m", str(SEQ2SEQ / "t5"), "-i", "3", "--json")
    assert done.returncode == 0 and "add --target TEXT" in done.stderr and "--attention cross" in done.stderr
    doc = json.loads(done.stdout)
    assert doc["attention"] == "encoder" and "decoder_tokens" not in doc
    assert close(doc["layers"][-1]["heads"][0]["weights"], r["encoder_attentions"][-1, 0, 3])


@pytest.mark.parametrize("args", [["--target", "Le chat."], ["--attention", "cross"]])
def test_models_without_cross_attention_refuse_target_and_attention(args):
    done = attn("inspect", "The cat sat.", "-q", "cat", *args)
    assert done.returncode == 2 and done.stdout == ""
    assert "has no cross-attention" in done.stderr and "bart, marian, t5" in done.stderr


def test_cross_or_decoder_attention_needs_a_target_and_a_kind_is_checked():
    folder = str(SEQ2SEQ / "t5")
    done = attn("inspect", "The cat sat.", "-m", folder, "-q", "cat", "--attention", "cross")
    assert done.returncode == 2 and "add --target TEXT" in done.stderr
    done = attn("inspect", "The cat sat.", "-m", folder, "-q", "cat", "--target", "A cat.", "--attention", "self", "--json")
    assert done.returncode == 2 and json.loads(done.stderr)["error"]["fix"] == "give one of encoder, decoder, cross"


@pytest.mark.parametrize("command", ["lens", "knockout"])
def test_decoder_only_commands_say_what_an_encoder_decoder_can_do_instead(command):
    done = attn(command, "The cat sat.", "-m", str(SEQ2SEQ / "t5"))
    assert done.returncode == 2 and f"t5 is an encoder–decoder model (t5): attn {command} reads decoder-only models" in done.stderr
    assert "attn inspect with --target TEXT" in done.stderr


def test_a_batch_line_takes_a_target_and_an_attention():
    """attn batch reads `target` and `attention` from a JSONL line: the same document as inspect's."""
    r = ref("marian", 0)
    line = json.dumps({"text": str(r["source"]), "target": str(r["target"]), "query_index": 4, "attention": "cross", "layer": "all", "head": "all"})
    done = attn("batch", "-", "-m", str(SEQ2SEQ / "marian"), stdin=line + "\n")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["attention"] == "cross" and doc["query"]["token_indices"] == [4]
    for layer in doc["layers"]:
        for head in layer["heads"][:-1]:
            assert close(head["weights"], r["cross_attentions"][layer["layer"], head["head"], 4])


@covers("batch --attention")
def test_batch_attention_is_every_lines_default():
    r = ref("bart", 1)
    line = {"text": str(r["source"]), "target": str(r["target"]), "query_index": 3}
    lines = [line, line | {"attention": "decoder"}]
    done = attn("batch", "-", "-m", str(SEQ2SEQ / "bart"), "--attention", "cross", "--head", "1", stdin="".join(json.dumps(x) + "\n" for x in lines))
    assert done.returncode == 0, done.stderr
    cross, decoder = (json.loads(line) for line in done.stdout.splitlines())
    assert (cross["attention"], decoder["attention"]) == ("cross", "decoder")
    assert close(cross["layers"][0]["heads"][1]["weights"], r["cross_attentions"][-1, 1, 3])
    assert close(decoder["layers"][0]["heads"][1]["weights"], r["decoder_attentions"][-1, 1, 3])

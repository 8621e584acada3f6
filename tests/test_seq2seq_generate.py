"""`attn generate` with encoder–decoder models: greedy ids and top-5 log-probabilities equal
transformers' `generate` (tests/fixtures/seq2seq/, 8 new tokens), the encoder's keys and values
computed once, the decoder's KV cache giving the rerun's numbers, and each step naming the source
word its cross-attention weighed most (last layer, mean over heads)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import attn, validate
from option_registry import close, covers, run_json
from test_seq2seq import SEQ2SEQ, ref

from attn_cli import api
from attn_cli.compute.result import json_schema
from attn_cli.maths.analysis import to_words

CASES = [(name, i) for name in ("t5", "bart", "marian") for i in range(3)]


@pytest.mark.parametrize(("name", "i"), CASES)
def test_greedy_ids_and_top_logprobs_are_transformers(name, i):
    r, model = ref(name, i), api.load_model(SEQ2SEQ / name)
    result = api.generate(model, str(r["source"]), max_new_tokens=8)
    assert [s.id for s in result.steps] == r["generated"].tolist()
    for step, ids, logprobs in zip(result.steps, r["top_ids"], r["top_logprobs"], strict=True):
        assert [c.id for c in step.top] == ids.tolist()
        assert np.abs(np.array([c.logprob for c in step.top]) - logprobs).max() <= 1e-4
    # The source word of each step: transformers' cross-attention row, last layer, mean over heads, summed per word.
    units = result.source.word_units
    for step, row in zip(result.steps, r["cross_rows"], strict=True):
        mass = to_words(row[-1].mean(axis=0), [list(u.token_indices) for u in units])
        assert step.attended.token_indices == units[int(np.argmax(mass))].token_indices
        assert abs(step.attended.weight - float(mass.max())) <= 1e-5


@pytest.mark.parametrize("name", ["t5", "bart"])
def test_without_the_cache_the_steps_are_the_same(name):
    r, model = ref(name, 1), api.load_model(SEQ2SEQ / name)
    cached = api.generate(model, str(r["source"]), max_new_tokens=5)
    rerun = api.generate(model, str(r["source"]), max_new_tokens=5, use_cache=False)
    assert [s.id for s in cached.steps] == [s.id for s in rerun.steps]
    assert np.abs(np.array([s.logprob for s in cached.steps]) - [s.logprob for s in rerun.steps]).max() <= 1e-5
    assert cached.cache_bytes == 3 * 6 * 4 * 16 * 2 * 4 if name == "t5" else cached.cache_bytes > 0  # decoder layers × positions × heads × d × k,v × 4
    assert rerun.cache_bytes == 0


def test_the_encoder_runs_once_per_generation(monkeypatch):
    model = api.load_model(SEQ2SEQ / "t5")
    calls = []
    original = type(model).memory
    monkeypatch.setattr(type(model), "memory", lambda self, ids: calls.append(len(ids)) or original(self, ids))
    api.generate(model, "The cat sat on the mat.", max_new_tokens=6)
    assert calls == [12]


def test_the_cli_lists_source_words_and_the_json_holds_the_source():
    r = ref("t5", 0)
    done = attn("generate", str(r["source"]), "-m", str(SEQ2SEQ / "t5"), "-n", "3", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    validate(doc, json_schema(), "generate")
    assert doc["source"] == str(r["source"]) and doc["attended_by"] == "cross-attention" and doc["prompt_tokens"] == 1
    assert [s["id"] for s in doc["steps"]] == r["generated"][:3].tolist() and doc["tokens"][0]["text"] == "<pad>"
    screen = attn("generate", str(r["source"]), "-m", str(SEQ2SEQ / "t5"), "-n", "3")
    assert "Source: The cat sat on the mat." in screen.stdout and "source word" in screen.stdout


@covers("generate --attention")
def test_query_inspects_a_written_token_in_the_decoder():
    """--query-index over the decoder's sequence (start token, then what it wrote), with
    --attention decoder: its causal self-attention, the rows of the decoder's teacher-forced
    pass over those ids."""
    r, model = ref("t5", 0), api.load_model(SEQ2SEQ / "t5")
    done = attn(
        "generate", str(r["source"]), "-m", str(SEQ2SEQ / "t5"), "-n", "5", "-i", "3", "--layer", "all", "--head", "all", "--attention", "decoder", "--json"
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    validate(doc, json_schema(), "generate")
    ids = [0, *r["generated"][:5].tolist()]
    assert [t["id"] for t in doc["tokens"]] == ids and doc["query"]["token_indices"] == [3] and doc["attention"] == "decoder"
    traces = list(model.trace_decoder(np.array(ids), model.memory(r["input_ids"])))
    for layer in doc["layers"]:
        for head in layer["heads"][:-1]:
            want = traces[layer["layer"]].rows([3])[2][head["head"], 0]
            assert np.abs(np.array(head["weights"]) - want).max() <= 1e-6


@covers("generate --query-index")
@pytest.mark.parametrize("name", ["t5", "bart", "marian"])
def test_query_shows_a_written_tokens_cross_attention_by_default(name):
    """Position p of the decoder's sequence is the step that wrote generated[p]: its
    cross-attention in every layer and head is transformers' row of that `generate` step."""
    r = ref(name, 1)
    p = 3
    done = attn("generate", str(r["source"]), "-m", str(SEQ2SEQ / name), "-n", "8", "-i", str(p), "--layer", "all", "--head", "all", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    validate(doc, json_schema(), "generate")
    assert doc["attention"] == "cross" and doc["query"]["token_indices"] == [p]
    assert [t["id"] for t in doc["source_tokens"]] == r["input_ids"].tolist()
    for layer in doc["layers"]:
        for head in layer["heads"][:-1]:
            assert close(head["weights"], r["cross_rows"][p, layer["layer"], head["head"]]), (layer["layer"], head["head"])


@covers("generate --query", "generate --attention")
@pytest.mark.parametrize("kind", ["cross", "decoder"])
def test_query_is_what_inspect_shows_of_the_written_text(kind):
    """`generate SOURCE -q WORD` equals `inspect SOURCE --target WRITTEN -q WORD --attention KIND`
    (Marian's tiny model writes "in in …", which tokenizes back to the ids it wrote)."""
    r = ref("marian", 0)
    model = str(SEQ2SEQ / "marian")
    args = ("-q", "in#3", "--layer", "all", "--head", "all", "--json")
    gen = run_json("generate", str(r["source"]), "-m", model, "-n", "8", *args, *(("--attention", "decoder") if kind == "decoder" else ()))
    written = gen["continuation"]
    seen = run_json("inspect", str(r["source"]), "-m", model, "--target", written, "--attention", kind, *args)
    assert [t["id"] for t in seen["decoder_tokens"]] == [t["id"] for t in gen["tokens"]]  # the same ids: the same positions
    assert gen["attention"] == seen["attention"] == kind and gen["query"] == seen["query"]
    assert gen["layers"] == seen["layers"] and gen["notes"] == seen["notes"]
    screen = attn("generate", str(r["source"]), "-m", model, "-n", "8", "-q", "in#3", *(("--attention", "decoder") if kind == "decoder" else ()))
    inspected = attn("inspect", str(r["source"]), "-m", model, "--target", written, "--attention", kind, "-q", "in#3")
    assert inspected.stdout.split("\n", 1)[1] in screen.stdout  # inspect's view, after its model line


@pytest.mark.parametrize(
    ("model", "args", "says"),
    [
        ("seq2seq/marian", ("-i", "2", "--attention", "encoder"), "--attention encoder is a source token's attention"),
        ("tiny/llama", ("-i", "2", "--attention", "cross"), "has no cross-attention"),
        ("seq2seq/marian", ("--attention", "cross"), "--attention is read only with --query or --query-index"),
    ],
)
def test_generate_attention_is_refused_where_it_means_nothing(model, args, says):
    done = attn("generate", "The cat sat.", "-m", str(SEQ2SEQ.parent / model), "-n", "3", *args)
    assert done.returncode == 2 and says in done.stderr and done.stdout == ""

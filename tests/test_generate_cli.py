"""`attn generate`, `attn lens` and `--chat` through the command line: documents valid against
the schema, the screen, and bad input as one line and exit 2."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import attn, validate
from option_registry import covers
from test_generate import tied_copy
from typer.testing import CliRunner

from attn_cli.cli import app
from attn_cli.compute.chat import chat_text
from attn_cli.compute.lens import lens
from attn_cli.errors import ModelError
from attn_cli.loading.chat import render_chat
from attn_cli.loading.model import load_model
from attn_cli.maths.sampling import log_softmax

runner = CliRunner()
TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{{ eos_token }}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A tiny Llama with an LM head (tied) and a chat template whose markers are special tokens."""
    path = tied_copy("llama", tmp_path_factory.mktemp("cli"))
    (path / "tokenizer_config.json").write_text(json.dumps({"chat_template": TEMPLATE, "bos_token": "<s>", "eos_token": {"content": "</s>"}}))
    return path


@covers("generate --max-new-tokens", "generate --json")
def test_generate_json_is_valid_and_complete(folder, schema):
    result = runner.invoke(app, ["generate", "The cat sat.", "-m", str(folder), "-n", "4", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    validate(doc, schema, "generate")
    assert len(doc["steps"]) == 4 and doc["stop_reason"] == "length" and doc["sampling"]["sample"] is False
    assert [s["position"] for s in doc["steps"]] == list(range(doc["prompt_tokens"], doc["prompt_tokens"] + 4))
    assert all(len(s["top"]) == 5 and s["top"][0]["logprob"] >= s["logprob"] for s in doc["steps"])
    assert "layers" not in doc


@covers("generate --query-index", "generate --layer")
def test_generate_with_a_query_carries_inspects_layers(folder, schema):
    result = runner.invoke(app, ["generate", "The cat sat.", "-m", str(folder), "-n", "3", "-i", "-2", "--layer", "all", "--json"])
    doc = json.loads(result.stdout)
    validate(doc, schema, "generate")
    assert doc["query"]["token_indices"] == [len(doc["tokens"]) - 2] and len(doc["layers"]) == 2
    head = doc["layers"][0]["heads"][0]
    assert head["scores"][-1] is None and head["weights"][-1] == 0  # the last token is its future
    assert doc["tokens"][-2]["generated"] is True


def test_generate_screen_lists_each_token(folder):
    result = runner.invoke(app, ["generate", "The cat sat.", "-m", str(folder), "-n", "3"])
    assert result.exit_code == 0
    doc = json.loads(runner.invoke(app, ["generate", "The cat sat.", "-m", str(folder), "-n", "3", "--json"]).stdout)
    for step in doc["steps"]:
        assert f"\n{step['position']} " in result.stdout or f" {step['position']} " in result.stdout
    assert "stopped at length" in result.stdout and "KV cache" in result.stdout


@covers("generate --seed")
def test_sampling_with_a_seed_is_the_same_text_in_two_processes(folder):
    args = ["generate", "The cat sat.", "-m", str(folder), "-n", "6", "--sample", "--temperature", "1.5", "--top-p", "0.95", "--seed", "11", "--json"]
    first, second = attn(*args), attn(*args)
    assert first.returncode == 0 and first.stdout == second.stdout
    assert json.loads(first.stdout)["sampling"] == {"sample": True, "temperature": 1.5, "top_k": None, "top_p": 0.95, "seed": 11}


@pytest.mark.parametrize(
    "args, message",
    [
        (["", "-n", "3"], "the text is empty"),
        (["The cat", "-n", "0"], "-n 0 is not valid"),
        (["The cat", "-n", "-2"], "-n -2 is not valid"),
        (["The cat", "--sample", "--top-k", "0"], "--top-k 0 is not valid"),
        (["The cat", "--sample", "--temperature", "0"], "--temperature 0.0 cannot be used with --sample"),
        (["The cat", "-n", "200"], "the model reads at most 128"),
        (["The cat", "--system", "Be brief."], "--system is a chat template's system message"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(folder, args, message):
    result = attn("generate", args[0], "-m", str(folder), *args[1:])
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("attn: error: ") and message in result.stderr and result.stderr.count("\n") == 1
    as_json = attn("generate", args[0], "-m", str(folder), *args[1:], "--json")
    assert as_json.returncode == 2 and json.loads(as_json.stderr)["error"]["code"] == "bad_input"


def test_an_encoder_cannot_generate(schema):
    result = attn("generate", "The cat sat.", "--json")  # the bundled MiniLM, a BERT encoder
    assert result.returncode == 2 and result.stdout == ""
    error = json.loads(result.stderr)
    validate(error, schema, "error")
    assert "encoder" in error["error"]["message"] and "cannot predict a next token" in error["error"]["message"]
    assert attn("lens", "The cat sat.").returncode == 2


@covers("inspect --chat", "generate --chat")
def test_chat_renders_the_template_with_special_tokens_marked(folder):
    model = load_model(folder)
    assert chat_text(model, "Hi there", "Be brief.") == "<s><|system|>Be brief.</s><|user|>Hi there</s><|assistant|>"
    result = runner.invoke(app, ["inspect", "Hi there", "--chat", "-m", str(folder), "-i", "-1", "--json"])
    doc = json.loads(result.stdout)
    specials = [t["text"] for t in doc["tokens"] if t["special"]]
    assert specials == ["<s>", "</s>"] and doc["text"].startswith("<s><|user|>Hi there</s>")
    gen = json.loads(runner.invoke(app, ["generate", "Hi there", "--chat", "-m", str(folder), "-n", "2", "--json"]).stdout)
    assert gen["chat"] is True and gen["tokens"][0]["text"] == "<s>" and gen["tokens"][0]["special"] is True


def test_a_model_without_a_template_cannot_chat(tmp_path):
    path = tied_copy("qwen2", tmp_path)
    result = attn("generate", "Hi", "--chat", "-m", str(path))
    assert result.returncode == 4 and "has no chat template" in result.stderr


def test_the_template_runs_in_a_sandbox():
    with pytest.raises(ModelError, match="sandbox"):
        render_chat("{{ messages.__class__.__mro__[1].__subclasses__() }}", [{"role": "user", "content": "x"}])
    with pytest.raises(ModelError, match="only user"):
        render_chat("{{ raise_exception('only user') }}", [])
    assert render_chat("{{ messages | tojson }}", [{"role": "user", "content": "<é>"}]) == '[{"role": "user", "content": "<é>"}]'


def test_lens_last_layer_is_the_models_prediction(folder, schema):
    model = load_model(folder)
    r = lens(model, "The cat sat.", top_k=3)
    traces = list(model.trace(np.array([t.id for t in r.tokenization.tokens])))
    logprobs = log_softmax(model.arch.logits(model.weights, model.spec, traces[-1].hidden[-1:])[0])
    assert [c.id for c in r.layers[-1].top] == np.argsort(-logprobs)[:3].tolist()
    first = json.loads(runner.invoke(app, ["generate", "The cat sat.", "-m", str(folder), "-n", "1", "--json"]).stdout)
    assert first["steps"][0]["id"] == r.layers[-1].top[0].id
    assert len(r.layers) == model.spec.layers and r.position == len(r.tokenization.tokens) - 1
    early = lens(model, "The cat sat.", query="cat")
    assert early.position == 2 and early.layers[0].top != r.layers[0].top
    doc = json.loads(runner.invoke(app, ["lens", "The cat sat.", "-m", str(folder), "--json"]).stdout)
    validate(doc, schema, "lens")
    assert [row["layer"] for row in doc["layers"]] == [0, 1]

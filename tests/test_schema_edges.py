"""Every command's --json against the shipped schema on the smallest inputs: one token (GPT-2
adds no BOS, so "a" is a whole text of one token), a query at either end, every layer and head,
an encoder, a decoder, and Gemma 3's sliding and global layers. A field the output can leave
null must be nullable in the schema, and the views must cope with what the schema allows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import validate
from typer.testing import CliRunner

from attn_cli.cli import app

TINY = Path(__file__).parent / "fixtures" / "tiny"
runner = CliRunner()

COMMANDS = {
    "inspect": [["inspect", "{text}", "-i", "0", "--layer", "all", "--head", "all", "--steps", "--norms", "--json"],
                ["inspect", "{text}", "-i", "-1", "--level", "word", "--json"]],
    "tokens": [["tokens", "{text}", "--json"]],
    "stats": [["stats", "{text}", "--json"]],
    "compare": [["compare", "{text}", "{text} b", "-q", "a", "--json"]],
    "heads": [["heads", "{text}", "-i", "0", "--metric", "entropy", "--json"], ["heads", "{text}", "-i", "-1", "--json"]],
    "rollout": [["rollout", "{text}", "-i", "0", "--full", "--json"]],
    "generate": [["generate", "{text}", "-n", "2", "--json"]],
    "lens": [["lens", "{text}", "--json"]],
}
DECODES = {"gpt2"}  # of these fixtures, the one with an LM head (tied to its embeddings)


@pytest.mark.parametrize("text", ["a", "a b"])
@pytest.mark.parametrize("model", ["gpt2", "bert", "gemma3"])
@pytest.mark.parametrize("kind", list(COMMANDS))
def test_every_json_document_is_valid_on_the_smallest_texts(schema, kind, model, text):
    if kind in ("generate", "lens") and model not in DECODES:
        pytest.skip("no LM head")
    for args in COMMANDS[kind]:
        result = runner.invoke(app, [a.format(text=text) for a in args] + ["-m", str(TINY / model)])
        assert result.exit_code == 0, result.output
        validate(json.loads(result.stdout), schema, kind)


def test_batch_and_errors_are_valid_on_the_smallest_texts(schema):
    result = runner.invoke(app, ["batch", "-", "-q", "a", "-m", str(TINY / "gpt2")], input="a\n\nb\n")
    docs = [json.loads(line) for line in result.stdout.splitlines()]
    assert [("error" in d) for d in docs] == [False, True, True]
    for doc in docs:
        validate(doc, schema, "error" if "error" in doc else "inspect")
    missing = runner.invoke(app, ["inspect", "a", "-q", "zzz", "--json", "-m", str(TINY / "gpt2")])
    validate(json.loads(missing.stderr), schema, "error")


def test_a_one_token_corpus_leaves_null_only_what_has_no_row_and_the_views_skip_it(schema):
    args = ["stats", "a", "-m", str(TINY / "gpt2")]
    doc = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    assert doc["tokens"] == 1
    nulls = {k for layer in doc["layers"] for head in layer["heads"] for k, v in head.items() if v is None}
    detectors = {"previous_token_mul", "previous_token_abs", "duplicate_token_mul", "duplicate_token_abs"}  # TransformerLens needs 2 tokens
    assert nulls == {"previous_token", "next_token", "entropy_normalised", "ablation", *detectors}  # ablation: only with --ablate
    validate(doc, schema, "stats")
    grid = runner.invoke(app, args).stdout
    assert "nan" not in grid.lower() and "SF self + first  1.00" in grid  # the strongest kind is one that has a mean
    rows = runner.invoke(app, [*args, "--format", "csv"]).stdout.splitlines()
    assert "0,0,previous_token," in rows and "0,0,self,1.0" in rows

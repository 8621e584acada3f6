"""`attn stats` and `attn compare` on the bundled MiniLM: every number is checked against the
forward pass itself or against `attn inspect`, through Typer's CliRunner and as a real process."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from conftest import SENTENCE
from helpers import attn, validate
from rich.console import Console
from typer.testing import CliRunner

from attn_cli.cli import app
from attn_cli.compute.stats import STAT_FIELDS, head_statistics
from attn_cli.loading.tokenizer import tokenize
from attn_cli.maths.analysis import HEAD_KINDS
from attn_cli.views.terminal.stats import stats_view

runner = CliRunner()
CAT, DOG = "The cat sat on the mat.", "The dog sat on the mat."
SECOND = "A dog chased the ball, and the cat watched."


def run_json(*args: str, stdin: str | None = None) -> dict:
    result = runner.invoke(app, [*args, "--json"], input=stdin)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def sentence_stats() -> dict:
    return run_json("stats", SENTENCE)


# --- attn stats ------------------------------------------------------------------------------


def test_stats_names_the_previous_token_head_of_layer_0(model, sentence_stats):
    tok = tokenize(model.tokenizer, SENTENCE)
    trace = next(model.arch.forward(model.weights, model.spec, tok.ids))  # layer 0
    w = trace.rows()[2][2].astype(np.float64)  # head 2, (seq, seq)
    seq = len(tok.tokens)
    # Recomputed by hand from the map: the mean over rows i ≥ 1 of the weight on token i − 1.
    previous = sum(w[i, i - 1] for i in range(1, seq)) / (seq - 1)
    assert previous > 0.9
    head = sentence_stats["layers"][0]["heads"][2]
    assert head["previous_token"] == pytest.approx(previous, rel=1e-6)
    assert head["self"] == pytest.approx(np.mean([w[i, i] for i in range(seq)]), rel=1e-6)
    assert head["next_token"] == pytest.approx(np.mean([w[i, i + 1] for i in range(seq - 1)]), rel=1e-5, abs=1e-7)
    assert head["first_token"] == pytest.approx(w[:, 0].mean(), rel=1e-6)
    assert head["special"] == pytest.approx((w[:, 0] + w[:, -1]).mean(), rel=1e-6)  # [CLS], [SEP]
    assert tok.tokens[-2].text == "." and head["punctuation"] == pytest.approx(w[:, -2].mean(), rel=1e-6)
    entropy = np.mean([-sum(p * np.log(p) for p in row if p > 0) for row in w])
    assert head["entropy"] == pytest.approx(entropy, rel=1e-5)
    assert sentence_stats["texts"] == 1 and sentence_stats["tokens"] == seq == 13

    named = sentence_stats["named"]
    assert {"layer": 0, "head": 2, "kind": "previous-token", "value": head["previous_token"]} in named
    values = [n["value"] for n in named]
    assert values == sorted(values, reverse=True) and min(values) >= 0.5


def test_stats_table_names_heads_and_shows_the_grid(sentence_stats):
    out = runner.invoke(app, ["stats", SENTENCE], env={"COLUMNS": "80"}).output
    lines = out.splitlines()
    # The named heads, heaviest first: layer 0 head 2 leads with its mass rounded.
    first = next(line for line in lines if "previous-token" in line)
    assert first.split()[:5] == ["0", "2", "P", "previous-token", f"{sentence_stats['layers'][0]['heads'][2]['previous_token']:.2f}"]
    row = next(line for line in lines if line.startswith("L0 "))
    assert row.split()[3] == "P1.0"  # head 2: P, mass ≥ 0.995
    mean_entropy = np.mean([h["entropy"] for h in sentence_stats["layers"][0]["heads"]])
    assert row.split()[-1] == f"{mean_entropy:.2f}"


def test_file_pools_texts_weighted_by_their_rows(tmp_path):
    one, two = run_json("stats", SENTENCE), run_json("stats", SECOND)
    path = tmp_path / "texts.txt"
    path.write_text(f"{SENTENCE}\n\n   \n{SECOND}\n", encoding="utf-8")  # blank lines are skipped
    both = run_json("stats", "--file", str(path))
    n1, n2 = one["tokens"], two["tokens"]
    assert both["texts"] == 2 and both["tokens"] == n1 + n2
    for layer in range(len(both["layers"])):
        for head in range(len(both["layers"][layer]["heads"])):
            for field in STAT_FIELDS:
                # Offsets ±1 exist for all rows but one per text; every other statistic, all rows.
                r1, r2 = (n1 - 1, n2 - 1) if field in ("previous_token", "next_token") else (n1, n2)
                a, b = one["layers"][layer]["heads"][head][field], two["layers"][layer]["heads"][head][field]
                got = both["layers"][layer]["heads"][head][field]
                assert got == pytest.approx((r1 * a + r2 * b) / (r1 + r2), rel=1e-5, abs=1e-7), (layer, head, field)
    # The same lines from stdin give the same document.
    assert run_json("stats", "--file", "-", stdin=path.read_text()) == both


def test_stats_json_validates(schema, sentence_stats):
    validate(sentence_stats, schema, "stats")
    assert [h["head"] for h in sentence_stats["layers"][5]["heads"]] == list(range(12))


def test_stats_input_errors(tmp_path):
    long_file = tmp_path / "long.txt"
    long_file.write_text("The cat sat.\n" + "word " * 600 + "\n")
    result = runner.invoke(app, ["stats", "--file", str(long_file)])
    assert result.exit_code == 2 and "line 2: the text is 602 tokens long" in result.output
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n")
    result = runner.invoke(app, ["stats", "--file", str(blank)])
    assert result.exit_code == 2 and "every line is blank" in result.output
    assert runner.invoke(app, ["stats"]).exit_code == 2  # neither TEXT nor --file
    assert runner.invoke(app, ["stats", SENTENCE, "--threshold", "1.5"]).exit_code == 2


# --- attn compare ----------------------------------------------------------------------------


def inspect_word_weights(text: str, query: str) -> dict[tuple[int, int], dict[str, float]]:
    """(layer, head) -> word (or special token) -> weight, from `attn inspect`'s top list."""
    doc = run_json("inspect", text, "-q", query, "--layer", "all", "--head", "all", "--top", "100")
    return {
        (layer["layer"], h["head"]): {w["text"]: w["weight"] for w in h["top"]}
        for layer in doc["layers"] for h in layer["heads"] if h["head"] != "mean"
    }


def check_against_inspect(doc: dict, expected_a: dict, expected_b: dict) -> None:
    """weights_a/_b equal inspect's word weights on each aligned word (0 where none), and diff
    is B − A in float32."""
    for layer in doc["layers"]:
        for h in layer["heads"]:
            key = (layer["layer"], h["head"])
            for k, (i, j) in enumerate(doc["alignment"]):
                assert h["weights_a"][k] == pytest.approx(0.0 if i is None else expected_a[key][doc["words_a"][i]], abs=1e-6)
                assert h["weights_b"][k] == pytest.approx(0.0 if j is None else expected_b[key][doc["words_b"][j]], abs=1e-6)
            diff = np.float32(h["weights_b"]) - np.float32(h["weights_a"])
            np.testing.assert_array_equal(diff, np.float32(h["diff"]))
            assert h["change"] == pytest.approx(np.abs(diff).sum(), rel=1e-5)


def test_compare_aligns_words_and_matches_inspect(schema):
    doc = run_json("compare", CAT, DOG, "-q", "sat")
    validate(doc, schema, "compare")
    assert doc["words_a"] == ["[CLS]", "The", "cat", "sat", "on", "the", "mat", ".", "[SEP]"]
    assert doc["words_b"][2] == "dog"
    assert doc["alignment"] == [[k, k] for k in range(9)]  # The/The, cat/dog, sat/sat, ...
    assert doc["query_a"] == doc["query_b"] == {"text": "sat", "token_indices": [3]}
    check_against_inspect(doc, inspect_word_weights(CAT, "sat"), inspect_word_weights(DOG, "sat"))
    ranked = doc["most_changed"]
    assert len(ranked) == 6 * 12
    assert [r["change"] for r in ranked] == sorted((r["change"] for r in ranked), reverse=True)
    top = ranked[0]
    assert top["change"] == doc["layers"][top["layer"]]["heads"][top["head"]]["change"]


def test_compare_split_query_insertions_and_query_b(schema):
    # A split word (transform ##er) averages its rows, as inspect does; B inserts "really" and
    # names its query with --query-b.
    text_b = "The Transformer is really making it possible to understand language."
    doc = run_json("compare", SENTENCE, text_b, "-q", "Transformer", "--query-b", "making", "--layer", "-1")
    validate(doc, schema, "compare")
    assert doc["query_a"]["token_indices"] == [2, 3] and doc["query_b"]["text"] == "making"
    inserted = doc["words_b"].index("really")
    assert [None, inserted] in doc["alignment"]
    assert [layer["layer"] for layer in doc["layers"]] == [5]
    check_against_inspect(doc, inspect_word_weights(SENTENCE, "Transformer"), inspect_word_weights(text_b, "making"))


def test_missing_query_names_the_text():
    p = attn("compare", CAT, "The dog ran away.", "--query", "sat")
    assert p.returncode == 3 and p.stdout == ""
    assert p.stderr.startswith("attn: error: not found in text B: 'sat'") and "--query-b" in p.stderr
    p = attn("compare", CAT, DOG, "-q", "bird", "--query-b", "dog", "--json")
    error = json.loads(p.stderr)["error"]
    assert p.returncode == 3 and error["code"] == "query_not_found" and error["message"].startswith("not found in text A:")


# --- Screens fit 80 columns ------------------------------------------------------------------


def test_table_views_fit_80_columns():
    for args in (["stats", SENTENCE], ["compare", CAT, "A big dog sat on the red mat.", "-q", "sat"]):
        p = attn(*args, env={"COLUMNS": "80"})
        assert p.returncode == 0, p.stderr
        lines = p.stdout.splitlines()
        assert len(lines) > 15 and max(len(line) for line in lines) <= 80
    assert "Layer 0 · head" in p.stdout and "Every layer" in p.stdout


def test_stats_grid_abbreviates_32_heads_within_80_columns(model):
    # A 32-head model's grid, drawn from a synthetic result: one letter per head, no wrapping.
    real = head_statistics(model, [(None, "The cat sat.")])
    kinds = {kind: np.zeros(32, np.float32) for kind in (*HEAD_KINDS, "entropy")}
    kinds["self"][:] = 0.6
    kinds["previous-token"][5] = 0.9
    fake = dataclasses.replace(real, model=dataclasses.replace(real.model, heads=32), layers=(kinds,) * 6, named=())
    console = Console(width=80, color_system=None)
    with console.capture() as capture:
        for part in stats_view(fake, console.width):
            console.print(part)
    lines = capture.get().splitlines()
    assert max(len(line) for line in lines) <= 80
    row = next(line for line in lines if line.startswith("L0 "))
    assert row.split()[1:33] == ["S"] * 5 + ["P"] + ["S"] * 26

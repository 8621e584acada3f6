"""`attn knockout` and `attn ablate` on the command line: their JSON against the schema, their
screens within the terminal's width, and their refusals (the numbers: tests/test_causal.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import attn, validate
from option_registry import covers

from attn_cli.compute.result import json_schema
from attn_cli.exit_status import ExitStatus

GPT2 = str(Path(__file__).parent / "fixtures" / "tiny" / "gpt2")
TEXT = "The quick brown fox looks at the lazy dog"


@covers("knockout TEXT", "knockout --model", "knockout --window", "knockout --json")
def test_knockout_json_is_a_schema_document_with_a_change_per_word_and_layer():
    p = attn("knockout", TEXT, "-m", GPT2, "--window", "1", "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    validate(doc, json_schema(), "knockout")
    assert [s["text"] for s in doc["sources"]] == TEXT.split()
    assert all(len(s["changes"]) == 2 and min(s["changes"]) >= -1 for s in doc["sources"])
    assert doc["target"]["chosen"] == "top-1" and doc["position"] == len(doc["tokens"]) - 1


@covers("knockout --source", "knockout --target")
def test_knockout_of_chosen_sources_and_a_given_target():
    p = attn("knockout", TEXT, "-m", GPT2, "--window", "1", "--source", "fox", "--source", "DOG", "-t", "0", "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert [s["text"] for s in doc["sources"]] == ["fox", "dog"] and doc["target"]["chosen"] == "given"


@covers("ablate TEXT", "ablate --query", "ablate --json")
def test_ablate_json_on_an_encoder_measures_cosine_distance():
    p = attn("ablate", "The cat sat on the mat.", "-q", "cat", "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    validate(doc, json_schema(), "ablate")
    changes = np.array([layer["changes"] for layer in doc["layers"]])
    assert doc["measure"] == "cosine_distance" and doc["target"] is None and changes.shape == (6, 12)
    assert (changes >= 0).all() and changes.max() > 0.01  # some head matters to "cat"


@covers("ablate --model", "ablate --mode")
def test_ablate_json_on_a_decoder_is_the_target_logprob_change():
    p = attn("ablate", TEXT, "-m", GPT2, "--mode", "mean", "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    validate(doc, json_schema(), "ablate")
    assert doc["measure"] == "logprob" and doc["mode"] == "mean" and doc["target"]["logprob"] <= 0


@covers("ablate --mean-over")
def test_ablate_mean_over_a_file_of_texts(tmp_path):
    """--mean-over FILE: the library's mean_over with the file's non-blank lines."""
    from attn_cli.compute.ablate import ablate
    from attn_cli.loading.model import load_model

    texts = ["A dog runs in the park", "The lazy fox sleeps"]
    data = tmp_path / "texts.txt"
    data.write_text(f"{texts[0]}\n\n{texts[1]}\n", encoding="utf-8")
    p = attn("ablate", TEXT, "-m", GPT2, "--mode", "mean", "--mean-over", str(data), "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    validate(doc, json_schema(), "ablate")
    want = ablate(load_model(GPT2), TEXT, mode="mean", mean_over=texts).changes
    assert np.allclose([layer["changes"] for layer in doc["layers"]], want, atol=1e-6)
    assert doc["mean_over"] == 2  # the blank line is no text; a per-text mean says null
    assert json.loads(attn("ablate", TEXT, "-m", GPT2, "--mode", "mean", "--json").stdout)["mean_over"] is None
    needs_mean = "attn: error: --mean-over needs --mode mean (the mode is 'zero') — give --mode mean with --mean-over, or leave --mean-over out\n"
    for args, message in ([["--mean-over", str(data)], needs_mean], [["--mode", "mean", "--mean-over", str(tmp_path / "none.txt")], "cannot read"]):
        p = attn("ablate", TEXT, "-m", GPT2, *args)
        assert p.returncode == ExitStatus.USAGE and message in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr


@pytest.mark.parametrize("columns", ["40", "80"])
@pytest.mark.parametrize("command", ["knockout", "ablate"])
def test_screens_fit_the_width(command, columns):
    p = attn(command, TEXT, "-m", GPT2, *(["--window", "1"] if command == "knockout" else []), env={"COLUMNS": columns, "NO_COLOR": "1"})
    assert p.returncode == 0, p.stderr
    assert all(len(line) <= int(columns) for line in p.stdout.splitlines()), p.stdout
    assert ("Biggest drops" if command == "knockout" else "Matter most") in p.stdout


@pytest.mark.parametrize(
    "args, status, message",
    [
        (["knockout", TEXT], ExitStatus.USAGE, "is an encoder"),  # the bundled MiniLM
        (["knockout", "Hello", "-m", GPT2], ExitStatus.USAGE, "one word"),
        (["knockout", TEXT, "-m", GPT2, "--window", "0"], ExitStatus.USAGE, "window of 0"),
        (["knockout", TEXT, "-m", GPT2, "--source", "cat"], ExitStatus.USAGE, "no word of the text is 'cat'"),
        # one missing source among found ones was dropped without a word
        (["knockout", TEXT, "-m", GPT2, "--source", "fox", "--source", "cat"], ExitStatus.USAGE, "no word of the text is 'cat'"),
        # a word of the text after the explained position was said to be no word of the text
        (["knockout", TEXT, "-m", GPT2, "-q", "fox", "--source", "dog"], ExitStatus.USAGE, "'dog' comes after the explained position (token 4, 'fox')"),
        (["ablate", TEXT], ExitStatus.USAGE, "no query given"),  # an encoder: no last, predicting position
        (["knockout", TEXT, "-m", GPT2, "-t", "quick brown"], ExitStatus.USAGE, "not one"),
        (["ablate", TEXT, "-m", GPT2, "--target-id", "999999"], ExitStatus.USAGE, "not in the vocabulary"),
        (["ablate", TEXT, "-t", "dog"], ExitStatus.USAGE, "is an encoder"),
        (["ablate", TEXT, "-m", GPT2, "--mode", "half"], ExitStatus.USAGE, "mode 'half'"),
    ],
)
def test_refusals_are_one_line_with_the_usage_status(args, status, message):
    for extra in ([], ["--json"]):
        p = attn(*args, *extra)
        assert p.returncode == status and p.stdout == "", p.stderr
        assert message in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr


@covers("knockout --query", "knockout --query-index", "knockout --target-id", "ablate --query-index", "ablate --target", "ablate --target-id")
def test_the_explained_position_and_target_chosen_by_each_option():
    by_word = json.loads(attn("knockout", TEXT, "-m", GPT2, "--window", "1", "-q", "fox", "--json").stdout)
    by_index = json.loads(attn("knockout", TEXT, "-m", GPT2, "--window", "1", "-i", "4", "--target-id", str(by_word["target"]["id"]), "--json").stdout)
    assert by_word["position"] == by_index["position"] == 4 and [s["text"] for s in by_word["sources"]] == TEXT.split()[:4]
    assert by_word["sources"] == by_index["sources"]
    first = json.loads(attn("ablate", TEXT, "-m", GPT2, "-i", "4", "--target-id", str(by_word["target"]["id"]), "--json").stdout)
    again = json.loads(attn("ablate", TEXT, "-m", GPT2, "-i", "4", "-t", by_word["target"]["text"], "--json").stdout)
    assert first["position"] == 4 and first["layers"] == again["layers"] and again["target"]["chosen"] == "given"


def test_knockout_window_wider_than_the_model_says_all_its_layers():
    """--window 100 on a 2-layer model: the screen said "blocked in 100 layers"."""
    p = attn("knockout", TEXT, "-m", GPT2, "--window", "100")
    assert p.returncode == 0, p.stderr
    assert "are blocked in all 2 layers (--window 100)" in " ".join(p.stdout.split())
    one = " ".join(attn("knockout", TEXT, "-m", GPT2, "--window", "1").stdout.split())
    assert "are blocked in 1 layer word" in one

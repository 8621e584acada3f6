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


@covers("knockout --target-id", "knockout --query", "knockout --query-index", "ablate --target", "ablate --target-id", "ablate --query-index")
def test_a_target_and_a_position_given_by_text_id_or_index():
    """The same target and position, by text or id, by word or index, give the same numbers."""
    base = ["-m", GPT2, "--json"]
    by_id = json.loads(attn("knockout", TEXT, *base, "--window", "1", "--target-id", "0", "-q", "lazy").stdout)
    by_index = json.loads(attn("knockout", TEXT, *base, "--window", "1", "--target-id", "0", "-i", str(by_id["position"])).stdout)
    assert by_id["target"]["chosen"] == "given" and by_id["sources"] == by_index["sources"]
    by_text = json.loads(attn("ablate", TEXT, *base, "-t", by_id["target"]["text"], "-i", "3").stdout)
    by_number = json.loads(attn("ablate", TEXT, *base, "--target-id", "0", "-i", "3").stdout)
    assert by_text["position"] == 3 and by_text["layers"] == by_number["layers"]


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
        (["knockout", TEXT, "-m", GPT2, "--source", "cat"], ExitStatus.USAGE, "no word of the text"),
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

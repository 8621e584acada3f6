"""What a user reads at 40, 60 and 80 columns: numbers whole, words beside their weights, the
weights there without colour, and the default screen's last lines."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from attn_cli.cli import app

TINY = Path(__file__).parent / "fixtures" / "tiny"
SENTENCE = "The Transformer is making it possible to understand language."
runner = CliRunner()


def screen(*args: str, width: int = 80) -> str:
    result = runner.invoke(app, list(args), env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("width", [40, 60, 80])
@pytest.mark.parametrize("extra", [[], ["--norms"]])
def test_step_two_never_cuts_a_number(width, extra):
    out = screen("inspect", SENTENCE, "-q", "making", *extra, width=width)
    doc = json.loads(screen("inspect", SENTENCE, "-q", "making", "--json", *extra))
    head = next(h for h in doc["layers"][0]["heads"] if h["head"] == doc["layers"][0]["auto_head"])
    rows = [line for line in out.splitlines() if re.match(r"^\s*\d+\s+(▶ )?\S", line)][: len(doc["tokens"])]
    for row, score, weight in zip(rows, head["scores"], head["weights"]):
        assert f"{score:.2f}" in row and f"{weight:.3f}" in row, row
    assert not re.search(r"\d…", out)


@pytest.mark.parametrize("width", [40, 60, 80])
def test_a_top_word_is_never_parted_from_its_weight(width):
    out = screen("inspect", SENTENCE, "-q", "making", width=width)
    doc = json.loads(screen("inspect", SENTENCE, "-q", "making", "--json"))
    mean = doc["layers"][0]["heads"][-1]
    lines = out.splitlines()
    for word in mean["top"]:
        assert any(f"{word['text']} {word['weight']:.2f}" in line for line in lines), word


def test_heads_without_colour_shows_the_weights_as_numbers():
    out = screen("heads", "The cat sat on the mat.", "-q", "sat", "-m", str(TINY / "bert"))
    doc = json.loads(screen("heads", "The cat sat on the mat.", "-q", "sat", "-m", str(TINY / "bert"), "--json"))
    weights = out.split("Their weights")[1]
    first = doc["layers"][0]["heads"][0]["value"]
    assert ("1.0" if first >= 0.995 else f"{first:.2f}"[1:]) in weights.splitlines()[2]


def test_head_numbers_too_long_for_a_cell_are_written_downwards():
    out = screen("stats", "The cat sat on the mat.", width=60)
    tens, units = _grid_header(out)
    assert tens.split() == ["1", "1"] and units.split()[:12] == [str(h % 10) for h in range(12)]


def _grid_header(out: str) -> tuple[str, str]:
    lines = out.splitlines()
    k = next(i for i, line in enumerate(lines) if line.rstrip().endswith("nats"))
    return lines[k - 1], lines[k].replace("nats", "")


def test_models_gives_layers_and_heads_and_whole_paths():
    out = screen("models", width=40)
    assert "6 layers × 12 heads" in " ".join(out.split())
    assert any(line.strip().endswith("attn_cli/bundled/all-MiniLM-L6-v2") and line.strip().startswith("/") for line in out.splitlines())


def test_the_default_screen_ends_the_story():
    out = screen("inspect", "The cat sat.", "-q", "cat")
    assert "Σ weights = 1.000" in out
    assert "colour: weight" not in out  # piped: no colours to explain (tests/test_legends.py)
    assert out.rstrip().endswith("--steps adds step 1 (the q, k, v vectors) and step 3 (output = Σ weights·v)")
    assert "--steps adds" not in screen("inspect", "The cat sat.", "-q", "cat", "--steps")


def test_rollout_shows_a_decoders_future_as_inspect_does():
    out = screen("rollout", "The cat sat on the mat.", "-q", "cat", "-m", str(TINY / "llama"))
    assert "masked (future)" in out and " 0.000 " not in out


def test_compare_shows_a_decoders_future_as_masked():
    out = screen("compare", "The cat sat on the mat.", "The dog sat on the rug.", "-q", "sat", "-m", str(TINY / "llama"))
    on = next(line for line in out.splitlines() if line.startswith("on "))
    assert on.split()[:5] == ["on", "—", "on", "—", "—"]


def test_generate_never_parts_an_alternative_from_its_probability(tmp_path):
    """The alternatives column wraps between alternatives (it once broke "New" from "0.01")."""
    from test_generate import tied_copy

    llama = str(tied_copy("llama", tmp_path))  # the tiny llama with its LM head tied, so that it writes
    for columns in ("60", "80"):
        out = CliRunner().invoke(app, ["generate", "The cat sat on the", "-m", llama, "-n", "4", "--top", "6"], env={"COLUMNS": columns})
        assert out.exit_code == 0, out.output
        lines = out.stdout.splitlines()
        start = next(i for i, line in enumerate(lines) if line.startswith("───")) + 1
        stop = next(i for i, line in enumerate(lines) if "stopped at" in line)
        rows = [line for line in lines[start:stop] if "·" in line]  # the table's rows
        assert rows
        for line in rows:  # every piece between separators is a token and its probability
            for piece in line.split("·")[:-1]:
                assert re.search(r"\S+ [01]\.\d\d\s*$", piece), (columns, line)

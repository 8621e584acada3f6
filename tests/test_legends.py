"""The legends say what the screen shows, and only that: the colour scale where there are
colours, `·` = masked where something is masked (a decoder's future, or keys outside a sliding
window, which are explained under the table), and one display form of a newline, ↵, in every
view."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from attn_cli.cli import app

TINY = Path(__file__).parent / "fixtures" / "tiny"
SENTENCE = "The Transformer is making it possible to understand language."
runner = CliRunner()


def screen(*args: str, **env: str) -> str:
    result = runner.invoke(app, list(args), env={"COLUMNS": "100", **env})
    assert result.exit_code == 0, result.output
    return result.stdout


def test_the_colour_scale_is_shown_only_where_there_are_colours():
    coloured = screen("inspect", SENTENCE, "-q", "making", FORCE_COLOR="1")
    assert "colour: weight" in coloured and "\x1b[" in coloured
    no_color = screen("inspect", SENTENCE, "-q", "making", FORCE_COLOR="1", NO_COLOR="1")
    assert "\x1b[3" not in no_color and "\x1b[4" not in no_color  # no colour at all …
    assert "colour: weight" not in no_color  # … so nothing to explain
    assert "colour: weight" not in screen("inspect", SENTENCE, "-q", "making")  # piped


def test_an_encoder_masks_nothing_and_says_nothing_about_masks():
    for env in ({}, {"FORCE_COLOR": "1"}):
        out = screen("inspect", SENTENCE, "-q", "making", **env)
        assert "masked" not in out and "decoder" not in out


def test_a_decoder_names_its_masked_future():
    for env in ({}, {"FORCE_COLOR": "1"}):
        out = screen("inspect", "the cat sat on the mat", "-i", "2", "-m", str(TINY / "llama"), **env)
        assert "masked (future)" in out
        assert "· = masked: the decoder's future" in out


def test_rows_before_a_sliding_window_are_explained():
    """Gemma 3's sliding layers (the tiny one's window is 4): a query at token 9 sees 6–9."""
    out = screen("inspect", "the cat sat on the mat and the dog sat too", "-i", "9", "--layer", "all", "-m", str(TINY / "gemma3"))
    assert any(line.split()[:3] == ["0–5", "masked", "(before"] for line in out.splitlines())
    note = "masked (before window): tokens 0–5 fall outside the sliding window of layer 0: there a query sees only the last 4 tokens, itself included"
    assert note in " ".join(out.split())
    assert "· = masked: the decoder's future or outside the layer's sliding window" in " ".join(out.split())
    assert "sliding window of layer 1" not in out  # the global layer masks only the future


def test_a_newline_token_reads_the_same_in_inspect_and_generate():
    from attn_cli.views.terminal.generate import _shown

    out = screen("inspect", "the cat\nsat", "-i", "-1", "-m", str(TINY / "gpt2"))
    assert "↵" in out and "\\n" not in out
    assert _shown("\n") == "↵" and _shown("\n\n") == "↵↵" and _shown(".\n") == ".↵" and _shown("\t") == "⇥"
    assert _shown(" ") == "␣" and _shown("") == "∅" and _shown("\x1b") == "\\x1b"


def test_generate_shows_newlines_as_inspect_does():
    from attn_cli.loading.packaged import is_installed

    if not is_installed("smollm2"):
        pytest.skip("smollm2 is not installed (uv sync --group test)")
    out = screen("generate", "The capital of France is", "-m", "smollm2", "-n", "4")
    table = out.split("───")[-1]
    assert "↵" in table and "\\n" not in table

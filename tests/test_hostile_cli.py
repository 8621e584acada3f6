"""Hostile input found by using attn as a newcomer would, then attacking it: each case is one
line on stderr naming the problem and the fix, a documented exit status, nothing on stdout,
never an "unexpected" error (exit 1)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from attn_cli.cli import ExitStatus, app

TINY = Path(__file__).parent / "fixtures" / "tiny"
BERT, LLAMA = (str(TINY / n) for n in ("bert", "llama"))
runner = CliRunner()


def invoke(*args: str, stdin: bytes | str | None = None):
    return runner.invoke(app, list(args), input=stdin)


def assert_usage_error(result, *needles: str) -> None:
    assert result.exit_code == ExitStatus.USAGE, result.stderr
    assert result.stdout == ""
    line = result.stderr.strip()
    assert "\n" not in line and line.startswith("attn: error: ") and "unexpected" not in line
    for needle in needles:
        assert needle in line


# --- seeds NumPy refuses --------------------------------------------------------------------------

def test_a_negative_sampling_seed_is_a_usage_error_not_a_crash():
    result = invoke("generate", "The cat", "-m", LLAMA, "--sample", "--seed", "-1", "-n", "1")
    assert_usage_error(result, "--seed -1 is not valid", "give --seed 0 or more")


def test_a_negative_induction_seed_is_refused_before_the_corpus_runs(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("The cat sat.\nThe dog ran.\n", encoding="utf-8")
    for args in (["The cat sat."], ["--file", str(corpus)]):
        result = invoke("stats", *args, "-m", BERT, "--seed", "-1")
        assert_usage_error(result, "--seed -1 is not valid", "give --seed 0 or more")

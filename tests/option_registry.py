"""Which test passes which CLI option, checked against the real Typer commands.

A test that drives an option through the command line and asserts a value it produces is
marked `@covers("inspect --no-special", ...)`. `test_option_coverage.py` reads these marks
from the test files' source (no import needed) and fails when a command's option (or
argument) has no test, or when a mark names an option that does not exist. A new option
without a test therefore fails CI.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

TINY = Path(__file__).parent / "fixtures" / "tiny"
MINILM = Path(__file__).parent / "fixtures" / "minilm"
runner = CliRunner()


def covers(*keys: str):
    """Mark a test as covering CLI options, each "command --option" or "command ARG"."""

    def mark(test):
        test.covers = keys
        return test

    return mark


def ref(name: str, i: int) -> dict:
    """The reference tensors transformers computed for tiny model `name`, input i."""
    return dict(np.load(TINY / name / f"ref_{i}.npz"))


def invoke(*args: str, input: str | None = None):
    """Run a command in-process; assert it succeeded."""
    from attn_cli.cli import app

    result = runner.invoke(app, list(args), input=input)
    assert result.exit_code == 0, (result.exit_code, result.output, result.exception)
    return result


def run_json(*args: str, input: str | None = None) -> dict:
    return json.loads(invoke(*args, input=input).stdout)


def close(ours, want, tol: float = 1e-5) -> bool:
    ours = np.array([np.nan if x is None else x for x in ours], dtype=np.float64) if isinstance(ours, list) else np.asarray(ours, np.float64)
    want = np.asarray(want, dtype=np.float64)
    return ours.shape == want.shape and bool(np.all((np.abs(ours - want) <= tol) | (np.isnan(ours) & np.isnan(want))))

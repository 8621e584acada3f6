"""The ways out that no ordinary input reaches: an unexpected error (a bug) exits 1 in one
line, ATTN_DEBUG=1 shows its traceback, and `-` with a terminal (not a pipe) as stdin is an
input error. main() is run in-process where the process is not the point."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys

import pytest

from attn_cli.cli import main

BOOM = "import attn_cli.compute.inspect as m\ndef boom(*a, **k): raise RuntimeError('planted failure')\nm.inspect_with = boom\n"


def _boom(*args, **kwargs):
    raise RuntimeError("planted failure")


def run_main(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["attn", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


@pytest.fixture
def broken(monkeypatch):
    import attn_cli.compute.inspect as compute

    monkeypatch.delenv("ATTN_DEBUG", raising=False)
    monkeypatch.setattr(compute, "inspect_with", _boom)


def test_an_unexpected_error_exits_1_in_one_line(broken, monkeypatch, capsys):
    code, out, err = run_main(monkeypatch, capsys, "inspect", "The cat sat.", "-q", "cat")
    assert code == 1 and out == ""
    assert err.startswith("attn: error: unexpected RuntimeError: planted failure — ") and "ATTN_DEBUG=1" in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_an_unexpected_error_with_json_is_a_json_error(broken, monkeypatch, capsys):
    code, out, err = run_main(monkeypatch, capsys, "inspect", "The cat sat.", "-q", "cat", "--json")
    assert code == 1 and out == ""
    error = json.loads(err)["error"]
    assert error["code"] == "internal" and error["exit_status"] == 1 and "planted failure" in error["message"]


def test_attn_debug_shows_the_traceback():
    """A real process: Python prints the traceback of the planted failure and exits 1."""
    entry = BOOM + "from attn_cli.cli import main\nmain()\n"
    args = [sys.executable, "-c", entry, "inspect", "The cat sat.", "-q", "cat"]
    plain = subprocess.run(args, capture_output=True, text=True, env={k: v for k, v in os.environ.items() if k != "ATTN_DEBUG"}, timeout=120)
    debug = subprocess.run(args, capture_output=True, text=True, env={**os.environ, "ATTN_DEBUG": "1"}, timeout=120)
    assert plain.returncode == 1 and "Traceback" not in plain.stderr and plain.stderr.count("\n") == 1
    assert debug.returncode == 1 and plain.stdout == debug.stdout == ""
    assert "Traceback (most recent call last)" in debug.stderr and debug.stderr.rstrip().endswith("RuntimeError: planted failure")


def test_dash_with_a_terminal_as_stdin_says_nothing_is_piped():
    """stdin is a real pseudo-terminal, as when a user types `attn inspect - -q it` alone."""
    leader, follower = pty.openpty()
    try:
        p = subprocess.run(
            [sys.executable, "-c", "from attn_cli.cli import main; main()", "inspect", "-", "-q", "it"],
            stdin=follower, capture_output=True, text=True, timeout=30,  # a read from the terminal would hang: fail instead
        )
    finally:
        os.close(follower)
        os.close(leader)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.startswith("attn: error: TEXT is - but nothing is piped to stdin — pipe the text in")


@pytest.mark.parametrize("spelling", [["--format=json"], ["-f", "json"], ["--format", "json"], ["--json"]])
def test_a_usage_error_asked_for_as_json_is_a_json_error(monkeypatch, capsys, spelling):
    """Every spelling of JSON output is seen before parsing, so even a bad option answers in JSON."""
    code, out, err = run_main(monkeypatch, capsys, "inspect", "The cat sat.", "-q", "cat", *spelling, "--bogus")
    error = json.loads(err)["error"]
    assert code == 2 and out == "" and error["code"] == "usage" and error["exit_status"] == 2
    assert "--bogus" in error["message"] and error["fix"] == "see `attn inspect --help`"


def test_json_errors_keep_non_ascii_and_list_candidates(monkeypatch, capsys):
    code, _, err = run_main(monkeypatch, capsys, "inspect", "Ein naïver Satz.", "-q", "über", "--json")
    assert code == 3 and "über" in err and "\\u" not in err
    assert json.loads(err)["error"]["candidates"] == ["Ein", "naïver", "Satz", "."]


def test_a_plain_error_is_exactly_one_line(monkeypatch, capsys):
    code, out, err = run_main(monkeypatch, capsys, "inspect", "The cat sat.", "-q", "dog")
    assert code == 3 and out == ""
    assert re.fullmatch(r"attn: error: 'dog' is not a word of the text[^\n]* — [^\n]+\n", err), err

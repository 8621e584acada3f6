"""The width the CLI is given, three ways: COLUMNS on a pipe (the plain screen, where it can),
COLUMNS with FORCE_COLOR (Rich, in colour), and a real terminal of that size (a pty, no
COLUMNS): every line fits, no number is cut. tests/test_screen_widths.py checks the values."""

from __future__ import annotations

import fcntl
import os
import re
import struct
import subprocess
import sys
import termios

import pytest
from rich.cells import cell_len
from typer.testing import CliRunner

from attn_cli.cli import app

SENTENCE = "The Transformer is making it possible to understand language."
WIDTHS = [40, 60, 80, 120]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
CUT = re.compile(r"[\d.]…|…[\d.]")
COMMANDS = [
    ["inspect", SENTENCE, "-q", "making"],
    ["inspect", SENTENCE, "-q", "making", "--steps"],
    ["inspect", SENTENCE, "-q", "making", "--norms"],
    ["inspect", SENTENCE, "-q", "making", "--level", "word"],
    ["heads", SENTENCE, "-q", "making"],
    ["rollout", SENTENCE, "-q", "making"],
    ["stats", SENTENCE],
    ["compare", "The cat sat on the mat.", "The dog sat on the rug.", "-q", "sat"],
]
runner = CliRunner()


def assert_fits(out: str, width: int, what) -> None:
    lines = ANSI.sub("", out).replace("\r", "").splitlines()
    assert lines, what
    for line in lines:
        assert cell_len(line) <= width and not CUT.search(line), (what, width, line)


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a[i] for i in (0, *range(2, len(a))) if not a[i].startswith("The")))
def test_columns_piped_and_coloured(args):
    for width in WIDTHS:
        for env in ({"COLUMNS": str(width)}, {"COLUMNS": str(width), "FORCE_COLOR": "1"}):
            result = runner.invoke(app, args, env=env)
            assert result.exit_code == 0, result.output
            assert_fits(result.stdout, width, env)


def on_a_terminal(args: list[str], columns: int, rows: int = 200) -> str:
    """What attn prints on a terminal `columns` wide (a pty; no COLUMNS, no LINES)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR")} | {"TERM": "xterm-256color"}
    process = subprocess.Popen([sys.executable, "-c", "from attn_cli.cli import main; main()", *args],
                               stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.PIPE, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert process.wait(timeout=120) == 0, process.stderr.read()
    return b"".join(chunks).decode("utf-8")


@pytest.mark.skipif(sys.platform != "linux", reason="a pty sized with TIOCSWINSZ")
@pytest.mark.parametrize("width", [40, 60])
def test_a_real_terminal_of_that_width(width):
    for args in (COMMANDS[0], COMMANDS[1], COMMANDS[7]):
        out = on_a_terminal(args, width)
        assert "\x1b[" in out  # a terminal: colours
        assert_fits(out, width, args)

"""`attn explore` from the command line: errors before the app starts are the usual one line and
exit code; without a terminal it says so; in a real terminal q quits with 0 and restores it.
Textual is imported by this command only."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from conftest import SENTENCE
from helpers import attn
from option_registry import covers
from test_layout import PACKAGE, imports_of, modules
from typer.testing import CliRunner

import attn_cli.cli.explore as explore_cli
from attn_cli.cli import ExitStatus, app
from attn_cli.views.explorer.app import Explorer

runner = CliRunner()
LLAMA = Path(__file__).parent / "fixtures" / "tiny" / "llama"


@pytest.fixture
def started(monkeypatch):
    """Pretend to have a terminal, and record the app instead of running it."""
    apps = []
    monkeypatch.setattr(explore_cli, "_attach_terminal", lambda from_stdin: None)
    monkeypatch.setattr(Explorer, "run", lambda self: apps.append(self))
    return apps


@covers("explore TEXT", "explore --query", "explore --layer", "explore --head")
def test_the_app_starts_at_the_view_the_options_name(started):
    result = runner.invoke(app, ["explore", "The cat sat on the mat because it was tired.", "--query", "it", "--layer", "2", "--head", "3"])
    assert result.exit_code == 0, result.output
    (explorer,) = started
    v = explorer.view
    assert (v.layer, v.head, v.query, v.mode) == (2, 3, "it", "weights")
    assert len(explorer.traced.traces) == 6  # one forward pass, every layer kept


@covers("explore --query-index", "explore --level", "explore --model", "explore --truncate")
def test_the_other_options_reach_the_explorer(started):
    from attn_cli.loading.model import load_model
    from attn_cli.loading.tokenizer import tokenize

    text = "The cat sat on the mat because it was tired."
    result = runner.invoke(app, ["explore", text, "--model", str(LLAMA), "--query-index", "3", "--level", "word"])
    assert result.exit_code == 0, result.output
    (explorer,) = started
    assert (explorer.view.query_index, explorer.view.level) == (3, "word")
    llama = load_model(LLAMA)
    assert explorer.traced.model.spec.model_type == "llama"
    assert explorer.traced.tokenization.ids.tolist() == tokenize(llama.tokenizer, text).ids.tolist()  # the llama's own tokens
    long = " ".join(["the cat sat"] * 60)  # over the tiny llama's 128 positions
    assert runner.invoke(app, ["explore", long, "-m", str(LLAMA)]).exit_code == ExitStatus.USAGE
    assert runner.invoke(app, ["explore", long, "-m", str(LLAMA), "--truncate"]).exit_code == 0
    cut = started[-1].traced.tokenization
    assert len(cut.tokens) == llama.spec.max_positions and cut.total_tokens == len(tokenize(llama.tokenizer, long).ids) > llama.spec.max_positions


@pytest.mark.parametrize(
    "args, status, words",
    [
        (["   "], ExitStatus.USAGE, "empty"),
        ([SENTENCE, "-q", "zebra"], ExitStatus.QUERY_NOT_FOUND, "zebra"),
        ([SENTENCE, "--layer", "9"], ExitStatus.USAGE, "layer 9 is out of range"),
        ([SENTENCE, "--head", "all"], ExitStatus.USAGE, "one layer and head"),
        ([SENTENCE, "-m", "/nonexistent/model"], ExitStatus.MODEL, "does not exist"),
    ],
)
def test_errors_before_the_app_are_one_line_and_the_usual_exit_codes(started, args, status, words):
    result = runner.invoke(app, ["explore", *args])
    assert result.exit_code == status, result.output
    assert not started
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("attn: error: ") and words in lines[0]
    assert result.stdout == ""


def test_without_a_terminal_it_says_so():
    done = attn("explore", SENTENCE)  # stdin, stdout, stderr are pipes here
    assert done.returncode == ExitStatus.USAGE
    assert done.stderr.strip() == (
        "attn: error: attn explore draws on stderr, and stderr is not a terminal"
        " — run attn explore in a terminal; for pipes and scripts use attn inspect (with --json)"
    )
    assert done.stdout == ""


def test_text_on_stdin_without_a_terminal_for_the_keys_says_so():
    # A new session has no controlling terminal, so /dev/tty cannot be opened; stderr is a pty.
    leader, follower = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-c", "from attn_cli.cli import main; main()", "explore", "-"],
            input=b"The cat sat.", stdout=subprocess.PIPE, stderr=follower, start_new_session=True, timeout=120,
        )
        os.close(follower)
        err = _read_all(leader).decode()
    finally:
        os.close(leader)
    assert done.returncode == ExitStatus.USAGE
    assert "the text came on stdin, and there is no terminal to read keys from" in err


def _chunks(fd: int, poll: float = 0.5, idle: float | None = None, until: float | None = None):
    """What `fd` gives, chunk by chunk, until its end or an error; with `idle`, until that long
    without output; with `until` (time.monotonic()), until then."""
    quiet = 0.0
    while until is None or time.monotonic() < until:
        if not select.select([fd], [], [], poll)[0]:
            quiet += poll
            if idle is not None and quiet >= idle:
                return
            continue
        quiet = 0.0
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            return
        if not chunk:
            return
        yield chunk


def _read_all(fd: int, wait: float = 2.0) -> bytes:
    return b"".join(_chunks(fd, poll=wait, idle=wait))


def test_in_a_real_terminal_keys_work_and_q_quits_with_0_restoring_the_terminal():
    """A pseudo-terminal of 80×24, the tiny llama, text on stdin (keys then come from /dev/tty)."""
    text = Path(__file__).parent.parent / "sample_inputs" / "cat.txt"
    pid, fd = pty.fork()
    if pid == 0:
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        os.dup2(os.open(text, os.O_RDONLY), 0)
        os.execve(sys.executable, [sys.executable, "-c", "from attn_cli.cli import main; main()", "explore", "-", "-m", str(LLAMA), "-q", "sat"],
                  dict(os.environ, TERM="xterm-256color"))
    seen, sent, deadline = b"", [], time.monotonic() + 90
    try:
        for chunk in _chunks(fd, until=deadline):
            seen += chunk
            if not sent and b"Top-attended" in seen:
                os.write(fd, b"\x1b[C")  # →: the next token becomes the query
                sent.append("right")
            elif sent == ["right"] and b"(token 4)" in seen:  # the header names the new query
                os.write(fd, b"q")
                sent.append("q")
        if time.monotonic() >= deadline:  # the app never ended by itself
            os.kill(pid, 9)
        _, status = os.waitpid(pid, 0)
        modes = termios.tcgetattr(fd)[3]  # the terminal's line discipline, as the app left it
    finally:
        os.close(fd)
    assert sent == ["right", "q"], seen[-600:]
    assert os.waitstatus_to_exitcode(status) == 0
    assert b"\x1b[?1049h" in seen[:2000] and b"\x1b[?1049l" in seen[-400:]  # entered, then left the alternate screen
    assert seen.count(b"\x1b[?1049h") == 1  # once: the first frame's; entering again would clear it (xterm)
    assert seen.index(b"Top-attended") < seen.index(b"\x1b[?1000h")  # the first frame came before Textual started (mouse on)
    assert modes & termios.ECHO and modes & termios.ICANON  # echo and line editing back


def test_other_commands_never_import_textual():
    probe = "import sys; from attn_cli.cli import app; print(sorted(m for m in sys.modules if m.split('.')[0] == 'textual'))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]"
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", "from attn_cli.cli import main; main()", "inspect", SENTENCE, "-q", "making", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "textual" not in done.stderr and "| attn_cli" in done.stderr


def test_only_the_explorer_and_its_command_know_textual():
    knowing = sorted(str(p.relative_to(PACKAGE)) for p in modules() if any(n.split(".")[0] == "textual" for n in imports_of(p)))
    assert knowing == ["views/explorer/app.py", "views/explorer/widgets.py"]

"""The plain inspect screen (views/terminal/plain.py) is, character for character, what the Rich
view prints on a stdout without colour, wherever it answers; it steps aside (None) where it
cannot promise that; and the CLI uses it exactly where Rich would print plain text."""

from __future__ import annotations

import ast
import io
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from attn_cli.cli.common import plain_width, write_screen
from attn_cli.compute.inspect import inspect
from attn_cli.loading.model import load_model
from attn_cli.views.terminal.inspect import inspect_view
from attn_cli.views.terminal.plain import inspect_text

TINY = Path(__file__).parent / "fixtures" / "tiny"
SENTENCE = "The Transformer is making it possible to understand language."
WIDTHS = [*range(20, 130, 3), 160, 200, 300]


def rich_screen(result, width: int, capsys) -> str:
    """What `write_screen` prints for the Rich view on a console that is not a terminal."""
    capsys.readouterr()
    write_screen(inspect_view(result), Console(force_terminal=False, width=width, highlight=False, soft_wrap=False))
    return capsys.readouterr().out


@pytest.fixture(scope="module")
def minilm():
    return load_model(None)


CASES = [
    dict(query="making"),
    dict(query="making", norms=True),
    dict(query="making", level="word"),
    dict(query="making", head="all", layer="0"),
    dict(query="making", rank_by="output_norm"),
    dict(query="making", head="mean", layer="all"),
    dict(query="making", include_special=False, top_k=12),
    dict(query="transformer", level="word"),  # a query of two tokens: the note about means
    dict(query="it", head="3", norms=True, level="word"),
]


def plain_widths(result, capsys) -> int:
    """At how many of WIDTHS the plain screen answers; wherever it does, it is Rich's screen."""
    answered = 0
    for width in WIDTHS:
        text = inspect_text(result, width)
        if text is not None:
            assert text == rich_screen(result, width, capsys), width
            answered += 1
    return answered


@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
def test_the_plain_screen_is_the_rich_screen(minilm, capsys, case):
    result = inspect(minilm, SENTENCE, **case)
    assert plain_widths(result, capsys) >= len([w for w in WIDTHS if w >= 130])  # wide screens are always plain


def test_the_default_screen_at_80_columns_is_plain(minilm, capsys):
    result = inspect(minilm, SENTENCE, query="making")
    text = inspect_text(result, 80)
    assert text is not None and text == rich_screen(result, 80, capsys)
    assert "10     language     12.96      2.29    0.297   ██████" in text and text.endswith("Σ weights·v)\n")


LONG = "Supercalifragilisticexpialidocious antidisestablishmentarianism is floccinaucinihilipilification."


@pytest.mark.parametrize(
    ("folder", "text", "kwargs"),
    [
        ("llama", "the cat sat on the mat and the dog", dict(query_index=3, head="all")),  # a decoder: masked future rows
        ("gemma3", "the cat sat on the mat and the dog sat too", dict(query_index=2, layer="all")),  # sliding windows
        ("gpt2", "the cat sat on the mat", dict(query_index=-1, norms=True)),
        ("bert", LONG, dict(query_index=1, level="word")),
        ("bert", LONG, dict(query_index=2)),  # labels longer than the grid's 18 columns
    ],
)
def test_other_models_and_long_labels(capsys, folder, text, kwargs):
    result = inspect(load_model(TINY / folder), text, **kwargs)
    assert plain_widths(result, capsys) > 0


@pytest.mark.parametrize(
    ("text", "kwargs"),
    [
        (SENTENCE, dict(query="making", steps=True)),
        ("日本語の文章です。 The cat sat.", dict(query="cat")),  # two cells a character
    ],
)
def test_what_the_plain_screen_leaves_to_rich(minilm, text, kwargs):
    assert inspect_text(inspect(minilm, text, **kwargs), 200) is None


def test_only_text_of_one_cell_a_character_is_plain():
    from attn_cli.views.terminal.plain import _narrow

    assert _narrow("▶ naïve █▏ Q·K/√32 ‖αvWₒ‖ — …") and _narrow("plain ascii")
    assert not _narrow("cafe\u0301") and not _narrow("日本") and not _narrow("🙂") and not _narrow("a\x1bb") and not _narrow("tab\t")


def test_a_control_character_in_a_token_is_left_to_rich(capsys):
    """gpt2 keeps ESC in its tokens (BERT's normaliser drops it): Rich's path shows it as \\x1b."""
    result = inspect(load_model(TINY / "gpt2"), "the \x1b[31mcat sat", query_index=-1)
    assert any("\x1b" in u.text for u in result.units) and inspect_text(result, 200) is None
    assert "\\x1b" in rich_screen(result, 200, capsys)


def test_a_screen_too_narrow_is_left_to_rich(minilm):
    assert inspect_text(inspect(minilm, SENTENCE, query="making"), 40) is None


class _Stream(io.StringIO):
    def __init__(self, tty: bool, encoding: str = "utf-8") -> None:
        super().__init__()
        self._tty, self._encoding = tty, encoding

    def isatty(self) -> bool:
        return self._tty

    @property
    def encoding(self) -> str:
        return self._encoding


@pytest.mark.parametrize(
    ("tty", "encoding", "env", "expected"),
    [
        (False, "utf-8", {"COLUMNS": "100"}, 100),
        (False, "UTF-8", {"COLUMNS": "37"}, 37),
        (True, "utf-8", {"COLUMNS": "100"}, None),  # a terminal: colours, Rich's
        (False, "utf-8", {"COLUMNS": "100", "FORCE_COLOR": "1"}, None),
        (False, "utf-8", {"COLUMNS": "100", "TTY_COMPATIBLE": "1"}, None),
        (False, "ascii", {"COLUMNS": "100"}, None),  # Rich draws ASCII rules there
        (False, "utf-8", {"COLUMNS": "0"}, None),
    ],
)
def test_plain_width_is_where_rich_prints_plain_text(monkeypatch, tty, encoding, env, expected):
    for name in ("COLUMNS", "FORCE_COLOR", "TTY_COMPATIBLE", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    stream = _Stream(tty, encoding)
    monkeypatch.setattr(sys, "stdout", stream)
    assert plain_width() == expected
    if expected is not None:  # and Rich agrees: no terminal, no colour, the same width
        console = Console(file=stream)
        assert (console.is_terminal, console.color_system, console.width) == (False, None, expected)


def test_without_columns_the_width_is_richs(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setattr(sys, "stdout", _Stream(False))
    assert plain_width() == Console(file=sys.stdout).width


def _modules_after(*args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    probe = (
        "import atexit, sys; atexit.register(lambda: sys.stderr.write(repr(sorted(sys.modules))))\n"
        "from attn_cli.cli import main; main()"
    )
    done = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "COLUMNS": "80"})
    assert done.returncode == 0, done.stderr
    return done, set(ast.literal_eval(done.stderr))


def test_the_piped_screen_imports_no_rich_console_and_prints_richs_characters(minilm, capsys):
    done, modules = _modules_after("inspect", SENTENCE, "-q", "making")
    assert done.stdout == rich_screen(inspect(minilm, SENTENCE, query="making"), 80, capsys)
    assert "rich.console" not in modules and "rich.table" not in modules and "rich.text" not in modules


def test_json_imports_no_rich_beyond_the_import_floor():
    floor = subprocess.run([sys.executable, "-c", "import sys, numpy, tokenizers, rich, typer; print(repr(sorted(sys.modules)))"],
                           capture_output=True, text=True, timeout=60)
    floor_rich = {m for m in ast.literal_eval(floor.stdout) if m.split(".")[0] == "rich"}
    _, modules = _modules_after("inspect", SENTENCE, "-q", "making", "--json")
    assert {m for m in modules if m.split(".")[0] == "rich"} <= floor_rich

"""Lazy command loading: `main` imports and builds only the command the command line names, and
that command is the very one the whole app holds (same options, same help); every other command
line (`attn`, `--help`, `--version`, an unknown command, shell completion) gets the whole app."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

import pytest
import typer.main
from helpers import attn

from attn_cli.cli import app
from attn_cli.cli.commands import COMMAND_MODULES, COMMANDS, COMPLETE_VAR, app_for, full_app

SENTENCE = "The Transformer is making it possible to understand language."


def _describe(command) -> list[tuple]:
    return [(p.name, tuple(p.opts), tuple(p.secondary_opts), getattr(p, "help", None), p.default, p.type.name, p.required, p.multiple) for p in command.params]


def test_the_command_map_names_every_command_and_its_module():
    registered = {(c.name or c.callback.__name__).replace("_", "-"): c.callback.__module__.rsplit(".", 1)[1] for c in full_app().registered_commands}
    assert registered == COMMANDS
    assert set(COMMANDS.values()) == set(COMMAND_MODULES)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_a_named_command_is_built_alone_and_equal_to_the_full_apps(name):
    lean = typer.main.get_command(app_for([name, "--help"]))
    full = typer.main.get_command(full_app())
    assert list(lean.commands) == [name]
    assert _describe(lean.commands[name]) == _describe(full.commands[name])
    assert lean.commands[name].help == full.commands[name].help and lean.commands[name].epilog == full.commands[name].epilog
    assert _describe(lean) == _describe(full)  # --version and the completion options
    assert len(full.commands) == len(COMMANDS)  # the shared app is left whole


@pytest.mark.parametrize("args", [[], ["--help"], ["-h"], ["--version"], ["inspct"], ["--version", "inspect"], ["--install-completion"]])
def test_anything_but_a_command_name_gets_the_whole_app(args):
    assert app_for(args) is app and len(typer.main.get_command(app_for(args)).commands) == len(COMMANDS)


def test_shell_completion_gets_the_whole_app(monkeypatch):
    monkeypatch.setenv(COMPLETE_VAR, "complete_bash")
    assert app_for(["inspect"]) is app


def test_help_lists_every_command_with_its_help_text():
    done = attn("--help", env={"COLUMNS": "200"})
    assert done.returncode == 0
    for command in typer.main.get_command(app).commands.values():
        line = next((ln for ln in done.stdout.splitlines() if ln.strip("│ ").startswith(command.name + " ")), None)
        assert line is not None, command.name
        assert line.strip("│ ")[len(command.name):].strip() == command.help.split("\n")[0][: len(line.strip("│ ")[len(command.name):].strip())]


def test_completion_of_a_command_prefix_offers_the_commands():
    done = attn(env={COMPLETE_VAR: "complete_bash", "COMP_WORDS": "attn s", "COMP_CWORD": "1"})
    assert done.returncode == 0 and set(done.stdout.split()) == {"schema", "stats"}


def test_inspect_imports_no_other_command():
    """sys.modules as main leaves (main runs the atexit handlers before its fast exit)."""
    probe = (
        "import atexit, sys; atexit.register(lambda: sys.stderr.write(repr(sorted(sys.modules))))\n"
        "from attn_cli.cli import main; main()"
    )
    done = subprocess.run([sys.executable, "-c", probe, "inspect", SENTENCE, "-q", "making", "--json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and json.loads(done.stdout)["query"]["token_indices"] == [5]
    imported = set(ast.literal_eval(done.stderr))
    assert "attn_cli.cli.inspect" in imported
    assert not {f"attn_cli.cli.{m}" for m in COMMAND_MODULES if m != "inspect"} & imported

"""Every option and argument of every command is passed through the CLI by some test that
asserts a value it produced. Tests declare it with `@covers("command --option")`
(option_registry.py); this test reads those marks from the test files and the real
parameters from the Typer app, so a new option without a test fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import typer.main

from attn_cli.cli import app

TESTS = Path(__file__).parent
# Typer's own completion options: not attn's code.
BUILTIN = {"attn --install-completion", "attn --show-completion"}


def cli_parameters() -> set[str]:
    """"command --option" for every option spelling that changes behaviour (both sides of a
    --flag/--no-flag pair), "command ARG" for every argument; "attn --version" for the app's."""
    root = typer.main.get_command(app)
    keys = set()

    def add(command: str, params) -> None:
        for p in params:
            if p.param_type_name == "argument":
                keys.add(f"{command} {p.name.upper()}")
            else:
                keys.add(f"{command} {max(p.opts, key=len)}")
                keys.update(f"{command} {o}" for o in p.secondary_opts if o.startswith("--"))

    add("attn", root.params)
    for name, command in root.commands.items():
        add(name, command.params)
    return keys - BUILTIN


def declared() -> dict[str, list[str]]:
    """key -> the tests that declare they cover it, read from every tests/test_*.py."""
    found: dict[str, list[str]] = {}
    for path in sorted(TESTS.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.FunctionDef) or not node.name.startswith("test"):
                continue
            for deco in node.decorator_list:
                if isinstance(deco, ast.Call) and getattr(deco.func, "id", None) == "covers":
                    for arg in deco.args:
                        found.setdefault(ast.literal_eval(arg), []).append(f"{path.name}::{node.name}")
    return found


def test_every_cli_option_has_a_test():
    missing = sorted(cli_parameters() - set(declared()))
    assert not missing, f"CLI options no test passes through the CLI: {missing}"


def test_every_declared_option_exists():
    stale = sorted(set(declared()) - cli_parameters())
    assert not stale, f"@covers names options the CLI does not have: {stale}"


def test_the_walk_sees_the_options_issue_10_named():
    keys = cli_parameters()
    named = ("inspect --no-special", "inspect --norms", "inspect --rank-by", "inspect --query-index", "rollout --full", "heads --no-special")
    assert set(named) | {"stats --threshold", "inspect --level"} <= keys

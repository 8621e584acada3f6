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


def spellings() -> dict[str, set[str]]:
    """"command --option" -> every way to write that option on the command line."""
    root = typer.main.get_command(app)
    out: dict[str, set[str]] = {}
    for command, params in [("attn", root.params), *((n, c.params) for n, c in root.commands.items())]:
        for p in params:
            if p.param_type_name == "option":
                out[f"{command} {max(p.opts, key=len)}"] = set(p.opts)
                out.update({f"{command} {o}": {o} for o in p.secondary_opts})
    return out


def declared(with_strings: bool = False) -> dict:
    """key -> the tests that declare they cover it, read from every tests/test_*.py; with
    `with_strings`, key -> [(test, the string constants in its body)]."""
    found: dict = {}
    for path in sorted(TESTS.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.FunctionDef) or not node.name.startswith("test"):
                continue
            for deco in node.decorator_list:
                if isinstance(deco, ast.Call) and getattr(deco.func, "id", None) == "covers":
                    strings = {n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
                    for arg in deco.args:
                        test = f"{path.name}::{node.name}"
                        found.setdefault(ast.literal_eval(arg), []).append((test, strings) if with_strings else test)
    return found


def test_every_cli_option_has_a_test():
    missing = sorted(cli_parameters() - set(declared()))
    assert not missing, f"CLI options no test passes through the CLI: {missing}"


def test_every_covering_test_spells_its_option():
    """A test that claims an option writes it (any of its spellings) on its command line."""
    ways = spellings()
    unspelt = [
        (key, test) for key, tests in declared(with_strings=True).items() if key in ways for test, strings in tests if not ways[key] & strings
    ]
    assert not unspelt, unspelt


def test_every_declared_option_exists():
    stale = sorted(set(declared()) - cli_parameters())
    assert not stale, f"@covers names options the CLI does not have: {stale}"


def test_the_walk_sees_the_options_issue_10_named():
    keys = cli_parameters()
    named = ("inspect --no-special", "inspect --norms", "inspect --rank-by", "inspect --query-index", "rollout --full", "heads --no-special")
    assert set(named) | {"stats --threshold", "inspect --level"} <= keys

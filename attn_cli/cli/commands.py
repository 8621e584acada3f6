"""The whole command line: the app's own options, then every command module, imported in the
order of --help (importing one registers its commands on the one Typer app, `common.app`).

`app_for(args)` is what `main` runs: when the command line names a command, only that command
is imported and built (Typer builds the Click objects of every registered command before it
dispatches, ~20-30 ms for all of them); anything else (`attn`, `--help`, `--version`, an unknown
command, shell completion) gets the whole app, exactly as `full_app()` gives it to tests.
"""

from __future__ import annotations

import copy
import importlib
import os
from typing import Annotated

import typer

from .. import __version__
from .common import app
from .output import write_stdout

__all__ = ["COMMANDS", "app_for", "full_app"]

COMMAND_MODULES = ("inspect", "heads", "rollout", "align", "generate", "knockout", "ablate", "contrib", "stats", "plot", "batch", "explore")
# Each command's name -> the module that registers it (tests/test_cli_lazy.py checks this
# against the app that `full_app` builds).
COMMANDS = {
    "inspect": "inspect", "tokens": "inspect", "models": "inspect", "schema": "inspect",
    "heads": "heads", "rollout": "rollout", "align": "align", "generate": "generate", "lens": "generate", "knockout": "knockout", "ablate": "ablate",
    "contrib": "contrib", "routes": "contrib",
    "stats": "stats", "compare": "stats", "plot": "plot", "batch": "batch", "explore": "explore",
}
COMPLETE_VAR = "_ATTN_COMPLETE"  # set by the shell when it asks for completions (Click's naming)


def _import(module: str) -> None:
    importlib.import_module(f"{__package__}.{module}")


def full_app() -> typer.Typer:
    """The app with every command registered, in the order of --help."""
    for module in COMMAND_MODULES:
        _import(module)
    return app


def app_for(args: list[str]) -> typer.Typer:
    """The app `main` runs for `args` (sys.argv[1:]): the whole app unless args[0] names a
    command, then a copy of it that holds just that command (the shared `app` is not changed)."""
    name = args[0] if args else None
    if name not in COMMANDS or os.environ.get(COMPLETE_VAR):
        return full_app()
    _import(COMMANDS[name])
    lean = copy.copy(app)
    lean.registered_commands = [c for c in app.registered_commands if _name(c) == name]
    return lean


def _name(info) -> str:
    """The name Typer gives a registered command (its function's, `_` written `-`)."""
    return info.name or info.callback.__name__.lower().replace("_", "-")


def _version(value: bool) -> None:
    if value:
        write_stdout(f"attn {__version__}\n")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    """attn: a command-line attention inspector for transformer language models."""

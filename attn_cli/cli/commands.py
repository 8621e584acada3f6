"""The whole command line: the app's own options, then every command module, imported in the
order of --help (importing one registers its commands on the one Typer app, `common.app`)."""

from __future__ import annotations

import importlib
from typing import Annotated

import typer

from .. import __version__
from .common import app
from .output import write_stdout

__all__ = ["app"]

COMMAND_MODULES = ("inspect", "lenses", "generate", "stats", "plot", "batch", "explore")
for _name in COMMAND_MODULES:
    importlib.import_module(f"{__package__}.{_name}")


def _version(value: bool) -> None:
    if value:
        write_stdout(f"attn {__version__}\n")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    """attn: a command-line attention inspector for transformer language models."""

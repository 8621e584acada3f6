"""The `attn` command line: parse options, call the library, hand the result to a renderer.

`common` holds what commands share; each other module adds commands to the one Typer app.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Annotated

import typer

from .. import __version__
from .common import ExitStatus, app, report

__all__ = ["ExitStatus", "app", "main"]

# Importing a command module registers its commands on `app`, in this order (that of --help).
COMMAND_MODULES = ("inspect", "lenses", "stats", "plot", "batch", "explore")
for _name in COMMAND_MODULES:
    importlib.import_module(f"{__name__}.{_name}")


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"attn {__version__}\n")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    """attn: a command-line attention inspector for transformer language models."""


def _wants_json(args: list[str]) -> bool:
    """Whether the command line asks for JSON, read before parsing so that even a parse error
    can be reported as JSON."""
    pairs = zip(args, args[1:] + [""])
    return "--json" in args or "--format=json" in args or any(a in ("--format", "-f") and b == "json" for a, b in pairs)


def _single_threaded_blas() -> None:
    """One BLAS thread unless the user chose otherwise. attn's matrices are small (a sentence
    by the model width): threads cost more to wake than they save, and on a busy machine a
    spinning thread can make one inspect 5-10x slower. Must run before NumPy is imported."""
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")


def main() -> None:
    """Console-script entry point: every way out goes through ExitStatus."""
    _single_threaded_blas()
    as_json = _wants_json(sys.argv[1:])
    try:
        status = app(standalone_mode=False, prog_name="attn")
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(int(ExitStatus.OK))
    except KeyboardInterrupt:
        sys.stderr.write("attn: interrupted\n")
        sys.exit(130)
    except Exception as exc:
        # Typer vendors Click, so its usage errors are matched by behaviour, not by class.
        if callable(getattr(exc, "format_message", None)) and getattr(exc, "exit_code", None) == 2:
            if not exc.format_message():  # `attn` alone: Click has already printed the help
                sys.exit(int(ExitStatus.USAGE))
            ctx = getattr(exc, "ctx", None)
            command = f"attn {ctx.info_name}" if ctx is not None and ctx.info_name != "attn" else "attn"
            sys.exit(report("usage", exc.format_message(), f"see `{command} --help`", as_json))
        if type(exc).__name__ == "Abort":
            sys.stderr.write("attn: interrupted\n")
            sys.exit(130)
        if os.environ.get("ATTN_DEBUG"):
            raise
        # A bug: say so in one line; ATTN_DEBUG=1 shows the traceback.
        sys.exit(report("internal", f"unexpected {type(exc).__name__}: {exc}", "please report this bug (ATTN_DEBUG=1 shows the traceback)", as_json))
    sys.exit(int(status or 0))

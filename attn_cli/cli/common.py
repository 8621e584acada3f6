"""What every `attn` command shares: the app, reading the text, writing the output, error reporting.
(The options they share are declared in `options`.)

stdout carries data (tables, JSON, CSV); stderr carries talk (errors, warnings, progress).
Errors are one line, never a traceback; with JSON output they are a JSON object on stderr.
"""

from __future__ import annotations

import os
import sys

import typer

from ..errors import AttnError
from ..exit_status import STATUS_BY_CODE, ExitStatus, error_json

SENTENCE = "The Transformer is making it possible to understand language."


def _usage_without_braces() -> None:
    """Usage lines as man pages write them, `attn inspect [OPTIONS] TEXT`: this Typer writes a
    required argument as `{TEXT}`, which reads like a shell brace expansion."""
    from typer.core import TyperArgument

    braced = TyperArgument.make_metavar

    def make_metavar(self, ctx, *, usage: bool = False) -> str:
        var = braced(self, ctx, usage=usage)
        return var[1:-1] if usage and var.startswith("{") and var.endswith("}") else var

    TyperArgument.make_metavar = make_metavar


_usage_without_braces()

app = typer.Typer(
    name="attn",
    help="See what self-attention does inside a real transformer: Q·K, scaling, softmax, weighted sum, per head.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode="rich",
)

def console(stderr: bool = False):
    """A Rich console on stdout (or stderr): colour and width follow the terminal; none when
    piped; NO_COLOR respected."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False, stderr=stderr)


def plain_width() -> int | None:
    """The width of the screen when Rich would print stdout without colour or any terminal
    feature (a pipe or a file; see rich.console.Console.is_terminal and .size), else None: a
    terminal, FORCE_COLOR/TTY_COMPATIBLE, an encoding Rich draws ASCII boxes for, Windows.
    Views with a plain-text form write it there without importing Rich's console."""
    import os

    stdout = sys.stdout
    if sys.platform == "win32" or stdout is None or "FORCE_COLOR" in os.environ or "TTY_COMPATIBLE" in os.environ:
        return None
    try:
        if stdout.isatty() or not (getattr(stdout, "encoding", None) or "utf-8").lower().startswith("utf"):
            return None
    except (AttributeError, ValueError):
        return None
    width = None
    for fd in (_fileno(sys.__stdin__, 0), _fileno(sys.__stdout__, 1), _fileno(sys.__stderr__, 2)):
        try:
            width = os.get_terminal_size(fd).columns
        except (AttributeError, ValueError, OSError):
            continue
        break
    columns = os.environ.get("COLUMNS")
    if columns is not None and columns.isdigit():
        if int(columns) == 0:  # Rich takes that as a width of 0: leave it to Rich
            return None
        width = int(columns)
    return width or 80


def _fileno(stream, default: int) -> int:
    try:
        return stream.fileno()
    except Exception:  # as Rich finds the standard streams: None, closed, or no file
        return default


def read_text(text: str, file_option: str | None = None) -> str:
    """TEXT as given, or stdin for `-` (without its final newline). A TEXT that is the path of
    an existing file (`attn inspect notes.txt -q it`) is still the text, but a one-line note on
    stderr says how to read the file instead: `file_option` (stats' --file) or `- < FILE`."""
    from ..errors import InputError

    if text != "-" and _names_a_file(text):
        import shlex

        from .output import write_stderr

        instead = f"{file_option} {shlex.quote(text)}" if file_option else f"- < {shlex.quote(text)}"
        write_stderr(f"attn: note: {text!r} is a file's path, and TEXT is read as the text itself; to read the file, give {instead}\n")
    if text == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise InputError("TEXT is - but nothing is piped to stdin", 'pipe the text in (echo "..." | attn inspect - ...) or pass it as an argument')
        # Bytes that are not UTF-8 are kept as surrogates, for tokenize to refuse by position.
        buffer = getattr(sys.stdin, "buffer", None)
        text = buffer.read().decode("utf-8", errors="surrogateescape") if buffer is not None else sys.stdin.read()
    return text.rstrip("\r\n")


def _names_a_file(text: str) -> bool:
    if not text or "\n" in text or len(text) > 4096:
        return False
    try:
        return os.path.isfile(text)
    except (OSError, ValueError):  # a name too long, or with a NUL
        return False


def write_json(document: dict) -> None:
    """One JSON document on stdout, whole (see `output`)."""
    from .output import json_text, write_stdout

    write_stdout(json_text(document))


def write_csv(rows) -> None:
    """Rows as CSV on stdout, whole (see `output`)."""
    import csv
    import io

    from .output import write_stdout

    table = io.StringIO()
    csv.writer(table, lineterminator="\n").writerows(rows)
    write_stdout(table.getvalue())


def write_screen(renderables, out=None) -> None:
    """Rich renderables on stdout: rendered in memory first, with the colours and width of the
    real stdout, then written whole."""
    import io

    from rich.console import Console

    from .output import write_stdout

    out = out or console()

    class Page(io.StringIO):
        """The screen in memory, with stdout's encoding, so that Rich draws ASCII boxes and
        rules where stdout cannot show Unicode ones."""

        encoding = getattr(sys.stdout, "encoding", None) or "utf-8"

    page = Console(
        file=Page(), force_terminal=out.is_terminal, color_system=out.color_system, width=out.width,
        no_color=out.no_color, highlight=False, soft_wrap=False, legacy_windows=False,
    )
    from ..views.terminal.visible import visible

    for renderable in renderables if isinstance(renderables, list) else [renderables]:
        # Escaped before layout, so that Rich measures what it prints; `_shown` is the net for
        # a renderable that reached Rich with raw text all the same.
        page.print(_shown(page, visible(renderable)), crop=False)  # a table too wide for the screen keeps its numbers
    write_stdout(page.file.getvalue())


def _shown(page, renderable):
    """`renderable` laid out, with every control character of the text it shows made visible
    (`views.text.printable`): an ESC or BEL in the input, or a token, reaches the terminal as
    `\\x1b`, never as a command. Line breaks are the layout's, kept."""
    from rich.segment import Segment, Segments

    from ..views.text import printable

    def visible(segment: Segment) -> Segment:
        if segment.control or segment.text == "\n" or segment.text.isprintable():
            return segment
        return Segment("\n".join(printable(part) for part in segment.text.split("\n")), segment.style)

    return Segments([visible(s) for s in page.render(renderable)])


def note_encoder_only(result, target: str | None, attention: str | None, add: str = "--target TEXT") -> None:
    """On stderr: an encoder–decoder shown without --target or --attention is its encoder's
    self-attention; say how to see the decoder's and cross-attention (`add`: how to give a target)."""
    if getattr(result, "attention", None) == "encoder" and target is None and attention is None:
        from .output import write_stderr

        write_stderr(
            f"attn: note: {result.model.name} is an encoder–decoder model: this is its encoder's self-attention over the source; add "
            f"{add} for the decoder's (--attention decoder) and cross-attention (--attention cross)\n"
        )


def emit(result, as_json: bool, view) -> None:
    """The result as JSON, or as the Rich renderables `view(console)` returns."""
    if as_json:
        write_json(result.to_json())
        return
    out = console()
    write_screen(view(out), out)


def report(code: str, message: str, fix: str, as_json: bool, candidates: list[str] | tuple[str, ...] = ()) -> int:
    """Write one error to stderr (one line, control characters escaped; or JSON) and return
    its exit status."""
    from ..views.text import printable
    from .output import json_text, write_stderr
    from .phrasing import for_cli

    message, fix = for_cli(message), for_cli(fix)
    if as_json:
        write_stderr(json_text(error_json(code, message, fix, candidates), sys.stderr))
    else:
        write_stderr(f"attn: error: {printable(message)}" + (f" — {printable(fix)}" if fix else "") + "\n")
    return int(STATUS_BY_CODE.get(code, ExitStatus.ERROR))


def reporting_errors(as_json: bool, action) -> None:
    """Run `action`, turning domain errors into one-line messages and exit codes (`report`
    names the options a library message names by their flags)."""
    try:
        action()
    except AttnError as exc:
        raise typer.Exit(report(exc.code, exc.message, exc.fix, as_json, getattr(exc, "candidates", ()))) from None

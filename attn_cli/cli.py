"""The `attn` command line: parse options, call the library, hand the result to a renderer.

stdout carries data (tables or JSON); stderr carries talk (errors, warnings). Errors are one
line, never a traceback; with --json they are a JSON object on stderr.
"""

from __future__ import annotations

import json
import os
import sys
from enum import Enum, IntEnum
from typing import Annotated, NoReturn, Optional

import typer

from . import __version__
from .errors import AttnError, InputError, ModelError, QueryNotFound


class ExitStatus(IntEnum):
    """attn's exit codes (documented in the README)."""

    OK = 0
    ERROR = 1  # an unexpected failure: a bug in attn
    USAGE = 2  # bad option or input text: unknown option, empty or too-long text, layer/head out of range
    QUERY_NOT_FOUND = 3  # the query word, occurrence or position is not in the text
    MODEL = 4  # the model folder is missing, incomplete, corrupt or unsupported


_STATUS = {InputError: ExitStatus.USAGE, QueryNotFound: ExitStatus.QUERY_NOT_FOUND, ModelError: ExitStatus.MODEL}

SENTENCE = "The Transformer is making it possible to understand language."


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


app = typer.Typer(
    name="attn",
    help="See what self-attention does inside a real transformer: Q·K, scaling, softmax, weighted sum, per head.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode="rich",
)

ModelOption = Annotated[
    Optional[str],
    typer.Option(
        "--model", "-m",
        help="Model folder (config.json, tokenizer.json, model.safetensors). Default: $ATTN_MODEL, else the bundled all-MiniLM-L6-v2.",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout (errors as JSON on stderr).")]
TextArgument = Annotated[str, typer.Argument(help="The text to inspect, or - to read it from stdin.", show_default=False)]


def _stdout():
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False)


def _read_text(text: str) -> str:
    if text == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise InputError("TEXT is - but nothing is piped to stdin", 'pipe the text in (echo "..." | attn inspect - ...) or pass it as an argument')
        text = sys.stdin.read()
    return text.rstrip("\r\n")


def _fail(status: ExitStatus, code: str, message: str, fix: str, as_json: bool, extra: dict | None = None) -> NoReturn:
    if as_json:
        error = {"code": code, "message": message, "fix": fix, "exit_status": int(status), **(extra or {})}
        sys.stderr.write(json.dumps({"error": error}, ensure_ascii=False) + "\n")
    else:
        sys.stderr.write(f"attn: error: {message}" + (f" — {fix}" if fix else "") + "\n")
    raise typer.Exit(int(status))


def _run(as_json: bool, action) -> None:
    """Run `action`, turning domain errors into one-line messages and exit codes."""
    try:
        action()
    except AttnError as exc:
        extra = {"candidates": exc.candidates} if isinstance(exc, QueryNotFound) and exc.candidates else None
        _fail(_STATUS.get(type(exc), ExitStatus.ERROR), exc.code, exc.message, exc.fix, as_json, extra)


@app.command(
    epilog=(
        "[bold]Examples[/bold]\n\n"
        f'  attn inspect "{SENTENCE}" --query making\n\n'
        '  attn inspect "The cat sat on the mat because it was tired." -q it --layer 3 --head 7 --steps\n\n'
        '  attn inspect "The dog chased the other dog." -q dog#2 --head all --json | jq ".layers[0].heads[-1].top"\n\n'
        "  echo \"The cat sat.\" | attn inspect - --query-index 2 --layer all --json"
    )
)
def inspect(
    text: TextArgument,
    query: Annotated[
        Optional[str],
        typer.Option("--query", "-q", help="Query word (case-insensitive); WORD#N for its N-th occurrence; @N for token position N.", show_default=False),
    ] = None,
    query_index: Annotated[
        Optional[int],
        typer.Option("--query-index", "-i", help="Query token position (0 is the first token, [CLS] for BERT; negative from the end).", show_default=False),
    ] = None,
    layer: Annotated[str, typer.Option("--layer", "-l", help="Layer index (negative from the end) or 'all'.")] = "-1",
    head: Annotated[
        str,
        typer.Option("--head", help="Head index, 'mean', 'all', or 'auto': the head that attends most to other words."),
    ] = "auto",
    top: Annotated[int, typer.Option("--top", "-k", help="How many top-attended words to list.")] = 5,
    steps: Annotated[bool, typer.Option("--steps", help="Also show step 1 (q, k, v vectors) and step 3 (weighted sum of values).")] = False,
    special: Annotated[bool, typer.Option("--special/--no-special", help="Rank special tokens ([CLS], [SEP]) among the top-attended words.")] = True,
    truncate: Annotated[bool, typer.Option("--truncate", help="Keep the first tokens of a text longer than the model reads (default: an error).")] = False,
    model: ModelOption = None,
    as_json: JsonOption = False,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="table (Rich), json (= --json), or csv: one row per layer, head and token.")
    ] = OutputFormat.table,
) -> None:
    """Show how one query word attends to every token: scores, scaled scores, softmax weights, top words, all heads."""
    output_format = OutputFormat.json if as_json else output_format

    def action() -> None:
        from .inspector import inspect as run_inspect
        from .loader import load_model

        source = _read_text(text)
        result = run_inspect(
            load_model(model), source, query=query, query_index=query_index, layer=layer, head=head,
            top_k=top, steps=steps, include_special=special, truncate=truncate,
        )
        if output_format is OutputFormat.json:
            sys.stdout.write(json.dumps(result.to_json(), ensure_ascii=False) + "\n")
        elif output_format is OutputFormat.csv:
            import csv

            from .result import CSV_COLUMNS, csv_rows

            writer = csv.writer(sys.stdout, lineterminator="\n")
            writer.writerow(CSV_COLUMNS)
            writer.writerows(csv_rows(result))
        else:
            from .render import inspect_view, print_all

            print_all(_stdout(), inspect_view(result))

    _run(output_format is OutputFormat.json, action)


@app.command(epilog=f'[bold]Examples[/bold]\n\n  attn tokens "{SENTENCE}"\n\n  echo "Tokenizers split words." | attn tokens - --json')
def tokens(text: TextArgument, model: ModelOption = None, as_json: JsonOption = False) -> None:
    """Show how the text is tokenized (position, token, id, character offsets, word), to pick a query."""

    def action() -> None:
        from .inspector import model_info
        from .loader import load_model
        from .result import tokens_document
        from .tokenize import tokenize

        m = load_model(model)
        tok = tokenize(m.tokenizer, _read_text(text), max_tokens=None)
        if as_json:
            sys.stdout.write(json.dumps(tokens_document(model_info(m), tok), ensure_ascii=False) + "\n")
        else:
            from .render import tokens_table

            _stdout().print(tokens_table(tok))

    _run(as_json, action)


@app.command(epilog="[bold]Examples[/bold]\n\n  attn models\n\n  HF_HOME=/data/hf attn models --json | jq -r '.models[] | select(.usable) | .name'")
def models(as_json: JsonOption = False) -> None:
    """List the models attn can use: the bundled one, $ATTN_MODEL, and those in the Hugging Face cache."""

    def action() -> None:
        from .catalog import list_models

        entries = list_models()
        if as_json:
            from .result import models_document

            sys.stdout.write(json.dumps(models_document(entries), ensure_ascii=False) + "\n")
        else:
            from .render import models_table

            _stdout().print(models_table(entries))

    _run(as_json, action)


@app.command()
def schema() -> None:
    """Print the JSON Schema of the documents that --json writes."""
    from .result import json_schema

    sys.stdout.write(json.dumps(json_schema(), indent=2) + "\n")


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


def main() -> None:
    """Console-script entry point: every way out goes through ExitStatus."""
    as_json = _wants_json(sys.argv[1:])
    try:
        status = app(standalone_mode=False)
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
            fail = lambda: _fail(ExitStatus.USAGE, "usage", exc.format_message(), f"see `{command} --help`", as_json)  # noqa: E731
        elif type(exc).__name__ == "Abort":
            sys.stderr.write("attn: interrupted\n")
            sys.exit(130)
        elif os.environ.get("ATTN_DEBUG"):
            raise
        else:  # a bug: say so in one line; ATTN_DEBUG=1 shows the traceback
            fail = lambda: _fail(  # noqa: E731
                ExitStatus.ERROR, "internal", f"unexpected {type(exc).__name__}: {exc}",
                "please report this bug (ATTN_DEBUG=1 shows the traceback)", as_json,
            )
        _exit_after(fail)
    sys.exit(int(status or 0))


def _exit_after(fail) -> NoReturn:
    try:
        fail()
    except typer.Exit as exit_:
        sys.exit(exit_.exit_code)
    raise AssertionError("unreachable")

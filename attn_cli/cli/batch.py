"""`attn batch`: one `inspect` per input line, as NDJSON (one JSON document per line)."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from .common import app, console, reporting_errors, write_json
from .options import (
    AttentionKindOption,
    HeadOption,
    LayerOption,
    LevelOption,
    MaxMemoryOption,
    ModelOption,
    NormsOption,
    QueryIndexOption,
    QueryOption,
    RankByOption,
    SpecialOption,
    StepsOption,
    TopOption,
    TruncateOption,
    WorkersOption,
)


@app.command(
    rich_help_panel="Scale",
    epilog=(
        "[bold]Examples[/bold]\n\n"
        "  attn batch sample_inputs/sentences.txt --query-index 1 > out.ndjson\n\n"
        '  printf \'{"text": "The cat sat.", "query": "cat"}\\n{"text": "It rained.", "query": "rained", "layer": 0}\\n\' | attn batch -\n\n'
        "  attn batch sample_inputs/queries.jsonl --fields query,layers --workers 2 | jq -c '.layers[0].heads[-1].top[0]'"
    )
)
def batch(
    file: Annotated[
        str,
        typer.Argument(metavar="FILE", help="A file of plain text lines or JSONL objects {\"text\", \"query\", ...}; - for stdin.", show_default=False),
    ],
    query: QueryOption = None,
    query_index: QueryIndexOption = None,
    layer: LayerOption = "-1",
    head: HeadOption = "auto",
    top: TopOption = 5,
    steps: StepsOption = False,
    special: SpecialOption = True,
    truncate: TruncateOption = False,
    level: LevelOption = "token",
    norms: NormsOption = False,
    rank_by: RankByOption = "weight",
    attention: AttentionKindOption = None,
    fields: Annotated[Optional[str], typer.Option("--fields", help="Keep only these top-level fields, comma-separated (line and schema_version stay).")] = None,
    workers: WorkersOption = 1,
    max_memory: MaxMemoryOption = None,
    model: ModelOption = None,
) -> None:
    """Inspect every line of a file: one JSON document per line on stdout (NDJSON), in input order.

    The options are those of every line; a JSONL line may set its own (any option of `attn inspect`,
    by its JSON name: "query", "query_index", "top_k", ...). A bad line yields an error object with
    its line number, and the run goes on; the exit status is then 6. The model is loaded once (per
    worker). A progress bar shows on stderr when it is a terminal and stdout is not.
    """

    def action() -> None:
        from ..compute.batch import failed, run_batch
        from ..compute.options import InspectOptions
        from ..loading.budget import parse_size

        budget = None if max_memory is None else parse_size(max_memory)
        defaults = InspectOptions(
            query=query, query_index=query_index, layer=layer, head=head, top_k=top, steps=steps, include_special=special,
            truncate=truncate, level=level, norms=norms, rank_by=rank_by, attention=attention,
        )
        selected = [f.strip() for f in fields.split(",") if f.strip()] if fields is not None else None
        if selected == []:  # `--fields ""` kept every field, `--fields ,` none: both name nothing
            from ..errors import InputError

            raise InputError("--fields names no field", "give comma-separated fields, e.g. --fields query,layers, or drop --fields")
        source = _stdin_lines() if file == "-" else _open(file)
        any_failed = False
        with _progress() as advance:
            for doc in run_batch(model, source, defaults, workers, selected, advance, budget):
                write_json(doc)
                any_failed |= failed(doc)
        if any_failed:
            from ..exit_status import ExitStatus

            raise typer.Exit(int(ExitStatus.SOME_FAILED))

    reporting_errors(True, action)


def _stdin_lines():
    """stdin as text lines, undecodable bytes kept as surrogates (see _open)."""
    import io

    if sys.stdin is None or sys.stdin.isatty():  # closed (<&-) or a terminal: nothing is piped, as for stats --file -
        from ..errors import InputError

        raise InputError("FILE is - but nothing is piped to stdin", "pipe the lines in (attn batch - < texts.txt) or give a file name")
    return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="surrogateescape") if hasattr(sys.stdin, "buffer") else sys.stdin


def _open(path: str):
    from ..errors import InputError

    try:
        # surrogateescape: a byte that is not UTF-8 fails its own line (see compute.batch), not the run
        return open(path, encoding="utf-8", errors="surrogateescape")  # noqa: SIM115 (read lazily, closed at exit)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}", "give a readable file, or - for stdin") from None


class _progress:
    """A Rich progress bar on stderr when stderr is a terminal and stdout is not (the data goes
    to a file or a pipe; on the same terminal the bar would be drawn over the data); otherwise
    nothing at all."""

    def __enter__(self):
        self._bar = None
        if not sys.stderr.isatty() or sys.stdout is None or sys.stdout.isatty():
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        # redirect_stdout=False: Rich would otherwise capture sys.stdout into the stderr console
        # while the bar shows, and the data would go to the terminal instead of the file.
        self._bar = Progress(
            TextColumn("attn batch"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=console(stderr=True), transient=True, redirect_stdout=False, redirect_stderr=False,
        )
        self._bar.start()
        task = self._bar.add_task("lines", total=None)
        return lambda n: self._bar.update(task, completed=n)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()

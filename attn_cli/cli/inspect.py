"""`attn inspect`, `attn tokens`, `attn models` and `attn schema`."""

from __future__ import annotations

from typing import Annotated

import typer

from .common import SENTENCE, app, note_encoder_only, plain_width, read_text, reporting_errors, write_csv, write_json, write_screen
from .options import (
    ROWS,
    AttentionKindOption,
    ChatOption,
    FormatOption,
    HeadOption,
    JsonOption,
    LayerOption,
    LevelOption,
    ModelOption,
    NormsOption,
    OutputFormat,
    QueryIndexOption,
    QueryOption,
    RankByOption,
    RowsOption,
    SpecialOption,
    StepsOption,
    SystemOption,
    TargetTextOption,
    TextArgument,
    TopOption,
    TruncateOption,
    output_format,
    refuse_with,
)
from .output import write_stdout


@app.command(
    rich_help_panel="Inspect",
    epilog=(
        "[bold]Examples[/bold]\n\n"
        f'  attn inspect "{SENTENCE}" --query making\n\n'
        '  attn inspect "The cat sat on the mat because it was tired." -q it --layer 3 --head 7 --steps\n\n'
        '  attn inspect "The dog chased the other dog." -q dog#2 --head all --json | jq ".layers[0].heads[-1].top"\n\n'
        "  echo \"The cat sat.\" | attn inspect - --query-index 2 --layer all --json\n\n"
        '  attn inspect "Transformers changed NLP." -q changed --level word --rank-by output_norm\n\n'
        '  attn inspect "La maison est magnifique." -m opus-mt-fr-en --target "The house is wonderful." -q house --attention cross'

    )
)
def inspect(
    ctx: typer.Context,
    text: TextArgument,
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
    rows: RowsOption = "auto",
    chat: ChatOption = False,
    system: SystemOption = None,
    target: TargetTextOption = None,
    attention: AttentionKindOption = None,
    model: ModelOption = None,
    as_json: JsonOption = False,
    chosen_format: FormatOption = OutputFormat.table,
) -> None:
    """Show how one query word attends to every token: scores, scaled scores, softmax weights, top words, all heads.
    Encoder–decoder models: TEXT is the source; --target and --attention show the decoder and cross-attention."""
    form = output_format(as_json, chosen_format)

    def action() -> None:
        from ..compute.inspect import inspect_with
        from ..compute.options import InspectOptions
        from ..errors import InputError

        if rows not in ROWS:
            raise InputError(f"--rows {rows!r} is not valid", f"give one of {', '.join(ROWS)}")
        from ..loading.model import load_model

        options = InspectOptions(
            query=query, query_index=query_index, layer=layer, head=head, top_k=top, steps=steps, include_special=special,
            truncate=truncate, level=level, norms=norms, rank_by=rank_by, chat=chat, system=system, target=target, attention=attention,
        )
        if form is OutputFormat.csv and steps:
            raise InputError("--steps has no CSV form (q, k, v are vectors, not rows of weights)", "use --json for the steps, or drop --steps")
        if form is OutputFormat.csv:  # every head's weights on every token: no head is picked (but --head all), nothing ranked
            picked = ["head"] if head.strip().lower() != "all" else []
            refuse_with(ctx, "--format csv", *picked, "top", "special", "rank_by", why=" (its rows are every head's weights on every token)")
        loaded = load_model(model)
        result = inspect_with(loaded, read_text(text), options)
        note_encoder_only(result, target, attention)
        if form is OutputFormat.json:
            write_json(result.to_json())
        elif form is OutputFormat.csv:
            from ..compute.result import csv_columns, csv_rows

            write_csv([csv_columns(result), *csv_rows(result)])
        else:
            write_inspect_screen(result, rows)

    reporting_errors(form is OutputFormat.json, action)


PIPED_ROWS = 60  # --rows auto when stdout is not a terminal: a table taller than this shows its top rows


def screen_rows() -> int:
    """How many rows a table may have before --rows auto cuts it to the top ones: the height of
    the terminal ($LINES first, as Rich reads it), or PIPED_ROWS when stdout is not a terminal."""
    import os
    import sys

    lines = os.environ.get("LINES", "")
    if lines.isdigit() and int(lines) > 0:
        return int(lines)
    try:
        if sys.stdout is not None and sys.stdout.isatty():
            return os.get_terminal_size(sys.stdout.fileno()).lines
    except (AttributeError, ValueError, OSError):
        pass
    return PIPED_ROWS


def write_inspect_screen(result, rows: str = "auto") -> None:
    """The inspect screen: as plain text where stdout shows no colour and the plain view can
    promise Rich's very characters (no Rich console to import), else drawn by Rich. `rows`:
    --rows, auto resolved against the screen's height."""
    from ..views.terminal.inspect_parts import rows_fit

    if rows == "auto":
        height = screen_rows()
        rows = "all" if all(rows_fit(result, layer, height) for layer in result.layers) else "top"
    width = plain_width()
    if width is not None:
        from ..views.terminal.plain import inspect_text

        if (text := inspect_text(result, width, rows)) is not None:
            write_stdout(text)
            return
    from ..views.terminal.inspect import inspect_view

    write_screen(inspect_view(result, rows))


@app.command(
    rich_help_panel="Inspect",
    epilog=f'[bold]Examples[/bold]\n\n  attn tokens "{SENTENCE}"\n\n  echo "Tokenizers split words." | attn tokens - --json')
def tokens(text: TextArgument, model: ModelOption = None, as_json: JsonOption = False) -> None:
    """Show how the text is tokenized (position, token, id, character offsets, word), to pick a query."""

    def action() -> None:
        from ..compute.inspect import model_info
        from ..compute.result import document_header
        from ..loading.model import load_model
        from ..loading.tokenizer import tokenize

        m = load_model(model)
        tok = tokenize(m.tokenizer, read_text(text), max_tokens=None)
        if as_json:
            write_json(document_header(model_info(m), tok))
        else:
            from ..views.terminal.inspect import tokens_table

            write_screen(tokens_table(tok))

    reporting_errors(as_json, action)


@app.command(
    rich_help_panel="Models",
    epilog=(
        "[bold]Examples[/bold]\n\n  attn models\n\n  attn models ~/models/*.gguf\n\n"
        "  HF_HOME=/data/hf attn models --json | jq -r '.models[] | select(.usable) | .name'"
    ),
)
def models(
    paths: Annotated[list[str] | None, typer.Argument(help="Model folders or .gguf files to describe too.", show_default=False)] = None,
    as_json: JsonOption = False,
) -> None:
    """List the models attn can use: the bundled one, $ATTN_MODEL, the packaged models (smollm2, gemma3, mpnet, nomic-embed, opus-mt-fr-en), PATHS,
    those in the Hugging Face cache, and Ollama's and LM Studio's GGUF models."""

    def action() -> None:
        from ..loading.catalog import list_models

        entries = list_models(paths or ())
        if as_json:
            from ..compute.result import models_document

            write_json(models_document(entries))
        else:
            from ..views.terminal.inspect import models_table

            write_screen(models_table(entries))

    reporting_errors(as_json, action)


@app.command(rich_help_panel="Models")
def schema() -> None:
    """Print the JSON Schema of the documents that --json writes."""
    import json

    from ..compute.result import json_schema

    reporting_errors(False, lambda: write_stdout(json.dumps(json_schema(), indent=2) + "\n"))

"""`attn inspect`, `attn tokens`, `attn models` and `attn schema`."""

from __future__ import annotations

from typing import Annotated

import typer

from .common import (
    SENTENCE,
    JsonOption,
    ModelOption,
    OutputFormat,
    QueryIndexOption,
    QueryOption,
    TextArgument,
    app,
    plain_width,
    read_text,
    run,
    write_json,
    write_screen,
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
        '  attn inspect "Transformers changed NLP." -q changed --level word --rank-by output_norm'

    )
)
def inspect(
    text: TextArgument,
    query: QueryOption = None,
    query_index: QueryIndexOption = None,
    layer: Annotated[str, typer.Option("--layer", "-l", metavar="L|all", help="Layer index (negative from the end) or 'all'.")] = "-1",
    head: Annotated[
        str,
        typer.Option("--head", metavar="H|auto|mean|all", help="Head index, 'mean', 'all', or 'auto': the head that attends most to other words."),
    ] = "auto",
    top: Annotated[int, typer.Option("--top", "-k", help="How many top-attended words to list.")] = 5,
    steps: Annotated[bool, typer.Option("--steps", help="Also show step 1 (q, k, v vectors) and step 3 (weighted sum of values).")] = False,
    special: Annotated[bool, typer.Option("--special/--no-special", help="Rank special tokens ([CLS], [SEP]) among the top-attended words.")] = True,
    truncate: Annotated[bool, typer.Option("--truncate", help="Keep the first tokens of a text longer than the model reads (default: an error).")] = False,
    level: Annotated[
        str, typer.Option("--level", metavar="token|word", help="Rows are tokens, or words: attention to a word is the sum of its tokens (Clark et al. 2019).")
    ] = "token",
    norms: Annotated[
        bool, typer.Option("--norms", help="Show ‖α·v‖ and ‖α·v·W_O‖ beside each weight: weights alone mislead (Kobayashi et al. 2020).")
    ] = False,
    rank_by: Annotated[
        str,
        typer.Option("--rank-by", metavar="weight|value_norm|output_norm", help="Rank the top words by weight, value_norm or output_norm (implies --norms)."),
    ] = "weight",
    chat: Annotated[bool, typer.Option("--chat", help="Read TEXT as a user message, rendered by the model's chat template (decoders).")] = False,
    system: Annotated[str | None, typer.Option("--system", help="With --chat: a system message before the user's.", show_default=False)] = None,
    model: ModelOption = None,
    as_json: JsonOption = False,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="table (Rich), json (= --json), or csv: one row per layer, head and token.")
    ] = OutputFormat.table,
) -> None:
    """Show how one query word attends to every token: scores, scaled scores, softmax weights, top words, all heads."""
    if as_json and output_format is OutputFormat.csv:
        from .common import report

        raise typer.Exit(report("usage", "--json and --format csv ask for two different outputs", "give one of them", True))
    output_format = OutputFormat.json if as_json else output_format

    def action() -> None:
        if output_format is OutputFormat.csv and steps:
            from ..errors import InputError

            raise InputError("--steps has no CSV form (q, k, v are vectors, not rows of weights)", "use --json for the steps, or drop --steps")
        from ..compute.inspect import inspect as run_inspect
        from ..loading.model import load_model

        source = read_text(text)
        result = run_inspect(
            load_model(model), source, query=query, query_index=query_index, layer=layer, head=head,
            top_k=top, steps=steps, include_special=special, truncate=truncate, level=level, norms=norms, rank_by=rank_by,
            chat=chat, system=system,
        )
        if output_format is OutputFormat.json:
            write_json(result.to_json())
        elif output_format is OutputFormat.csv:
            import csv
            import io

            from ..compute.result import csv_columns, csv_rows

            table = io.StringIO()
            writer = csv.writer(table, lineterminator="\n")
            writer.writerow(csv_columns(result))
            writer.writerows(csv_rows(result))
            write_stdout(table.getvalue())
        else:
            write_inspect_screen(result)

    run(output_format is OutputFormat.json, action)


def write_inspect_screen(result) -> None:
    """The inspect screen: as plain text where stdout shows no colour and the plain view can
    promise Rich's very characters (no Rich console to import), else drawn by Rich."""
    width = plain_width()
    if width is not None:
        from ..views.terminal.plain import inspect_text

        if (text := inspect_text(result, width)) is not None:
            write_stdout(text)
            return
    from ..views.terminal.inspect import inspect_view

    write_screen(inspect_view(result))


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

    run(as_json, action)


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
    """List the models attn can use: the bundled one, $ATTN_MODEL, the packaged models (smollm2, gemma3, mpnet), PATHS, and those in the Hugging Face cache."""

    def action() -> None:
        from ..loading.catalog import list_models

        entries = list_models(paths or ())
        if as_json:
            from ..compute.result import models_document

            write_json(models_document(entries))
        else:
            from ..views.terminal.inspect import models_table

            write_screen(models_table(entries))

    run(as_json, action)


@app.command(rich_help_panel="Models")
def schema() -> None:
    """Print the JSON Schema of the documents that --json writes."""
    import json

    from ..compute.result import json_schema

    run(False, lambda: write_stdout(json.dumps(json_schema(), indent=2) + "\n"))

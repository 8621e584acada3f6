"""`attn knockout`: which words, in which layers, a decoder's prediction reads through attention."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .common import app, emit, read_text, reporting_errors
from .options import JsonOption, ModelOption, PredictionTargetOption, QueryIndexOption, QueryOption, TargetIdOption, TextArgument


@app.command(
    rich_help_panel="Causes",
    epilog=(
        "[bold]Examples[/bold]\n\n"
        '  attn knockout "The capital of France is" -m smollm2\n\n'
        '  attn knockout "The capital of France is" -m smollm2 --target " Paris" --source France --window 5\n\n'
        '  attn knockout "The capital of France is" -m smollm2 --json | jq ".sources[] | {text, worst: (.changes | min)}"'
    ),
)
def knockout(
    text: TextArgument,
    target: PredictionTargetOption = None,
    target_id: TargetIdOption = None,
    window: Annotated[int, typer.Option("--window", help="Layers blocked around each layer (Geva et al. use 9).")] = 9,
    source: Annotated[Optional[list[str]], typer.Option("--source", help="A word to block (repeat it for more). Default: every word.")] = None,
    query: QueryOption = None,
    query_index: QueryIndexOption = None,
    model: ModelOption = None,
    as_json: JsonOption = False,
) -> None:
    """Attention knockout (Geva et al. 2023): block each word's attention edges to the predicting position, layer by layer; see what the prediction loses.

    Decoders only."""

    def action() -> None:
        from ..compute.knockout import knockout as run_knockout
        from ..loading.model import load_model

        result = run_knockout(load_model(model), read_text(text), target, target_id, window, source, query, query_index)

        def view(out):
            from ..views.terminal.knockout import knockout_view

            return knockout_view(result, out.width, colour=out.color_system is not None and not out.no_color)

        emit(result, as_json, view)

    reporting_errors(as_json, action)

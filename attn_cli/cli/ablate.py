"""`attn ablate`: which heads a prediction (or an encoder's representation) needs."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .common import app, emit, read_text, reporting_errors
from .options import JsonOption, ModelOption, PredictionTargetOption, QueryIndexOption, QueryOption, TargetIdOption, TextArgument


@app.command(
    rich_help_panel="Causes",
    epilog=(
        "[bold]Examples[/bold]\n\n"
        '  attn ablate "The capital of France is" -m smollm2\n\n'
        '  attn ablate "The capital of France is" -m smollm2 --mode mean --target " Paris"\n\n'
        '  attn ablate "The capital of France is" -m smollm2 --mode mean --mean-over texts.txt\n\n'
        '  attn ablate "The cat sat on the mat." -q cat --json | jq ".layers[5].changes"'
    ),
)
def ablate(
    text: TextArgument,
    target: PredictionTargetOption = None,
    target_id: TargetIdOption = None,
    mode: Annotated[str, typer.Option("--mode", metavar="zero|mean", help="Replace each head's output by zeros, or by its mean over the positions.")] = "zero",
    mean_over: Annotated[
        Optional[str],
        typer.Option("--mean-over", metavar="FILE", help="With --mode mean: each head's mean over these texts (one a line), not the text's own."),
    ] = None,
    query: QueryOption = None,
    query_index: QueryIndexOption = None,
    model: ModelOption = None,
    as_json: JsonOption = False,
) -> None:
    """Head ablation: silence each head alone and see how much the prediction changes.

    Decoders: the change of the target's log-probability; encoders: the query's cosine distance."""

    def action() -> None:
        from ..compute.ablate import ablate as run_ablate
        from ..loading.model import load_model

        texts = None if mean_over is None else _lines(mean_over)
        result = run_ablate(load_model(model), read_text(text), target, target_id, mode, query, query_index, texts)

        def view(out):
            from ..views.terminal.ablate import ablate_view

            return ablate_view(result, out.width, colour=out.color_system is not None and not out.no_color)

        emit(result, as_json, view)

    reporting_errors(as_json, action)


def _lines(path: str) -> list[str]:
    """The file's non-blank lines, each a text."""
    from ..errors import InputError

    try:
        with open(path, encoding="utf-8") as f:
            return [line.rstrip("\r\n") for line in f if line.strip()]
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}", "give --mean-over a readable file of texts, one a line") from None
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text", "give --mean-over a UTF-8 file of texts, one a line") from None

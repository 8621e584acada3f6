"""`attn contrib`: how much each input position makes up the query's representation, layer by layer;
`attn routes`: the information-flow routes to a decoder's prediction."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .common import app, emit, read_text, reporting_errors
from .options import (
    ContrastOption,
    ForceOption,
    JsonOption,
    LayerOption,
    ModelOption,
    OutputFileOption,
    PredictionTargetOption,
    QueryIndexOption,
    QueryOption,
    RouteThresholdOption,
    TargetIdOption,
    TextArgument,
)


@app.command(
    rich_help_panel="Causes",
    epilog=(
        "[bold]Examples[/bold]\n\n"
        '  attn contrib "The cat sat on the mat because it was tired." -q it\n\n'
        '  attn contrib "The cat sat on the mat because it was tired." -q it --method value-zeroing --rollout\n\n'
        '  attn contrib "The capital of France is" -i -1 -m smollm2 --json | jq ".layers[-1].contributions"\n\n'
        '  attn contrib "The capital of France is" -m smollm2 --method alti-logit -t " Paris" --contrast " London"'
    ),
)
def contrib(
    text: TextArgument,
    query: QueryOption = None,
    query_index: QueryIndexOption = None,
    method: Annotated[
        str,
        typer.Option(
            "--method", metavar="alti|value-zeroing|norms|alti-logit",
            help=(
                "alti (Ferrando et al. 2022), value-zeroing (Mohebbi et al. 2023), norms (‖Σ α·f(x)‖, Kobayashi et al. 2020) "
                "or alti-logit (Ferrando et al. 2023: each token's part of the target's logit; decoders)."
            ),
        ),
    ] = "alti",
    layer: LayerOption = "all",
    rollout: Annotated[bool, typer.Option("--rollout", help="Also multiply the layers' contributions (later layer on the left): the whole model's.")] = False,
    target: PredictionTargetOption = None,
    target_id: TargetIdOption = None,
    contrast: ContrastOption = None,
    model: ModelOption = None,
    as_json: JsonOption = False,
) -> None:
    """Token contributions: how much of the query's representation each input position makes up, per layer (rows sum to 1);
    with --method alti-logit, each input token's part of a predicted token's logit.

    See docs/contributions.md for the definitions."""

    def action() -> None:
        from ..compute.contrib import contributions
        from ..loading.model import load_model

        result = contributions(
            load_model(model), read_text(text), query, query_index, method, layer, rollout, target=target, target_id=target_id, contrast=contrast,
        )

        def view(out):
            from ..views.terminal.contrib import contrib_view

            return contrib_view(result, out.width, colour=out.color_system is not None and not out.no_color)

        emit(result, as_json, view)

    reporting_errors(as_json, action)


@app.command(
    rich_help_panel="Causes",
    epilog=(
        "[bold]Examples[/bold]\n\n"
        '  attn routes "The capital of France is" -m smollm2\n\n'
        '  attn routes "The capital of France is" -m smollm2 --threshold 0.1 --at 3 -o routes.svg\n\n'
        '  attn routes "The capital of France is" -m smollm2 --json | jq \'.edges[] | select(.kind == "attention")\''
    ),
)
def routes(
    text: TextArgument,
    threshold: RouteThresholdOption = 0.04,
    at: Annotated[
        Optional[int], typer.Option("--at", metavar="POSITION", help="The predicting position (a token index, negative from the end; default: the last).")
    ] = None,
    output: OutputFileOption = None,
    force: ForceOption = False,
    model: ModelOption = None,
    as_json: JsonOption = False,
) -> None:
    """Information-flow routes (Ferrando & Voita 2024): the edges through attention heads, feed-forwards and the residual stream
    that carry the input to a decoder's prediction, found from the top layer down.

    See docs/contributions.md for the definitions."""

    def action() -> None:
        from ..compute.routes import routes as find_routes
        from ..loading.model import load_model

        if output is not None:
            from ..views.routes_plot import check_format

            check_format(output)  # before the model runs
        result = find_routes(load_model(model), read_text(text), at, threshold)
        if output is not None:
            from ..views.routes_plot import write_routes
            from .output import write_stderr

            written = write_routes(result, output, force)
            if not as_json:
                write_stderr(f"attn: wrote {written}\n")

        def view(out):
            from ..views.terminal.routes import routes_view

            return routes_view(result, out.width, colour=out.color_system is not None and not out.no_color)

        emit(result, as_json, view)

    reporting_errors(as_json, action)

"""`attn plot`: the multi-head table or the model view as a PNG, SVG or self-contained HTML."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import SENTENCE, ModelOption, QueryIndexOption, QueryOption, TextArgument, app, read_text, run
from .output import write_stdout

VIEWS = ("heads", "grid")


@app.command(
    rich_help_panel="Views",
    epilog=(
        "[bold]Examples[/bold]\n\n"
        f'  attn plot "{SENTENCE}" -q making -o making.png\n\n'
        '  attn plot "The cat sat on the mat because it was tired." -q it --view grid --target cat -o it-cat.svg\n\n'
        '  attn plot "The cat sat." -q cat --layer 0 --level word -o cat.html'
    )
)
def plot(
    text: TextArgument,
    output: Annotated[Path, typer.Option("--output", "-o", help="The file to write: .png, .svg (need attn-cli[plot]) or .html (self-contained).")],
    query: QueryOption = None,
    query_index: QueryIndexOption = None,
    view: Annotated[str, typer.Option("--view", help="heads: tokens × heads of one layer; grid: layers × heads (the model view).")] = "heads",
    layer: Annotated[str, typer.Option("--layer", "-l", help="The layer of --view heads (negative from the end).")] = "-1",
    level: Annotated[str, typer.Option("--level", help="Rows are tokens, or words (--view heads).")] = "token",
    metric: Annotated[Optional[str], typer.Option("--metric", help="--view grid: top, weight (on --target) or entropy.")] = None,
    target: Annotated[Optional[str], typer.Option("--target", "-t", help="--view grid: the word whose weight each head shows.")] = None,
    model: ModelOption = None,
) -> None:
    """Draw attention as a heat map: tokens × heads of a layer, or layers × heads. Files are written atomically; prints the path."""

    def action() -> None:
        import numpy as np

        from ..errors import InputError
        from ..loading.model import load_model
        from ..views.plot import write_heatmap

        if view not in VIEWS:
            raise InputError(f"--view {view!r} is not valid", f"give one of {', '.join(VIEWS)}")
        m = load_model(model)
        source = read_text(text)
        if view == "heads":
            from ..compute.inspect import inspect

            result = inspect(m, source, query, query_index, layer=layer, head="all", level=level, truncate=None)
            drawn = result.layers[0]
            values = np.stack([h.weights for h in drawn.heads], axis=1)  # (units, heads + mean)
            masked = None if drawn.visible is None else np.repeat(~drawn.visible[:, None], values.shape[1], axis=1)
            rows = [u.text for u in result.units]
            query_rows = {i for i, u in enumerate(result.units) if set(u.token_indices) <= set(result.query.token_indices)}
            title = f'{result.model.name} · layer {drawn.layer}: weights of "{result.query.text}" in every head'
            path = write_heatmap(output, values, rows, [*map(str, range(values.shape[1] - 1)), "mean"], title, query_rows, masked)
        else:
            from ..compute.lenses import heads

            result = heads(m, source, query, query_index, metric, target)
            values = result.values if result.metric != "entropy" else 1.0 - result.values / max(float(result.values.max()), 1e-9)
            what = {
                "top": "top-attended word's weight",
                "weight": f'weight on "{result.target.text if result.target else ""}"',
                "entropy": "focus (1 − entropy / max)",
            }[result.metric]
            title = f'{result.model.name} · query "{result.query.text}": {what} per layer and head'
            path = write_heatmap(output, values, [f"L{i}" for i in range(values.shape[0])], [str(h) for h in range(values.shape[1])], title)
        write_stdout(str(path) + "\n")

    run(False, action)

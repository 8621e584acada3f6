"""`attn plot`: the multi-head table or the model view as a PNG, SVG or self-contained HTML."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import SENTENCE, ModelOption, QueryIndexOption, QueryOption, app, read_text, run

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
    text: Annotated[Optional[str], typer.Argument(help="The text, or - to read it from stdin (not with --stats).", show_default=False)] = None,
    output: Annotated[
        Optional[Path], typer.Option("--output", "-o", help="The file to write: .png, .svg (need attn-cli[plot]) or .html (self-contained).")
    ] = None,
    query: QueryOption = None,
    query_index: QueryIndexOption = None,
    view: Annotated[str, typer.Option("--view", help="heads: tokens × heads of one layer; grid: layers × heads (the model view).")] = "heads",
    layer: Annotated[str, typer.Option("--layer", "-l", help="The layer of --view heads (negative from the end).")] = "-1",
    level: Annotated[str, typer.Option("--level", help="Rows are tokens, or words (--view heads).")] = "token",
    metric: Annotated[Optional[str], typer.Option("--metric", help="--view grid: top, weight or entropy. --stats: a statistic (first_token).")] = None,
    target: Annotated[Optional[str], typer.Option("--target", "-t", help="--view grid: the word whose weight each head shows.")] = None,
    stats: Annotated[
        Optional[str], typer.Option("--stats", help="Plot a saved `attn stats --json` document (- for stdin): layers × heads of --metric.", show_default=False)
    ] = None,
    model: ModelOption = None,
) -> None:
    """Draw attention as a heat map: tokens × heads of a layer, or layers × heads. Files are written atomically; prints the path."""

    def action() -> None:
        import numpy as np

        from ..errors import InputError
        from ..loading.model import load_model
        from ..views.plot import write_heatmap

        if output is None:
            raise InputError("--output FILE is missing", "give the file to write, e.g. -o heads.png (.png, .svg or .html)")
        if stats is not None:
            if text is not None:
                raise InputError("give TEXT or --stats, not both", "attn plot --stats stats.json -o heads.png")
            typer.echo(str(_plot_stats(stats, metric or "first_token", output)))
            return
        if text is None:
            raise InputError("TEXT is missing", f'e.g. attn plot "{SENTENCE}" -q making -o making.png')
        if view not in VIEWS:
            raise InputError(f"--view {view!r} is not valid", f"give one of {', '.join(VIEWS)}")
        m = load_model(model)
        source = read_text(text)
        if view == "heads":
            from ..compute.inspect import inspect

            result = inspect(m, source, query, query_index, layer=layer, head="all", level=level)
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
        typer.echo(str(path))

    run(False, action)


def _plot_stats(source: str, metric: str, output: Path) -> Path:
    """Clark et al.'s Figure 2 for any model: one statistic per layer and head, from saved JSON."""
    import numpy as np

    from ..compute.stats_result import metric_grid, read_stats_document
    from ..views.plot import write_heatmap

    doc = read_stats_document(source)
    values = metric_grid(doc, metric)
    note = ""
    if metric == "entropy":
        top = float(np.nanmax(values)) if np.isfinite(values).any() else 1.0
        values, note = values / max(top, 1e-9), f" (nats ÷ {top:.2f}, the largest)"
    elif metric.endswith("_abs"):
        note = " (below 0 drawn as 0)"
    texts = doc.get("texts", "?")
    title = f"{doc['model'].get('name', 'model')} · {metric}{note} per layer and head, over {texts} texts"
    layers, heads = values.shape
    return write_heatmap(output, values, [f"L{i}" for i in range(layers)], [str(h) for h in range(heads)], title)

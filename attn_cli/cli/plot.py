"""`attn plot`: the multi-head table or the model view as a PNG, SVG or self-contained HTML."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import SENTENCE, app, read_text, reporting_errors
from .options import (
    ROWS,
    AttentionKindOption,
    ForceOption,
    KeyOption,
    LevelOption,
    ModelOption,
    OneLayerOption,
    OutputFileOption,
    PlotMetricOption,
    QueryIndexOption,
    QueryOption,
    RowsOption,
    TargetTextOption,
    given,
    refuse_with,
)
from .output import write_stdout

VIEWS = ("heads", "grid")
# An encoder–decoder's plot: which of its attentions it is (in the title).
KIND_TITLES = {"encoder": " · encoder", "decoder": " · decoder self-attention", "cross": " · cross-attention (target → source)"}


@app.command(
    rich_help_panel="Views",
    epilog=(
        "[bold]Examples[/bold]\n\n"
        f'  attn plot "{SENTENCE}" -q making -o making.png\n\n'
        f'  attn plot "{SENTENCE}" -q making -o making.html\n\n'
        '  attn plot "The cat sat on the mat because it was tired." -q it --view grid --key cat -o it-cat.svg\n\n'
        '  attn plot "The cat sat." -q cat --layer 0 --level word --static -o cat.html\n\n'
        '  attn plot "La maison est magnifique." -m opus-mt-fr-en -t "The house is wonderful." -q house --attention cross -o haus.png\n\n'
        "  attn stats --file sample_inputs/sentences.txt --json > stats.json && attn plot --stats stats.json --metric first_token -o sinks.png"
    )
)
def plot(
    ctx: typer.Context,
    text: Annotated[Optional[str], typer.Argument(metavar="TEXT", help="The text, or - to read it from stdin (not with --stats).", show_default=False)] = None,
    output: OutputFileOption = None,
    query: QueryOption = None,
    query_index: QueryIndexOption = None,
    view: Annotated[
        str,
        typer.Option("--view", metavar="heads|grid", help="heads: tokens × heads of one layer; grid: layers × heads (the model view)."),
    ] = "heads",
    layer: OneLayerOption = None,
    level: LevelOption = None,
    metric: PlotMetricOption = None,
    key: KeyOption = None,
    stats: Annotated[
        Optional[str], typer.Option("--stats", help="Plot a saved `attn stats --json` document (- for stdin): layers × heads of --metric.", show_default=False)
    ] = None,
    rows: RowsOption = "auto",
    target: TargetTextOption = None,
    attention: AttentionKindOption = None,
    static: Annotated[bool, typer.Option("--static", help="With .html: the heat-map table of --view, no script, instead of the interactive page.")] = False,
    force: ForceOption = False,
    model: ModelOption = None,
) -> None:
    """Draw attention as a heat map: tokens × heads of a layer, or layers × heads. Files are written atomically; prints the path."""

    def action() -> None:

        from ..errors import InputError
        from ..loading.model import load_model
        from ..views.plot import write_heatmap

        if output is None:
            raise InputError("--output FILE is missing", "give the file to write, e.g. -o heads.png (.png, .svg or .html)")
        if stats is not None:
            if text is not None:
                raise InputError("give TEXT or --stats, not both", "attn plot --stats stats.json -o heads.png")
            refuse_with(
                ctx, "--stats", "query", "query_index", "view", "layer", "level", "key", "target", "attention", "model", why=" (it plots a saved document)"
            )
            write_stdout(str(_plot_stats(stats, metric or "first_token", output, force)) + "\n")
            return
        if text is None:
            raise InputError("TEXT is missing", f'e.g. attn plot "{SENTENCE}" -q making -o making.png')
        if view not in VIEWS:
            raise InputError(f"--view {view!r} is not valid", f"give one of {', '.join(VIEWS)}")
        if rows not in ROWS:
            raise InputError(f"--rows {rows!r} is not valid", f"give one of {', '.join(ROWS)}")
        interactive = output.suffix.lower() == ".html" and not static
        if interactive:
            _refuse_what_the_page_ignores(ctx)
        elif static and output.suffix.lower() != ".html":
            raise InputError("--static is for .html files; PNG and SVG are always static", "drop --static, or write a .html file")
        _refuse_what_the_view_ignores(view, layer, level, metric, key)
        m = load_model(model)
        source = read_text(text)
        if interactive:
            write_stdout(str(_write_page(m, source, query, query_index, layer, output, force, target, attention)) + "\n")
            return
        if view == "heads":
            from ..compute.inspect import inspect
            from ..compute.options import select_layers
            from ..compute.seq2seq import check_kind
            from ..views.plot_rows import heads_grid

            spec = m.spec.seq2seq.decoder if check_kind(m, target, attention) in ("decoder", "cross") else m.spec
            select_layers(layer or "-1", spec.layers, allow_all=False)  # so that a layer out of range is not offered 'all'
            result = inspect(
                m, source, query, query_index, layer=layer or "-1", head="all", level=level or "token", truncate=None, target=target, attention=attention
            )
            values, labels, query_rows, masked, title = heads_grid(result, rows)
            cols = [*map(str, range(values.shape[1] - 1)), "mean"]
            path = write_heatmap(output, values, labels, cols, title, query_rows, masked, force=force, warn=_warn)
        else:
            from ..compute.heads import heads

            result = heads(m, source, query, query_index, metric, key, target=target, attention=attention)
            values = result.values if result.metric != "entropy" else result.focus
            what = {
                "top": "top-attended word's weight",
                "weight": f'weight on "{result.key.text if result.key else ""}"',
                "entropy": f"focus = 1 − H/ln n (entropy H in nats over the n keys the query sees: {result.keys_label})",
            }[result.metric]
            title = f'{result.model.name}{KIND_TITLES.get(result.attention, "")} · query "{result.query.text}": {what} per layer and head'
            legend = "focus" if result.metric == "entropy" else "weight"
            row_labels, cols = [f"L{i}" for i in range(values.shape[0])], [str(h) for h in range(values.shape[1])]
            path = write_heatmap(output, values, row_labels, cols, title, legend=legend, force=force, warn=_warn)
        write_stdout(str(path) + "\n")

    reporting_errors(False, action)


def _refuse_what_the_page_ignores(ctx: typer.Context) -> None:
    """The interactive page shows every layer and head of every token: the options that shape
    the static table are refused, with the fix."""
    from ..errors import InputError

    if flags := given(ctx, "view", "level", "metric", "key", "rows"):
        raise InputError(f"{flags[0]} shapes the static table; the interactive page shows every layer, head and token", f"add --static, or drop {flags[0]}")


def _write_page(
    m, source: str, query: str | None, query_index: int | None, layer: str | None, output: Path, force: bool, target: str | None, attention: str | None
) -> Path:
    """The interactive page of `source` (views/page), opened on --layer (default the last); an
    encoder–decoder's decoder self-attention with `target` (cross-attention is refused)."""
    from ..compute.options import select_layers
    from ..compute.page import page
    from ..views.files import write_file
    from ..views.page import page_html

    result = page(m, source, query, query_index, target=target, attention=attention)
    first = select_layers(layer, result.inspect.model.layers, allow_all=False)[0] if layer is not None else None
    kind = KIND_TITLES.get(result.inspect.attention, "")
    html = page_html(result, title=f'{m.name}{kind} · query "{result.inspect.query.text}"' if kind else None, layer=first)
    return write_file(output, lambda f: f.write(html.encode("utf-8")), force)


def _refuse_what_the_view_ignores(view: str, layer: str | None, level: str | None, metric: str | None, key: str | None) -> None:
    """An option the chosen view would not use is an error, not silently dropped."""
    from ..errors import InputError

    if view == "heads":
        if metric is not None or key is not None:
            option = "--metric" if metric is not None else "--key"
            raise InputError(f"{option} belongs to --view grid; --view heads draws weights", f"add --view grid, or drop {option}")
        if layer is not None and layer.strip().lower() == "all":
            raise InputError("--view heads draws one layer, not all", "give --layer N, or use --view grid for every layer and head")
    else:
        for option, value in (("--layer", layer), ("--level", level)):
            if value is not None:
                raise InputError(f"{option} belongs to --view heads; --view grid shows every layer for the query", f"drop {option}, or use --view heads")


def _plot_stats(source: str, metric: str, output: Path, force: bool) -> Path:
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
    return write_heatmap(output, values, [f"L{i}" for i in range(layers)], [str(h) for h in range(heads)], title, force=force, warn=_warn)


def _warn(message: str) -> None:
    """A warning from the drawing (a character no font has), in attn's words, on stderr."""
    from ..views.text import printable
    from .output import write_stderr

    write_stderr(f"attn: warning: {printable(message)}\n")

"""The Rich view of `HeadsResult`: the layers × heads grid."""

from __future__ import annotations

from rich.table import Table as RichTable
from rich.text import Text

from ...compute.heads import HeadsResult
from ..text import printable
from .inspect import heat

_METRIC_TITLES = {
    "top": "the top-attended word of each head (colour: its weight)",
    "weight": "weight on {target}",
    "entropy": "entropy in nats; colour: focus 1 − H/ln n, n the keys seen ({keys})",
}

# An encoder–decoder's grid: which of its attentions it is.
_KINDS = {
    "encoder": " · the encoder's self-attention",
    "decoder": " · the decoder's self-attention",
    "cross": " · cross-attention (target → source)",
}


def _grid_cells(heads: int, width: int) -> int:
    """Characters per head (after a one-space gap) so the grid fits `width`: words are cut,
    never wrapped. 32 heads fit 80 columns with one character each."""
    return max(1, (width - 3) // heads - 1)


def _number(value: float, cell: int, metric: str) -> str:
    """A value in `cell` characters. Entropy (nats): "2.1", or "2" when narrow; a weight:
    ".63", or its tenths digit ("6" for 0.6x) when narrow."""
    if metric == "entropy":
        text = (f"{value:.1f}" if value < 9.95 else f"{min(value, 999):.0f}") if cell >= 3 else str(min(9, int(round(value))))
    elif cell >= 3:
        text = "1.0" if value >= 0.995 else f"{value:.2f}"[1:]
    else:
        text = str(min(9, int(value * 10)))
    return text.rjust(cell)  # never sliced: a number is shown whole or rounded, not cut


def heads_view(result: HeadsResult, width: int, colour: bool = True) -> list:
    """The grid; without colour (NO_COLOR, piped), the top words' weights, which colour alone
    carried, follow as a grid of numbers of their own."""
    m = result.model
    cell = _grid_cells(m.heads, width)
    keys = result.keys_label if result.metric == "entropy" else ""
    title = _METRIC_TITLES[result.metric].format(target=f'"{printable(result.key.text)}"' if result.key else "", keys=keys)
    if cell < 3 and result.metric != "top":
        title += "; rounded" if result.metric == "entropy" else "; in tenths"
    header = Text.assemble(
        (m.name, "bold magenta"), f" ({m.architecture}, {m.layers} layers × {m.heads} heads) · query ", (f'"{result.query.text}"', "bold cyan"),
        _KINDS.get(result.attention, ""),
    )
    table = _grid_table(m.heads, cell)
    focus = result.focus if result.metric == "entropy" else None
    numbers = _grid_table(m.heads, cell) if result.metric == "top" and not colour else None
    for layer in range(m.layers):
        cells = []
        for h in range(m.heads):
            value = float(result.values[layer, h])
            if numbers is not None and h == 0:
                numbers.add_row(str(layer), "", *(" " + _number(float(result.values[layer, k]), cell, "weight") for k in range(m.heads)))
            if result.metric == "top":
                word = result.top[layer][h]
                cells.append(Text(" " + printable(word.text)[:cell].ljust(cell), style=heat(word.weight)))  # escaped, then cut
            elif result.metric == "entropy":  # low entropy = focused = hot
                cells.append(Text(" " + _number(value, cell, "entropy"), style=heat(float(focus[layer, h]))))
            else:
                cells.append(Text(" " + _number(value, cell, "weight"), style=heat(value)))
        table.add_row(str(layer), "", *cells)
    parts = [header, Text(f"Model view · layers × heads · {title}", style="bold underline"), table]
    if numbers is not None:
        parts += [Text("\nTheir weights" + ("" if cell >= 3 else ", in tenths"), style="bold underline"), numbers]
    return parts


def _grid_table(heads: int, cell: int, shown: range | None = None) -> RichTable:
    """An empty layers × heads table, `cell` characters per head; `shown`: the heads it has
    columns for (all `heads` unless given), for a grid folded into blocks of heads."""
    shown = range(heads) if shown is None else shown
    table = RichTable(box=None, show_edge=False, pad_edge=False, padding=(0, 0), header_style="underline")
    downwards = len(str(heads - 1)) > cell  # head numbers too long for a cell: tens above units
    table.add_column("\nL" if downwards else "L", justify="right", style="dim", min_width=2)
    table.add_column(" ", width=1)
    for h in shown:
        # Alternate the header's style so that adjoining head numbers stay readable.
        name = f"{h // 10 if h >= 10 else ' '}\n{h % 10}" if downwards else str(h)
        table.add_column(Text(name, style="bold" if h % 2 else "dim"), justify="right", width=cell + 1, no_wrap=True, overflow="crop")
    return table

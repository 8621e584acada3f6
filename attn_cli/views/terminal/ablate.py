"""The Rich view of `AblateResult`: a layers × heads grid, as `attn heads` draws one."""

from __future__ import annotations

import numpy as np
from rich.text import Text

from ...compute.ablate import AblateResult
from ..text import printable
from .heads import _grid_table as grid_table
from .inspect import heat


def ablate_view(result: AblateResult, width: int, colour: bool = True) -> list:
    """The grid of changes (colour: how much the head matters, relative to the one that matters
    most), then the heads that matter most in numbers."""
    m = result.model
    decoder = result.measure == "logprob"
    if decoder:
        t = result.target
        subject = Text.assemble("Δ log p(", (f'"{printable(t.text)}"', "bold"), f") at token {result.position} (plain: {t.logprob:.3f})")
        harm = np.maximum(0.0, -result.changes)  # a drop is what the head carried
    else:
        subject = Text(f"cosine distance of token {result.position}'s final representation from the plain one")
        harm = result.changes
    scale = float(harm.max()) or 1.0
    numbers = [[_number(float(v), decoder) for v in row] for row in result.changes]
    tables = []
    for shown, cell in _blocks(m.layers, m.heads, max(len(n) for row in numbers for n in row), width):
        table = grid_table(m.heads, cell, shown)
        for layer in range(m.layers):
            cells = [Text(" " + numbers[layer][h].rjust(cell), style=heat(float(harm[layer, h]) / scale) if colour else "") for h in shown]
            table.add_row(str(layer), "", *cells)
        tables.append(table)
    order = np.argsort(-harm, axis=None)[:5]
    top = Text("Matter most: ", style="bold")
    for n, flat in enumerate(order):
        layer, head = divmod(int(flat), m.heads)
        top.append((" · " if n else "") + f"L{layer} H{head}", style="bold")
        top.append(f" {float(result.changes[layer, head]):+.3f}" if decoder else f" {float(result.changes[layer, head]):.4f}")
    how = "zeroed" if result.mode == "zero" else "replaced by its mean over the positions"
    return [
        Text.assemble((m.name, "bold magenta"), f" ({m.architecture}, {m.layers} layers × {m.heads} heads)"),
        Text.assemble(("Head ablation: each head's output (before W_O) " + how + " at every position, alone · ", "bold underline"), subject),
        *tables,
        top,
    ]


def _number(value: float, decoder: bool) -> str:
    """A change as shown, whole: Δ log p signed ("-1.30"), a cosine distance ".002" (or "1.23")."""
    return f"{value:+.2f}" if decoder else f"{value:.3f}"[1:] if value < 1 else f"{value:.2f}"


def _blocks(layers: int, heads: int, need: int, width: int) -> list[tuple[range, int]]:
    """The heads of each block of the grid and the characters per head: all heads in one block,
    spread over `width`, when a cell of `need` characters (after a one-space gap) lets them fit;
    else as many heads a block as fit, the rest in further blocks below, so that no number is cut."""
    room = width - max(2, len(str(layers - 1))) - 1  # after the layer column and its gap
    if heads * (need + 1) <= room:
        return [(range(heads), max(need, room // heads - 1))]
    per = max(1, room // (need + 1))
    per = -(-heads // -(-heads // per))  # blocks as even as their number allows: 6 + 6, not 11 + 1
    return [(range(first, min(heads, first + per)), need) for first in range(0, heads, per)]

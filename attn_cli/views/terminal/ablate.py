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
    cell = max(4, (width - 3) // m.heads - 1)
    decoder = result.measure == "logprob"
    if decoder:
        t = result.target
        subject = Text.assemble("Δ log p(", (f'"{printable(t.text)}"', "bold"), f") at token {result.position} (plain: {t.logprob:.3f})")
        harm = np.maximum(0.0, -result.changes)  # a drop is what the head carried
    else:
        subject = Text(f"cosine distance of token {result.position}'s final representation from the plain one")
        harm = result.changes
    scale = float(harm.max()) or 1.0
    table = grid_table(m.heads, cell)
    for layer in range(m.layers):
        cells = []
        for h in range(m.heads):
            value = float(result.changes[layer, h])
            number = f"{value:+.2f}" if decoder else f"{value:.3f}"[1:] if value < 1 else f"{value:.2f}"
            cells.append(Text(" " + number[-cell:].rjust(cell), style=heat(float(harm[layer, h]) / scale) if colour else ""))
        table.add_row(str(layer), "", *cells)
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
        table,
        top,
    ]
